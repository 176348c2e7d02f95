"""Tests for the memory transport: the conformance suite, id allocation, unknown ids, the
bounded backlog and connections left unaccepted at close."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.streams import MemoryConnection
from p2pstack.testing import check_transport
from transports.memory import DEFAULT_NETWORK, MemoryListener, MemoryNetwork, MemoryTransport

PEER = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"


@pytest.mark.anyio
async def test_conformance() -> None:
    await check_transport(MemoryTransport(MemoryNetwork()), Multiaddr("/memory/0"))


@pytest.mark.anyio
async def test_conformance_fixed_id_on_default_network() -> None:
    await check_transport(MemoryTransport(), Multiaddr("/memory/987654"))


def test_default_network_is_shared() -> None:
    assert MemoryTransport().network is DEFAULT_NETWORK
    assert MemoryTransport().network is MemoryTransport().network


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("/memory/5", True),
        (f"/memory/5/p2p/{PEER}", True),
        ("/ip4/127.0.0.1/tcp/5", False),
        ("/memory/5/tcp/5", False),
    ],
)
def test_can_dial(addr: str, ok: bool) -> None:
    assert MemoryTransport().can_dial(Multiaddr(addr)) is ok
    assert MemoryTransport().can_listen(Multiaddr(addr)) is ok


@pytest.mark.anyio
async def test_listen_zero_picks_distinct_free_ids() -> None:
    transport = MemoryTransport(MemoryNetwork())
    first = await transport.listen(Multiaddr("/memory/0"))
    second = await transport.listen(Multiaddr("/memory/0"))
    try:
        assert first.multiaddrs[0] != second.multiaddrs[0]
        assert first.multiaddrs[0].value_for_protocol("memory") != "0"
        with pytest.raises(TransportError, match="in use"):
            await transport.listen(first.multiaddrs[0])
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.anyio
async def test_networks_are_isolated() -> None:
    a, b = MemoryTransport(MemoryNetwork()), MemoryTransport(MemoryNetwork())
    listener = await a.listen(Multiaddr("/memory/7"))
    try:
        with pytest.raises(TransportError, match="nothing listens"):
            await b.dial(Multiaddr("/memory/7"))
    finally:
        await listener.aclose()


@pytest.mark.anyio
async def test_dial_unknown_id() -> None:
    with pytest.raises(TransportError, match="/memory/424242"):
        await MemoryTransport(MemoryNetwork()).dial(Multiaddr("/memory/424242"))


@pytest.mark.anyio
async def test_backlog_is_bounded() -> None:
    transport = MemoryTransport(MemoryNetwork(), backlog=2)
    listener = await transport.listen(Multiaddr("/memory/0"))
    addr = listener.multiaddrs[0]
    try:
        first = await transport.dial(addr)
        await transport.dial(addr)
        with pytest.raises(TransportError, match="backlog full"):
            await transport.dial(addr)
        accepted = await listener.accept()
        assert accepted.remote_multiaddr == first.local_multiaddr
        third = await transport.dial(addr)  # room again after one accept
        await third.aclose()
    finally:
        await listener.aclose()


@pytest.mark.anyio
async def test_close_ends_unaccepted_connections() -> None:
    transport = MemoryTransport(MemoryNetwork())
    listener = await transport.listen(Multiaddr("/memory/0"))
    conn = await transport.dial(listener.multiaddrs[0])
    await listener.aclose()
    with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
        await conn.receive()


class _EmptyReadConnection:
    """Wraps a memory connection but returns ``b""`` at end of stream: a contract break."""

    def __init__(self, inner: MemoryConnection) -> None:
        self._inner = inner
        self.local_multiaddr = inner.local_multiaddr
        self.remote_multiaddr = inner.remote_multiaddr

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._inner.receive(max_bytes)
        except anyio.EndOfStream:
            return b""

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _BrokenDialTransport(MemoryTransport):
    async def dial(self, addr: Multiaddr) -> MemoryConnection:
        conn = await super().dial(addr)
        return _EmptyReadConnection(conn)  # type: ignore[return-value]  # deliberately broken


class _PortZeroListener:
    def __init__(self, inner: MemoryListener) -> None:
        self._inner = inner
        self.multiaddrs = (Multiaddr("/memory/0"),)
        self.accept = inner.accept
        self.aclose = inner.aclose


class _PortZeroTransport(MemoryTransport):
    async def listen(self, addr: Multiaddr) -> MemoryListener:
        listener = await super().listen(addr)
        return _PortZeroListener(listener)  # type: ignore[return-value]  # deliberately broken


@pytest.mark.anyio
async def test_check_transport_catches_empty_receive() -> None:
    with pytest.raises(AssertionError, match="EndOfStream"):
        await check_transport(_BrokenDialTransport(MemoryNetwork()), Multiaddr("/memory/0"))


@pytest.mark.anyio
async def test_check_transport_catches_unreported_id() -> None:
    with pytest.raises(AssertionError, match="memory 0"):
        await check_transport(_PortZeroTransport(MemoryNetwork()), Multiaddr("/memory/0"))
