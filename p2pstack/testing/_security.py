"""A public conformance suite for security channels: ``check_security_channel`` runs any
``SecurityChannel`` through the ``SecurityChannel`` / ``SecureConnection`` contract of
``p2pstack.interfaces`` over an in-memory pipe
(https://github.com/libp2p/specs/tree/master/connections#secure-channels).

A channel written outside this repository runs it like this::

    @pytest.mark.anyio
    async def test_conformance() -> None:
        await check_security_channel(MyChannel)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio

from p2pstack.errors import HandshakeError, P2PError, PeerIdMismatch
from p2pstack.interfaces import RawConnection, SecureConnection, SecurityChannel
from p2pstack.streams import memory_connection_pair
from p2pstack.testing._io import read_all, receive_exactly

if TYPE_CHECKING:
    from p2pstack.identity import Identity, PeerId

__all__ = ["check_security_channel"]

_T = TypeVar("_T")
_Make = Callable[[], SecurityChannel]
_Check = Callable[[_Make, "Sequence[Identity]"], Awaitable[None]]

#: Bytes sent each way at once in the bulk check, hash-checked on arrival.
BULK_SIZE = 4 * 1024 * 1024
_MUXERS = ("/yamux/1.0.0", "/mplex/6.7.0")
#: What a hostile or broken peer may send instead of a handshake, followed by end of stream.
GARBAGE: tuple[tuple[str, bytes], ...] = (
    ("nothing", b""),
    ("one byte", b"\x00"),
    ("300 random bytes", random.Random(300).randbytes(300)),
    ("a long length prefix, then too few bytes", b"\xff\xff" + b"\x01" * 100),
    ("70,000 bytes of 0xff", b"\xff" * 70_000),
    ("a multistream header", b"\x13/multistream/1.0.0\n"),
    # As a Noise message 1: an all-zero (low-order) X25519 ephemeral key.
    ("a 2-byte length and 32 zero bytes", b"\x00\x20" + bytes(32)),
    # As TLS: a handshake record header announcing 16 KiB, then too few bytes; a fatal alert.
    ("a TLS record header, then too few bytes", b"\x16\x03\x01\x40\x00" + bytes(100)),
    ("a TLS fatal alert", b"\x15\x03\x03\x00\x02\x02\x28"),
)


def _require(condition: bool, message: str) -> None:
    # Not `assert`: the checks must still run under `python -O`.
    if not condition:
        raise AssertionError(message)


async def _outcome(work: Awaitable[_T]) -> _T | Exception:
    """Await ``work``; return its result or the exception it raised (so both sides of a
    handshake can be judged separately)."""
    try:
        return await work
    except Exception as exc:
        return exc


async def _handshake(
    make: _Make,
    dialer: Identity,
    listener: Identity,
    *,
    expect: PeerId | None,
    muxers: Sequence[str] = (),
    first_bytes: bytes = b"",
) -> tuple[SecureConnection | Exception, SecureConnection | Exception, RawConnection]:
    """Run ``secure_outbound`` and ``secure_inbound`` at once over a memory pipe.

    Returns:
        The outbound result, the inbound result (each a connection or the exception raised)
        and the dialer's raw connection. With ``first_bytes``, the dialer sends them as soon as
        its handshake returns, while the listener may still be finishing.
    """
    raw_out, raw_in = memory_connection_pair()
    results: dict[str, SecureConnection | Exception] = {}

    async def outbound() -> None:
        result = await _outcome(
            make().secure_outbound(raw_out, dialer, remote_peer=expect, muxers=muxers)
        )
        if first_bytes and not isinstance(result, Exception):
            await result.send(first_bytes)
        results["out"] = result

    async def inbound() -> None:
        results["in"] = await _outcome(make().secure_inbound(raw_in, listener, muxers=muxers))

    async with anyio.create_task_group() as group:
        group.start_soon(outbound)
        group.start_soon(inbound)
    return results["out"], results["in"], raw_out


def _connected(result: SecureConnection | Exception, side: str) -> SecureConnection:
    if isinstance(result, Exception):
        raise AssertionError(f"{side} handshake failed: {result!r}") from result
    return result


async def _secured_pair(
    make: _Make, ids: Sequence[Identity], *, first_bytes: bytes = b""
) -> tuple[SecureConnection, SecureConnection]:
    out, inb, _ = await _handshake(
        make, ids[0], ids[1], expect=ids[1].peer_id, first_bytes=first_bytes
    )
    return _connected(out, "outbound"), _connected(inb, "inbound")


async def _close(*conns: SecureConnection) -> None:
    for conn in conns:
        await conn.aclose()


def _check_identities(
    conn: SecureConnection, local: Identity, remote: Identity, protocol: str, side: str
) -> None:
    _require(conn.local_peer == local.peer_id, f"{side}: local_peer is not our peer ID")
    _require(conn.remote_peer == remote.peer_id, f"{side}: remote_peer is not the peer's ID")
    _require(
        conn.remote_public_key == remote.public_key, f"{side}: remote_public_key is not the peer's"
    )
    _require(
        conn.security_protocol == protocol,
        f"{side}: security_protocol {conn.security_protocol!r} is not {protocol!r}",
    )


async def _check_handshake(make: _Make, ids: Sequence[Identity]) -> None:
    protocol = make().protocol_id
    for dialer, listener in ((ids[0], ids[1]), (ids[1], ids[0])):
        for expect in (listener.peer_id, None):
            out_result, in_result, raw = await _handshake(make, dialer, listener, expect=expect)
            out = _connected(out_result, "outbound")
            inb = _connected(in_result, "inbound")
            _check_identities(out, dialer, listener, protocol, "outbound")
            _check_identities(inb, listener, dialer, protocol, "inbound")
            _require(
                out.local_multiaddr == raw.local_multiaddr
                and out.remote_multiaddr == raw.remote_multiaddr,
                "the secured connection does not report the raw connection's addresses",
            )
            await _close(out, inb)


async def _check_early_muxer(make: _Make, ids: Sequence[Identity]) -> None:
    out_result, in_result, _ = await _handshake(
        make, ids[0], ids[1], expect=ids[1].peer_id, muxers=_MUXERS
    )
    out, inb = _connected(out_result, "outbound"), _connected(in_result, "inbound")
    _require(
        out.early_muxer == inb.early_muxer,
        f"the two sides chose different muxers: {out.early_muxer!r} / {inb.early_muxer!r}",
    )
    _require(out.early_muxer in (None, *_MUXERS), f"unoffered muxer {out.early_muxer!r}")
    await _close(out, inb)
    plain_out, plain_in = await _secured_pair(make, ids)
    _require(
        plain_out.early_muxer is None and plain_in.early_muxer is None,
        "an early muxer was chosen although no muxers were offered",
    )
    await _close(plain_out, plain_in)


async def _check_peer_id_mismatch(make: _Make, ids: Sequence[Identity]) -> None:
    out, inb, _ = await _handshake(make, ids[0], ids[1], expect=ids[2].peer_id)
    if not isinstance(out, PeerIdMismatch):
        if not isinstance(out, Exception):
            await out.aclose()
        raise AssertionError(f"dialing the wrong peer gave {out!r}, not PeerIdMismatch")
    _require(
        out.expected == str(ids[2].peer_id) and out.actual == str(ids[1].peer_id),
        f"PeerIdMismatch names {out.expected} / {out.actual}, not the dialed / actual peers",
    )
    if isinstance(inb, Exception):
        _require(isinstance(inb, P2PError), f"the listener side failed with {inb!r}")
        return
    # The listener may finish first (plaintext); the dialer must then have closed the pipe.
    try:
        await read_all(inb, 0)
    except (anyio.BrokenResourceError, P2PError):
        pass
    await inb.aclose()


async def _check_data(make: _Make, ids: Sequence[Identity]) -> None:
    out, inb = await _secured_pair(make, ids, first_bytes=b"early")
    _require(await receive_exactly(inb, 5) == b"early", "bytes sent right after the handshake")
    await inb.send(b"abcdef")
    first = await out.receive(3)
    _require(0 < len(first) <= 3, f"receive(3) returned {len(first)} bytes")
    rest = await receive_exactly(out, 6 - len(first))
    _require(first + rest == b"abcdef", "data from the inbound side was altered")
    await _bulk_both_ways(out, inb)
    await _close(out, inb)


async def _bulk_both_ways(a: SecureConnection, b: SecureConnection) -> None:
    payloads = {
        id(a): random.Random(1).randbytes(BULK_SIZE),
        id(b): random.Random(2).randbytes(BULK_SIZE),
    }

    async def send(conn: SecureConnection) -> None:
        data = memoryview(payloads[id(conn)])
        await conn.send(bytes(data[: 1024 * 1024]))  # one write larger than any frame
        for start in range(1024 * 1024, BULK_SIZE, 64 * 1024):
            await conn.send(bytes(data[start : start + 64 * 1024]))

    async def receive(conn: SecureConnection, sender: SecureConnection) -> None:
        got = await receive_exactly(conn, BULK_SIZE)
        expected = hashlib.sha256(payloads[id(sender)]).digest()
        _require(hashlib.sha256(got).digest() == expected, "bulk data arrived altered")

    async with anyio.create_task_group() as group:
        group.start_soon(send, a)
        group.start_soon(send, b)
        group.start_soon(receive, a, b)
        group.start_soon(receive, b, a)


async def _check_half_close(make: _Make, ids: Sequence[Identity]) -> None:
    out, inb = await _secured_pair(make, ids)
    await out.send(b"request")
    await out.send_eof()
    try:
        await out.send(b"more")
    except anyio.ClosedResourceError:
        pass
    else:
        raise AssertionError("send() after send_eof() did not raise ClosedResourceError")
    _require(await read_all(inb, 7) == b"request", "half-close did not deliver data then EOF")
    await inb.send(b"response")
    await inb.send_eof()
    _require(await read_all(out, 8) == b"response", "no reply after the peer's half-close")
    await _close(out, inb)


async def _check_close(make: _Make, ids: Sequence[Identity]) -> None:
    out, inb = await _secured_pair(make, ids)
    await out.aclose()
    await out.aclose()  # idempotent
    calls: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("receive", out.receive),
        ("send", lambda: out.send(b"x")),
    )
    for what, call in calls:
        try:
            await call()
        except anyio.ClosedResourceError:
            pass
        else:
            raise AssertionError(f"{what}() after aclose() did not raise ClosedResourceError")
    try:
        await read_all(inb, 0)
    except anyio.BrokenResourceError:
        pass
    await inb.aclose()


async def _check_garbage(make: _Make, ids: Sequence[Identity]) -> None:
    for outbound in (False, True):
        for name, garbage in GARBAGE:
            raw_ours, raw_theirs = memory_connection_pair()

            async def attacker(conn: RawConnection = raw_theirs, data: bytes = garbage) -> None:
                await conn.send(data)
                await conn.send_eof()
                # Reading to the end proves that the channel closed its side.
                while True:
                    try:
                        await conn.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return

            async with anyio.create_task_group() as group:
                group.start_soon(attacker)
                if outbound:
                    work = make().secure_outbound(raw_ours, ids[0], remote_peer=ids[1].peer_id)
                else:
                    work = make().secure_inbound(raw_ours, ids[0])
                result = await _outcome(work)
            role = "outbound" if outbound else "inbound"
            if not isinstance(result, HandshakeError):
                if not isinstance(result, Exception):
                    await result.aclose()
                raise AssertionError(
                    f"{role} handshake fed {name} gave {result!r}, not HandshakeError"
                )


_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("handshake both ways, identities", _check_handshake),
    ("inlined muxer agreement", _check_early_muxer),
    ("wrong expected peer", _check_peer_id_mismatch),
    ("data both ways, 4 MiB each way", _check_data),
    ("half-close", _check_half_close),
    ("close", _check_close),
    ("garbage instead of a handshake", _check_garbage),
)


def _as_assertion(name: str, exc: BaseException) -> AssertionError:
    leaf = exc
    while isinstance(leaf, BaseExceptionGroup):  # task groups wrap the first failure
        leaf = leaf.exceptions[0]
    detail = str(leaf) if isinstance(leaf, AssertionError) else f"unexpected {leaf!r}"
    failure = AssertionError(f"check_security_channel[{name}]: {detail}")
    failure.__cause__ = exc
    return failure


async def check_security_channel(
    make_channel: _Make,
    *,
    time_limit: float = 30.0,
    make_identity: Callable[[], Identity] | None = None,
) -> None:
    """Check that a security channel honours the ``SecurityChannel`` / ``SecureConnection``
    contract.

    Each check runs on fresh in-memory pipes, both handshake sides at once: the handshake with
    either identity dialing (peer IDs, public keys, protocol and addresses reported on both
    sides; ``remote_peer=None`` accepted), inlined muxer agreement (both sides report the same
    muxer, or none), ``PeerIdMismatch`` naming both peers when the dialer expects another peer,
    bytes right after the handshake, ``receive(max_bytes)``, 4 MiB each way at once
    (hash-checked, 1 MiB single writes), half-close, close (idempotent, then
    ``ClosedResourceError`` locally and end of stream at the peer), and garbage or nothing
    instead of a handshake (``HandshakeError`` on either side, and the connection closed).

    Args:
        make_channel: builds a fresh ``SecurityChannel`` (called once per side).
        time_limit: seconds each check may take.
        make_identity: makes the three identities used (default ``Identity.generate``: Ed25519).

    Raises:
        AssertionError: a check failed or ran past ``time_limit``; the message names it.
    """
    if make_identity is None:
        from p2pstack.identity import Identity

        make_identity = Identity.generate
    ids = [make_identity() for _ in range(3)]
    for name, check in _CHECKS:
        try:
            with anyio.fail_after(time_limit):
                await check(make_channel, ids)
        except TimeoutError:
            raise AssertionError(
                f"check_security_channel[{name}]: timed out after {time_limit} s"
            ) from None
        except Exception as exc:  # any error is a failed check, reported with its cause
            raise _as_assertion(name, exc) from exc
