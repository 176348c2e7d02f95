"""The upgrader hands the connection's memory budget to muxers that take one, and keeps calling
muxers written before that parameter existed without it."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.identity import Identity
from p2pstack.interfaces import MuxedConnection, Muxer, SecureConnection, UpgradedConnection
from p2pstack.streams import memory_connection_pair
from p2pstack.testing import CountingBudget
from p2pstack.testing._io import receive_exactly
from p2pstack.upgrader import DefaultUpgrader, takes_memory_budget
from transports.mplex import Mplex
from transports.noise import Noise
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio


class OldStyleMuxer:
    """A third-party muxer whose ``new_connection`` has no ``memory`` parameter."""

    def __init__(self) -> None:
        self.inner = Yamux()
        self.calls = 0

    @property
    def protocol_id(self) -> str:
        return self.inner.protocol_id

    def new_connection(self, conn: SecureConnection, *, is_initiator: bool) -> MuxedConnection:
        self.calls += 1
        return self.inner.new_connection(conn, is_initiator=is_initiator)


def test_which_muxers_take_a_budget() -> None:
    assert takes_memory_budget(Yamux()) and takes_memory_budget(Mplex())
    assert not takes_memory_budget(OldStyleMuxer())


async def _upgrade(
    dialer_muxer: Muxer, listener_muxer: Muxer, budget: CountingBudget
) -> tuple[UpgradedConnection, UpgradedConnection]:
    a_raw, b_raw = memory_connection_pair()
    dialer = DefaultUpgrader(Identity.generate(), [Noise()], [dialer_muxer])
    listener = DefaultUpgrader(Identity.generate(), [Noise()], [listener_muxer])
    results: dict[str, UpgradedConnection] = {}

    async def inbound() -> None:
        results["in"] = await listener.upgrade_inbound(b_raw, memory=budget)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            results["out"] = await dialer.upgrade_outbound(a_raw, remote_peer=None)
    return results["out"], results["in"]


@pytest.mark.parametrize("muxer", [Yamux, Mplex])
async def test_the_listener_muxer_reserves_in_the_budget(muxer: type[Muxer]) -> None:
    budget = CountingBudget()
    out, inbound = await _upgrade(muxer(), muxer(), budget)
    async with anyio.create_task_group() as tg:
        tg.start_soon(out.muxed.run)
        tg.start_soon(inbound.muxed.run)
        with anyio.fail_after(10):
            stream = await out.muxed.open_stream()
            await stream.send(b"q" * 1000)
            accepted = await inbound.muxed.accept_stream()
            await budget.wait_for(">=", 1000)
            await receive_exactly(accepted, 1000)
            await budget.wait_for("==", 0)
        await out.muxed.aclose()
        await inbound.muxed.aclose()
    assert budget.reservations >= 1 and budget.reserved == 0 and budget.errors == []


async def test_an_old_style_muxer_is_called_without_the_budget() -> None:
    old = OldStyleMuxer()
    budget = CountingBudget()
    out, inbound = await _upgrade(OldStyleMuxer(), old, budget)
    assert old.calls == 1 and budget.reservations == 0
    for up in (out, inbound):
        await up.muxed.aclose()
