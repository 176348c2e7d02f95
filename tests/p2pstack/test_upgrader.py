"""The upgrader's staged deadlines, its errors, and the responder role of a simultaneous open."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from p2pstack.errors import P2PError, P2PTimeoutError, PeerIdMismatch, UpgradeError
from p2pstack.identity import Identity
from p2pstack.interfaces import Buffer, RawConnection, UpgradedConnection
from p2pstack.streams import MemoryConnection, memory_connection_pair
from p2pstack.upgrader import DefaultUpgrader
from transports.noise import Noise
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

HEADER = b"\x13/multistream/1.0.0\n"


def upgrader(
    identity: Identity | None = None,
    *,
    first_byte: float = 3.0,
    security: float = 10.0,
    total: float = 15.0,
) -> DefaultUpgrader:
    return DefaultUpgrader(
        identity or Identity.generate(),
        [Noise()],
        [Yamux()],
        timeout=total,
        first_byte_timeout=first_byte,
        security_timeout=security,
    )


class SlowLink:
    """A raw connection whose every receive takes ``delay`` seconds longer: a slow link."""

    def __init__(self, inner: MemoryConnection, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.local_multiaddr = inner.local_multiaddr
        self.remote_multiaddr = inner.remote_multiaddr

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.sleep(self.delay)
        return await self.inner.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_silent_connection_is_dropped_after_the_first_byte_deadline() -> None:
    ours, _silent = memory_connection_pair()
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError, match="first byte"):
        await upgrader(first_byte=0.3).upgrade_inbound(ours)
    assert anyio.current_time() - start < 2.0
    with pytest.raises(anyio.ClosedResourceError):
        await ours.send(b"x")  # the upgrader closed it


async def test_a_stalled_handshake_fails_at_the_security_deadline() -> None:
    ours, theirs = memory_connection_pair()
    await theirs.send(HEADER + b"\x07/noise\n")  # then never a Noise message
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError, match="security") as info:
        await upgrader(first_byte=0.3, security=0.6).upgrade_inbound(ours)
    assert "0.6" in str(info.value)


async def test_a_slow_honest_link_still_completes() -> None:
    # Every read takes 0.25 s: the handshake takes longer than the first-byte deadline, but the
    # first byte arrives in time and the later stages have their own, longer deadlines.
    a_raw, b_raw = memory_connection_pair()
    dialer, listener = upgrader(first_byte=0.4), upgrader(first_byte=0.4)
    results: dict[str, UpgradedConnection] = {}

    async def inbound() -> None:
        results["in"] = await listener.upgrade_inbound(SlowLink(b_raw, 0.25))

    with anyio.fail_after(10):
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            link: RawConnection = SlowLink(a_raw, 0.25)
            results["out"] = await dialer.upgrade_outbound(link, remote_peer=None)
        assert anyio.current_time() - start > 0.4
    assert results["out"].info.muxer == results["in"].info.muxer == "/yamux/1.0.0"
    for up in results.values():
        await up.muxed.aclose()


async def test_remote_closing_our_upgrade_says_so() -> None:
    ours, theirs = memory_connection_pair()
    await theirs.aclose()  # as a node at its connection limit does
    with anyio.fail_after(5), pytest.raises(UpgradeError, match="connection limit") as info:
        await upgrader().upgrade_outbound(ours, remote_peer=None)
    assert "closed the connection" in str(info.value)


async def test_simultaneous_open_with_the_responder_role() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    a_raw, b_raw = memory_connection_pair()
    results: dict[str, UpgradedConnection] = {}

    async def as_responder() -> None:
        results["b"] = await upgrader(b_id).upgrade_outbound(
            b_raw, remote_peer=a_id.peer_id, role="responder"
        )

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(as_responder)
            results["a"] = await upgrader(a_id).upgrade_outbound(a_raw, remote_peer=b_id.peer_id)
    a, b = results["a"].info, results["b"].info
    assert a.direction == b.direction == "outbound"
    assert (a.remote_peer, b.remote_peer) == (b_id.peer_id, a_id.peer_id)
    for up in results.values():
        await up.muxed.aclose()


async def test_responder_role_still_checks_the_expected_peer() -> None:
    a_raw, b_raw = memory_connection_pair()
    wrong = Identity.generate().peer_id

    async def initiator() -> None:
        with contextlib.suppress(P2PError):  # the responder hangs up on it
            await upgrader().upgrade_outbound(a_raw, remote_peer=None)

    mismatches: list[PeerIdMismatch] = []

    async def responder() -> None:
        try:
            await upgrader().upgrade_outbound(b_raw, remote_peer=wrong, role="responder")
        except PeerIdMismatch as exc:
            mismatches.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(initiator)
            tg.start_soon(responder)
    assert len(mismatches) == 1 and mismatches[0].expected == str(wrong)
