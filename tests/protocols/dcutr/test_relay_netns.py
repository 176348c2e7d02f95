"""The whole path in network namespaces with nftables NAT routers and a real p2pstack relay:
AutoNAT finds the node behind NAT A private, auto-relay reserves at the relay on its own, the
node behind NAT B dials the ``/p2p-circuit`` address, and DCUtR replaces the relayed connection
by a direct one (TCP simultaneous open, QUIC); behind symmetric NATs it fails after 3 attempts
and the relayed connection keeps working."""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import pytest

from tests.protocols.dcutr.natnet import NatNet, available, nat_network
from tests.protocols.dcutr.test_netns_holepunch import Proc, processes

pytestmark = pytest.mark.skipif(not available(), reason="needs root, ip and nft")
PEER = "tests.protocols.dcutr.relay_netns_peer"


def _of_kind(addrs: list[str], kind: str) -> str:
    marker = "/tcp/" if kind == "tcp" else "/quic-v1"
    return next(a for a in addrs if marker in a.split("/p2p-circuit")[0])


def wait_all(proc: Proc, names: set[str], timeout: float) -> dict[str, dict[str, Any]]:
    """The first event of each name in ``names``, in whatever order they come."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while names - seen.keys() and (left := deadline - time.monotonic()) > 0:
        try:
            line = proc.lines.get(timeout=left)
        except queue.Empty:
            break
        if line.startswith("{"):
            obj: dict[str, Any] = json.loads(line)
            if obj.get("event") in names:
                seen.setdefault(obj["event"], obj)
    if names - seen.keys():
        proc.stop()
        assert proc.popen.stderr is not None
        raise AssertionError(f"missing {names - seen.keys()}: {proc.popen.stderr.read()[-3000:]}")
    return seen


def run(net: NatNet, kind: str) -> dict[str, dict[str, Any]]:
    """Relay, listener (A) and dialer (B); every report by name."""
    out: dict[str, dict[str, Any]] = {}
    with processes() as procs:
        relay = Proc(net.inet, "-m", PEER, "relay", net.splicer_ip)
        procs.append(relay)
        ready = relay.wait_for("ready", 30)
        relay_addr = _of_kind(ready["addrs"], kind)
        a = Proc(net.host_a, "-m", PEER, "listen", relay_addr)
        procs.append(a)
        out["reachability"] = a.wait_for("reachability", 60)
        out["reservation"] = a.wait_for("reservation", 60)
        target = _of_kind(a.wait_for("ready", 30)["addrs"], kind)
        b = Proc(net.host_b, "-m", PEER, "dial", relay_addr, target)
        procs.append(b)
        out["a"] = a.wait_for("holepunch", 60)
        out["b"] = b.wait_for("holepunch", 30)
        out["ping"] = a.wait_for("ping", 40)
    return out


@pytest.mark.parametrize("kind", ["tcp", "quic"])
def test_private_node_reserves_on_its_own_and_is_hole_punched(kind: str) -> None:
    with nat_network() as net:
        out = run(net, kind)
    # AutoNAT (the relay's server could not dial back through NAT A) -> auto-relay.
    assert out["reachability"]["reachability"] == "private"
    assert out["reservation"]["advertised"], out["reservation"]  # host.addresses carries it
    a, b, ping = out["a"], out["b"], out["ping"]
    # The listener received the relayed connection: it is the spec's B, the initiator.
    assert a["role"] == "initiator" and b["role"] == "responder"
    assert a["outcome"] == "direct" and b["outcome"] == "direct", (a, b)
    assert a["transport"] == ("tcp" if kind == "tcp" else "quic-v1")
    assert 1 <= a["attempts"] <= 3
    proto = "tcp" if kind == "tcp" else "udp"
    # Each sees the other at its NAT's outside address: the connection crossed both NATs.
    assert a["remote_addr"].startswith(f"/ip4/{net.nat_b_wan}/{proto}/4001"), a
    assert b["remote_addr"].startswith(f"/ip4/{net.nat_a_wan}/{proto}/4001"), b
    # The relayed connection was replaced: pings run over the direct connection only.
    assert ping["limited_closed"] is True
    assert len(ping["rtts_ms"]) == 3
    assert ping["connections"] and all(limited is False for _, limited in ping["connections"])


@pytest.mark.parametrize("kind", ["tcp", pytest.param("quic", marks=pytest.mark.long)])
def test_symmetric_nats_fail_after_three_attempts_and_the_relay_keeps_working(kind: str) -> None:
    with nat_network(symmetric=True) as net:
        started = time.monotonic()
        out = run(net, kind)
        took = time.monotonic() - started
    a, b, ping = out["a"], out["b"], out["ping"]
    assert a["outcome"] == "failed" and a["attempts"] == 3, a
    assert "3 attempts" in a["reason"]
    assert b["outcome"] == "failed"
    # Still connected through the relay: the pings cross the limited connection.
    assert ping["limited_closed"] is False
    assert len(ping["rtts_ms"]) == 3
    assert ping["connections"] and all(limited for _, limited in ping["connections"])
    assert took < 120


@pytest.mark.parametrize("how", ["--relay", pytest.param("--bootstrap", marks=pytest.mark.long)])
def test_cli_node_reserves_is_dialed_through_the_relay_and_hole_punched(how: str) -> None:
    """``p2pstack node --relay MA --dcutr --autonat`` behind NAT A prints its reachability, its
    reservation and the hole punch's outcome as JSON events. With ``--bootstrap MA`` instead,
    nothing names a relay: AutoNAT finds the node private and auto-relay reserves at the
    connected peer that serves the hop protocol."""
    node_args = [
        *("-m", "p2pstack.roots.cli", "node", "--json"),
        *("--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1"),
        *("--dcutr", "--dcutr-allow-private", "--autonat", "--autonat-allow-private"),
        *("--autonat-confidence", "1", "--observed-confirmations", "1"),
    ]
    with nat_network() as net, processes() as procs:
        relay = Proc(net.inet, "-m", PEER, "relay", net.splicer_ip)
        procs.append(relay)
        relay_addr = _of_kind(relay.wait_for("ready", 30)["addrs"], "tcp")
        a = Proc(net.host_a, *node_args, how, relay_addr)
        procs.append(a)
        listening = a.wait_for("listening", 30)
        assert not any("/0.0.0.0/" in addr for addr in listening["addrs"])
        got = wait_all(a, {"relay:reservation", "reachability"}, 60)
        made, reach = got["relay:reservation"], got["reachability"]
        assert made["state"] == "made"
        assert reach["reachability"] == "private", reach
        target = f"{_of_kind(made['addrs'], 'tcp')}/p2p/{listening['peer_id']}"
        b = Proc(net.host_b, "-m", PEER, "dial", relay_addr, target)
        procs.append(b)
        punched = a.wait_for("holepunch", 60)
        theirs = b.wait_for("holepunch", 30)
    # DCUtR ran over the relayed connection, started by the node that received it.
    assert punched["role"] == "initiator" and theirs["role"] == "responder"
    assert punched["outcome"] == "direct" and theirs["outcome"] == "direct", (punched, theirs)
    assert punched["role"] == "initiator" and punched["transport"] == "tcp"
    assert punched["addr"].startswith(f"/ip4/{net.nat_b_wan}/tcp/4001"), punched
