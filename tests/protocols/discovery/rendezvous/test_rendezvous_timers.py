"""Rendezvous timers over hosts: the point expires registrations on its own, the client
refreshes before its TTL runs out and unregisters when it stops."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.identity import PeerId
from protocols.discovery.rendezvous import (
    Register,
    RegisterResponse,
    RegistryConfig,
    Rendezvous,
    RendezvousPoint,
    Status,
)
from tests.protocols.discovery.rendezvous.test_rendezvous_service import hosts

SHORT = RegistryConfig(min_ttl=1, default_ttl=1)


@pytest.mark.anyio
async def test_point_expires_registrations_without_requests() -> None:
    point = RendezvousPoint(SHORT)
    emptied = anyio.Event()
    real = point.registry.handle_timer

    def spy(now: float) -> None:
        real(now)
        if point.registry.statistics().expired:
            emptied.set()

    point.registry.handle_timer = spy  # type: ignore[method-assign]  # a spy stands in for the method in this test
    async with hosts([point]) as (p,):
        client = Rendezvous([str(p.addrs[0])])
        async with hosts([client]):
            with anyio.fail_after(20):
                assert await client.register("app", ttl=1) == 1
                await emptied.wait()
            assert point.registry.registrations() == []


@pytest.mark.anyio
async def test_client_refreshes_then_unregisters_on_stop() -> None:
    point = RendezvousPoint(SHORT)
    accepted: list[PeerId] = []
    refreshed, removed = anyio.Event(), anyio.Event()
    real_register, real_unregister = point.registry.register, point.registry.unregister

    def on_register(peer: PeerId, msg: Register, now: float) -> RegisterResponse:
        response = real_register(peer, msg, now)
        if response.status == Status.OK:
            accepted.append(peer)
            if len(accepted) == 2:
                refreshed.set()
        return response

    def on_unregister(peer: PeerId, ns: str) -> None:
        real_unregister(peer, ns)
        removed.set()

    point.registry.register = on_register  # type: ignore[method-assign]  # a spy stands in for the method in this test
    point.registry.unregister = on_unregister  # type: ignore[method-assign]  # a spy stands in for the method in this test
    async with hosts([point]) as (p,):
        client = Rendezvous([str(p.addrs[0])], register=["app"], ttl=2)
        async with hosts([client]) as (h,):
            with anyio.fail_after(20):
                await refreshed.wait()  # granted 2 s: refreshed after 1 s
            assert accepted == [h.peer_id, h.peer_id]
        with anyio.fail_after(20):
            await removed.wait()
        assert point.registry.registrations() == []
