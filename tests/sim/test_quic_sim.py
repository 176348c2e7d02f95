"""QUIC on the simulated network: the real QUIC transport over simnet datagrams, its handshake
in one round trip against TCP+Noise+yamux's several, and reproducible runs."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Identity
from p2pstack.roots.scenarios import (
    PingWorkload,
    Scenario,
    ScenarioError,
    SimQuicSocket,
    load_scenario,
    parse_scenario,
    run_scenario,
    sim_quic_transport,
)
from p2pstack.roots.scenarios._report import metrics_values
from p2pstack.sim import SeededRandom, run_virtual
from transports.simnet import Latency, LinkSpec, SimNetwork

EXAMPLE = Path(__file__).parents[2] / "examples" / "sim" / "quic.toml"
SEED = int(os.environ.get("P2PSTACK_SIM_SEED", "3"))


def _example(transport: str = "quic") -> Scenario:
    # The example, shortened so that three runs stay well within a CI budget.
    return attrs.evolve(load_scenario(EXAMPLE), nodes=12, duration=12.0, transport=transport)


def test_quic_handshake_takes_one_round_trip_tcp_more_and_runs_repeat() -> None:
    quic = run_scenario(_example(), seed=SEED)
    again = run_scenario(_example(), seed=SEED)
    tcp = run_scenario(_example(transport="tcp"), seed=SEED)
    q, t = metrics_values(quic), metrics_values(tcp)
    assert q["transport"] == "quic" and t["transport"] == "tcp"
    assert q["dial_failures"] == 0
    assert isinstance(q["dials_ok"], int) and q["dials_ok"] >= 12
    assert isinstance(q["connections_final"], int) and q["connections_final"] >= 12
    assert quic.workload(PingWorkload).pings_between(0, 12)[0] > 0
    rtt_ms = 2 * 20.0  # the example's one-way latency is 20 ms
    quic_ms, tcp_ms = q["dial_p50_ms"], t["dial_p50_ms"]
    assert isinstance(quic_ms, float) and isinstance(tcp_ms, float)
    # One round trip, plus the wire time of the handshake's datagrams at 1.25 MB/s.
    assert rtt_ms <= quic_ms < 1.25 * rtt_ms
    assert tcp_ms >= 2.5 * rtt_ms
    # The same seed gives the same run: every metric, and the trace hash among them.
    assert metrics_values(again) == q


def test_transport_is_validated() -> None:
    assert parse_scenario({"transport": "quic"}).transport == "quic"
    with pytest.raises(ScenarioError, match="transport"):
        parse_scenario({"transport": "sctp"})


def test_sim_quic_socket_carries_datagrams_both_ways() -> None:
    async def main() -> tuple[list[tuple[bytes, tuple[str, int]]], tuple[str, int], bool]:
        net = SimNetwork(SeededRandom(1, "net"), default_link=LinkSpec(latency=Latency(a=0.01)))
        a = SimQuicSocket(await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0")))
        b = SimQuicSocket(await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9")))
        await a.send([(b"one", b.local_address), (b"two", b.local_address)])
        with anyio.fail_after(1):
            got = await b.receive(8)
        b.close()
        with pytest.raises(anyio.ClosedResourceError):
            await b.receive(8)
        a.send_nowait([(b"dropped", ("11.0.0.2", 9))])  # closed port: silently lost
        return got, a.local_address, b.sock.closed

    got, source, closed = run_virtual(main)
    assert got == [(b"one", source), (b"two", source)]
    assert source[0] == "11.0.0.1"
    assert closed


def test_quic_transport_dials_over_the_simulated_network() -> None:
    async def main() -> float:
        net = SimNetwork(SeededRandom(2, "net"), default_link=LinkSpec(latency=Latency(a=0.03)))
        server = sim_quic_transport(net.transport(1), SeededRandom(2, "a").random_bytes)
        client = sim_quic_transport(net.transport(2), SeededRandom(2, "b").random_bytes)
        server._identity, client._identity = Identity.generate(), Identity.generate()
        async with server, client:
            listener = await server.listen(Multiaddr("/ip4/0.0.0.0/udp/4001/quic-v1"))
            assert str(listener.multiaddrs[0]) == "/ip4/11.0.0.1/udp/4001/quic-v1"
            # aioquic reads a time of 0.0 as "never" in places: start a virtual second in.
            await anyio.sleep(1.0)
            start = anyio.current_time()
            with anyio.fail_after(5):
                conn = await client.dial(listener.multiaddrs[0], remote_peer=None)
            took = anyio.current_time() - start
            assert conn.info.remote_peer == server._identity.peer_id
            assert str(conn.info.local_addr).startswith("/ip4/11.0.0.2/udp/")
            await conn.muxed.aclose()
            await listener.aclose()
        return took

    took = run_virtual(main)
    assert 0.06 <= took < 0.07  # one 60 ms round trip (no bandwidth limit here)
