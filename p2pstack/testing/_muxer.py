"""A public conformance suite for stream muxers: ``check_muxer`` runs any ``Muxer`` through the
``MuxedConnection`` / ``MuxedStream`` contract of ``p2pstack.interfaces`` over an in-memory pipe
(https://github.com/libp2p/specs/tree/master/connections#stream-multiplexing).

A muxer written outside this repository runs it like this::

    @pytest.mark.anyio
    async def test_conformance() -> None:
        await check_muxer(lambda: MyMuxer())
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from multiaddr import Multiaddr

from p2pstack.errors import ConnectionClosedError, StreamReset
from p2pstack.interfaces import Buffer, MuxedConnection, MuxedStream, Muxer, RawConnection
from p2pstack.streams import memory_connection_pair
from p2pstack.testing._budget import CountingBudget, check_memory_follows_reads
from p2pstack.testing._io import read_all, receive_exactly
from p2pstack.upgrader import takes_memory_budget

if TYPE_CHECKING:
    from p2pstack.identity import Identity, PeerId, PublicKey

__all__ = ["FakeSecureConnection", "check_muxer", "fake_secure_pair"]

_Check = Callable[[MuxedConnection, MuxedConnection], Awaitable[None]]


class _LazyIdentities:
    """Two identities generated on first use, so the suite needs no keys unless asked."""

    def __init__(self) -> None:
        self._pair: tuple[Identity, Identity] | None = None

    def get(self, index: int) -> Identity:
        if self._pair is None:
            from p2pstack.identity import Identity

            self._pair = (Identity.generate(), Identity.generate())
        return self._pair[index]


class FakeSecureConnection:
    """A ``SecureConnection`` stand-in over a raw connection: no encryption, made-up peers.

    For tests only. The peer IDs are generated lazily the first time they are read.
    """

    def __init__(
        self,
        raw: RawConnection,
        identities: _LazyIdentities,
        index: int,
        *,
        early_muxer: str | None = None,
    ) -> None:
        self._raw = raw
        self._identities = identities
        self._index = index
        self._early_muxer = early_muxer

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._raw.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._raw.remote_multiaddr

    @property
    def local_peer(self) -> PeerId:
        return self._identities.get(self._index).peer_id

    @property
    def remote_peer(self) -> PeerId:
        return self._identities.get(1 - self._index).peer_id

    @property
    def remote_public_key(self) -> PublicKey:
        return self._identities.get(1 - self._index).public_key

    @property
    def security_protocol(self) -> str:
        return "/fake-secure/1.0.0"

    @property
    def early_muxer(self) -> str | None:
        return self._early_muxer

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._raw.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        await self._raw.send(item)

    async def send_eof(self) -> None:
        await self._raw.send_eof()

    async def aclose(self) -> None:
        await self._raw.aclose()


def fake_secure_pair(*, max_chunks: int = 64) -> tuple[FakeSecureConnection, FakeSecureConnection]:
    """Two connected ``SecureConnection`` stand-ins over ``memory_connection_pair()``.

    Args:
        max_chunks: how many sends each direction buffers before ``send`` blocks.

    Returns:
        ``(a, b)``: what ``a`` sends, ``b`` receives; ``a.remote_peer == b.local_peer``.
    """
    raw_a, raw_b = memory_connection_pair(
        Multiaddr("/memory/1"), Multiaddr("/memory/2"), max_chunks=max_chunks
    )
    identities = _LazyIdentities()
    return FakeSecureConnection(raw_a, identities, 0), FakeSecureConnection(raw_b, identities, 1)


def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def _check_open_accept_and_data(a: MuxedConnection, b: MuxedConnection) -> None:
    out = await a.open_stream()
    # Sending before the peer accepts must work (yamux: data may follow the SYN immediately).
    await out.send(b"hello")
    inbound = await b.accept_stream()
    if await receive_exactly(inbound, 5) != b"hello":
        raise AssertionError("the accepted stream did not deliver the bytes sent first")
    await inbound.send(b"world!")
    if await receive_exactly(out, 6) != b"world!":
        raise AssertionError("data from the accepting side did not arrive")
    # A cancelled receive must lose nothing (cancel-safety in the ByteStream contract).
    with anyio.CancelScope() as scope:
        scope.cancel()
        await out.receive()
    await inbound.send(b"abcdef")
    if len(first := await out.receive(2)) > 2:
        raise AssertionError("receive(max_bytes) returned more than max_bytes")
    if first + await receive_exactly(out, 6 - len(first)) != b"abcdef":
        raise AssertionError("data was lost or reordered after a cancelled receive")
    # The other direction: the listener side opens a stream too.
    back = await b.open_stream()
    await back.send(b"ping")
    accepted = await a.accept_stream()
    if await receive_exactly(accepted, 4) != b"ping":
        raise AssertionError("a stream opened by the listener side did not deliver data")
    for stream in (out, inbound, back, accepted):
        await stream.aclose()


async def _check_half_close(a: MuxedConnection, b: MuxedConnection) -> None:
    out = await a.open_stream()
    await out.send(b"request")
    await out.send_eof()
    try:
        await out.send(b"more")
    except anyio.ClosedResourceError:
        pass
    else:
        raise AssertionError("send() after send_eof() did not raise ClosedResourceError")
    inbound = await b.accept_stream()
    if await read_all(inbound, 7) != b"request":
        raise AssertionError("half-closed stream did not deliver data then EndOfStream")
    # The other direction is still open after the peer's half-close.
    await inbound.send(b"response")
    await inbound.send_eof()
    if await read_all(out, 8) != b"response":
        raise AssertionError("reply after the peer's half-close did not arrive")
    await out.aclose()
    await inbound.aclose()
    await out.aclose()  # idempotent


async def _check_reset(a: MuxedConnection, b: MuxedConnection) -> None:
    out = await a.open_stream()
    await out.send(b"x")
    inbound = await b.accept_stream()
    await receive_exactly(inbound, 1)
    await out.reset()
    await out.reset()  # idempotent
    try:
        await inbound.receive()
    except StreamReset:
        pass
    except anyio.EndOfStream:
        raise AssertionError("a reset was reported as a clean end of stream") from None
    else:
        raise AssertionError("receive() on a reset stream did not raise StreamReset")
    try:
        await inbound.send(b"y")
    except StreamReset:
        pass
    else:
        raise AssertionError("send() on a stream reset by the peer did not raise StreamReset")
    await inbound.aclose()  # must not raise on a reset stream


async def _check_many_streams(a: MuxedConnection, b: MuxedConnection) -> None:
    count, size = 100, 64 * 1024

    async def echo(stream: MuxedStream) -> None:
        while True:
            try:
                chunk = await stream.receive()
            except anyio.EndOfStream:
                break
            await stream.send(chunk)
        await stream.aclose()

    async def serve(task_group: TaskGroup) -> None:
        for _ in range(count):
            task_group.start_soon(echo, await b.accept_stream())

    async def client(index: int) -> None:
        stream = await a.open_stream()
        data = _payload(index, size)
        async with anyio.create_task_group() as group:
            group.start_soon(_send_and_close, stream, data, 16 * 1024)
            echoed = await read_all(stream, size)
        if echoed != data:
            raise AssertionError(f"stream {index}: echoed data differs ({len(echoed)} bytes)")
        await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(serve, group)
        for index in range(count):
            group.start_soon(client, index)


async def _send_and_close(stream: MuxedStream, data: bytes, chunk: int) -> None:
    view = memoryview(data)
    for offset in range(0, len(data), chunk):
        await stream.send(bytes(view[offset : offset + chunk]))
    await stream.send_eof()


async def _check_large_transfer(a: MuxedConnection, b: MuxedConnection) -> None:
    size = 8 * 1024 * 1024
    data = _payload(8, size)

    async def sink() -> None:
        stream = await b.accept_stream()
        digest = hashlib.sha256()
        received = 0
        while True:
            try:
                chunk = await stream.receive()
            except anyio.EndOfStream:
                break
            digest.update(chunk)
            received += len(chunk)
        if received != size:
            raise AssertionError(f"large transfer: received {received} of {size} bytes")
        await stream.send(digest.digest())
        await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(sink)
        stream = await a.open_stream()
        # One send larger than any window or frame, then many ordinary ones.
        await stream.send(data[: 1024 * 1024])
        await _send_and_close(stream, data[1024 * 1024 :], 64 * 1024)
        reply = await read_all(stream, 32)
    if reply != hashlib.sha256(data).digest():
        raise AssertionError("large transfer: the receiver's SHA-256 does not match")


async def _check_connection_close(a: MuxedConnection, b: MuxedConnection) -> None:
    out = await a.open_stream()
    await out.send(b"x")
    inbound = await b.accept_stream()
    await receive_exactly(inbound, 1)
    await a.aclose()
    await a.aclose()  # idempotent
    if not a.is_closed:
        raise AssertionError("is_closed is False after aclose()")
    for stream, side in ((out, "closing"), (inbound, "remote")):
        try:
            await stream.receive()
        except StreamReset:
            pass
        except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            raise AssertionError(
                f"open stream on the {side} side raised {exc!r}, not StreamReset"
            ) from None
        else:
            raise AssertionError(f"open stream on the {side} side was not reset by close")
    for conn, side in ((a, "closing"), (b, "remote")):
        try:
            await conn.accept_stream()
        except ConnectionClosedError:
            pass
        else:
            raise AssertionError(f"accept_stream() on the {side} side did not raise")
    try:
        await a.open_stream()
    except ConnectionClosedError:
        pass
    else:
        raise AssertionError("open_stream() after aclose() did not raise ConnectionClosedError")
    if a.close_reason is not None:
        raise AssertionError(f"a local clean close recorded close_reason={a.close_reason!r}")


_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("open/accept and data both ways", _check_open_accept_and_data),
    ("half-close", _check_half_close),
    ("reset", _check_reset),
    ("100 concurrent echo streams", _check_many_streams),
    ("8 MiB transfer", _check_large_transfer),
    ("connection close", _check_connection_close),
)


def _as_assertion(name: str, exc: Exception) -> AssertionError:
    leaf: BaseException = exc
    while isinstance(leaf, BaseExceptionGroup):  # nested task groups wrap the first failure
        leaf = leaf.exceptions[0]
    detail = str(leaf) if isinstance(leaf, AssertionError) else f"unexpected {leaf!r}"
    failure = AssertionError(f"check_muxer[{name}]: {detail}")
    failure.__cause__ = exc
    return failure


def _connect(
    muxer_a: Muxer, muxer_b: Muxer, budgets: tuple[CountingBudget, CountingBudget] | None
) -> tuple[MuxedConnection, MuxedConnection]:
    conn_a, conn_b = fake_secure_pair()
    if budgets is not None and takes_memory_budget(muxer_a) and takes_memory_budget(muxer_b):
        return (
            muxer_a.new_connection(conn_a, is_initiator=True, memory=budgets[0]),
            muxer_b.new_connection(conn_b, is_initiator=False, memory=budgets[1]),
        )
    return (
        muxer_a.new_connection(conn_a, is_initiator=True),
        muxer_b.new_connection(conn_b, is_initiator=False),
    )


def _budget_failure(name: str, budgets: tuple[CountingBudget, CountingBudget]) -> str | None:
    for side, budget in zip("ab", budgets, strict=True):
        if budget.errors:
            return f"check_muxer[{name}]: side {side} misused its memory budget: {budget.errors}"
        if budget.reserved:
            return (
                f"check_muxer[{name}]: side {side} still holds {budget.reserved} bytes of its "
                "memory budget after the connection closed"
            )
    return None


async def _run_one(
    make_muxer: Callable[[], Muxer],
    name: str,
    check: _Check,
    time_limit: float,
    budgets: tuple[CountingBudget, CountingBudget] | None = None,
) -> None:
    a, b = _connect(make_muxer(), make_muxer(), budgets)
    finished = {"a": anyio.Event(), "b": anyio.Event()}
    failure: BaseException | None = None

    async def run(conn: MuxedConnection, key: str) -> None:
        await conn.run()
        finished[key].set()

    async with anyio.create_task_group() as group:
        group.start_soon(run, a, "a")
        group.start_soon(run, b, "b")
        try:
            with anyio.fail_after(time_limit):
                await check(a, b)
        except TimeoutError:
            failure = AssertionError(f"check_muxer[{name}]: timed out after {time_limit} s")
        except Exception as exc:  # any error is a failed check, reported with its cause
            failure = _as_assertion(name, exc)
        await a.aclose()
        await b.aclose()
        with anyio.move_on_after(time_limit) as scope:
            await finished["a"].wait()
            await finished["b"].wait()
        if scope.cancelled_caught and failure is None:
            failure = AssertionError(f"check_muxer[{name}]: run() did not return after aclose()")
        group.cancel_scope.cancel()
    if failure is None and budgets is not None and (text := _budget_failure(name, budgets)):
        failure = AssertionError(text)
    if failure is not None:
        raise failure from failure.__cause__


async def check_muxer(make_muxer: Callable[[], Muxer], *, time_limit: float = 30.0) -> None:
    """Check that a muxer honours the ``MuxedConnection`` / ``MuxedStream`` contract.

    Each check runs on a fresh pair of connections (``is_initiator`` True on one side, False on
    the other) over ``fake_secure_pair()``, with both ``run()`` loops in a task group: open and
    accept from both sides, data both ways, ``receive(max_bytes)`` and cancel-safety,
    half-close, reset, 100 concurrent 64 KiB echo streams, an 8 MiB hash-checked transfer, and
    connection close (open streams reset, ``accept_stream``/``open_stream`` raise
    ``ConnectionClosedError``, ``run()`` returns). A ``MemoryBudgetedMuxer`` runs every check
    again with a ``CountingBudget`` per side (no release of more than was reserved, nothing
    left reserved once the connection closed), and a check that buffered data is reserved
    and released once read.

    Args:
        make_muxer: builds a fresh ``Muxer`` (called twice per check, once per side).
        time_limit: seconds each check may take.

    Raises:
        AssertionError: a check failed; the message names it.
    """
    for name, check in _CHECKS:
        await _run_one(make_muxer, name, check, time_limit)
    if not takes_memory_budget(make_muxer()):
        return
    for name, check in _CHECKS:  # again, each side reserving in a CountingBudget
        await _run_one(make_muxer, f"{name}, with memory budgets", check, time_limit, _budgets())
    budgets = _budgets()

    async def follows_reads(a: MuxedConnection, b: MuxedConnection) -> None:
        await check_memory_follows_reads(a, b, budgets[1])

    await _run_one(make_muxer, "memory released as read", follows_reads, time_limit, budgets)


def _budgets() -> tuple[CountingBudget, CountingBudget]:
    return CountingBudget(), CountingBudget()
