"""Rendezvous interop with py-libp2p 0.8.1, both ways: our client at py's point, py's client at
our point (tests/interop/README.md, "Rendezvous mode"). js-libp2p has no maintained rendezvous.

py-libp2p's wire form differs from the spec: it registers an unsigned ``PeerInfo`` where the spec
has a signed peer record, and reads only that form back (docs/discovery.md, "Rendezvous").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from protocols.discovery.rendezvous import RegistryConfig, Rendezvous, RendezvousPoint
from protocols.identify import Identify
from tests.interop.conftest import Peer
from tests.interop.peers import Event, PeerProcess
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

#: Bound on one command or wait (loopback; a py peer takes ~1-2 s to start).
TIMEOUT = 30.0


@asynccontextmanager
async def our_hosts(*services: Sequence[Service]) -> AsyncIterator[list[Host]]:
    async with AsyncExitStack() as stack:
        hosts = []
        for svcs in services:
            host = await stack.enter_async_context(
                open_host(
                    transports=[TcpTransport()],
                    security=[Noise()],
                    muxers=[Yamux()],
                    services=[Identify(), *svcs],
                    listen=["/ip4/127.0.0.1/tcp/0"],
                    config=HostConfig(upgrade_timeout=TIMEOUT),
                )
            )
            hosts.append(host)
        yield hosts


async def command(proc: PeerProcess, line: str) -> Event:
    """Send one stdin command to the py peer and return its reply."""
    verb = line.split(maxsplit=1)[0]
    stdin = proc.process.stdin
    assert stdin is not None
    await stdin.send(f"{line}\n".encode())
    with anyio.fail_after(TIMEOUT):
        while True:
            event = await proc.next_event(TIMEOUT)
            if event.get("command") != verb:
                continue
            assert event["event"] != "command_error", f"`{line}`: {event['message']}"
            return event


async def py_stats(proc: PeerProcess, ns: str, want: set[str]) -> None:
    """Poll the py point until ``ns`` holds exactly ``want`` (no event crosses the process)."""
    have: set[str] = set()
    with anyio.move_on_after(TIMEOUT):
        while True:
            have = set((await command(proc, "stats"))["peers"].get(ns, []))
            if have == want:
                return
            await anyio.sleep(0.1)
    raise AssertionError(f"py point holds {have} in {ns!r}, wanted {want}")


@pytest.mark.anyio
async def test_our_client_at_py_point(peer: Peer) -> None:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--rendezvous", "point"]
    async with peer("py", args) as proc:
        listening = await proc.wait_for("listening", TIMEOUT)
        await proc.wait_for("ready", TIMEOUT)
        point_addr = listening["addrs"][0]
        a, b = Rendezvous([point_addr]), Rendezvous([point_addr])
        async with our_hosts([a], [b]) as (ha, hb):
            with anyio.fail_after(TIMEOUT):
                # py refuses our signed record (E_NOT_AUTHORIZED): the client falls back.
                assert await a.register("app", 7200) == 7200
                await py_stats(proc, "app", {str(ha.peer_id)})
                found, _cookie = await b.discover("app", 10)
                assert [(r.peer_id, set(r.addrs), r.signed) for r in found] == [
                    (ha.peer_id, set(ha.listen_addrs), False)
                ]
                assert found[0].ttl > 7000
                await a.unregister("app")
                await py_stats(proc, "app", set())
                assert (await b.discover("app", 10))[0] == []
                assert hb.peer_id not in {r.peer_id for r in found}


@pytest.mark.anyio
async def test_our_discovery_service_at_py_point(peer: Peer) -> None:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--rendezvous", "point"]
    async with peer("py", args) as proc:
        listening = await proc.wait_for("listening", TIMEOUT)
        await proc.wait_for("ready", TIMEOUT)
        point_addr = listening["addrs"][0]
        registrant = Rendezvous([point_addr], register=["app"])
        watcher = Rendezvous([point_addr], discover=["app"], poll_interval=0.5)
        async with our_hosts([registrant], [watcher]) as (hr, _hw):
            with anyio.fail_after(TIMEOUT):
                async for found in watcher.discovered():
                    if found.peer_id == hr.peer_id:
                        break
            assert found.source == "rendezvous" and set(found.addrs) == set(hr.listen_addrs)


@pytest.mark.anyio
async def test_py_client_at_our_point(peer: Peer) -> None:
    point = RendezvousPoint()
    unregistered = anyio.Event()
    real_unregister = point.registry.unregister

    def spy(peer: PeerId, ns: str) -> None:
        real_unregister(peer, ns)
        unregistered.set()

    point.registry.unregister = spy  # type: ignore[method-assign]  # a spy stands in for the method in this test
    async with our_hosts([point]) as (hp,):
        ours = Rendezvous([str(hp.addrs[0])])
        async with our_hosts([ours]) as (ho,):
            with anyio.fail_after(TIMEOUT):
                assert await ours.register("app") == 7200
            args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--rendezvous", "client"]
            args += ["--bootstrap", str(hp.addrs[0])]
            async with peer("py", args) as proc:
                listening = await proc.wait_for("listening", TIMEOUT)
                await proc.wait_for("ready", TIMEOUT)
                py_id = PeerId.from_string(listening["peer_id"])
                reply = await command(proc, "register app 7200")
                assert reply["ttl"] == 7200
                regs = {r.peer: r for r in point.registry.registrations("app")}
                assert set(regs) == {ho.peer_id, py_id}
                assert not regs[py_id].signed and regs[ho.peer_id].signed
                # py reads only PeerInfo; having registered that way it gets that form back
                reply = await command(proc, "discover app 10")
                peers = {p["peer_id"]: set(p["addrs"]) for p in reply["peers"]}
                assert peers[str(ho.peer_id)] == {str(a) for a in ho.listen_addrs}
                assert set(peers) == {str(ho.peer_id), str(py_id)}
                reply = await command(proc, f"discover app 10 {reply['cookie']}")
                assert reply["peers"] == []
                # our client sees py's unsigned registration
                with anyio.fail_after(TIMEOUT):
                    found, _ = await ours.discover("app")
                assert {(r.peer_id, r.signed) for r in found} == {
                    (ho.peer_id, True),
                    (py_id, False),
                }
                await command(proc, "unregister app")
                with anyio.fail_after(TIMEOUT):
                    await unregistered.wait()  # UNREGISTER has no answer
                assert [r.peer for r in point.registry.registrations("app")] == [ho.peer_id]


@pytest.mark.anyio
async def test_py_client_that_only_discovers(peer: Peer) -> None:
    # Without a PeerInfo registration of its own, py is recognised only by the point's option.
    point = RendezvousPoint(RegistryConfig(peer_info_responses=True))
    async with our_hosts([point]) as (hp,):
        ours = Rendezvous([str(hp.addrs[0])])
        async with our_hosts([ours]) as (ho,):
            with anyio.fail_after(TIMEOUT):
                await ours.register("app")
            args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--rendezvous", "client"]
            async with peer("py", [*args, "--bootstrap", str(hp.addrs[0])]) as proc:
                await proc.wait_for("ready", TIMEOUT)
                reply = await command(proc, "discover app 10")
                assert reply["peers"] == [
                    {"peer_id": str(ho.peer_id), "addrs": [str(a) for a in ho.listen_addrs]}
                ]
