"""A hole punch between py-libp2p 0.8.1 and p2pstack through a p2pstack relay, each peer behind
its own nftables NAT router in network namespaces (tests/protocols/dcutr/natnet.py): our node
behind NAT A is found private by AutoNAT and reserves on its own; py behind NAT B dials its
``/p2p-circuit`` address with its ``CircuitV2Transport``; DCUtR (our node is the spec's B, the
initiator) opens a direct TCP connection through both NATs."""

from __future__ import annotations

import pytest

from tests.interop.peers import HERE, PY_PYTHON
from tests.protocols.dcutr.natnet import available, nat_network
from tests.protocols.dcutr.test_netns_holepunch import Proc, processes
from tests.protocols.dcutr.test_relay_netns import PEER, _of_kind

pytestmark = pytest.mark.skipif(not available(), reason="needs root, ip and nft")
PY_PEER = HERE / "py" / "dcutr_relay_peer.py"


def test_py_dials_through_our_relay_and_is_hole_punched() -> None:
    if not PY_PYTHON.exists():
        raise AssertionError(f"py interop peer not installed ({PY_PYTHON}): make interop-setup")
    with nat_network() as net, processes() as procs:
        relay = Proc(net.inet, "-m", PEER, "relay", net.splicer_ip)
        procs.append(relay)
        relay_addr = _of_kind(relay.wait_for("ready", 30)["addrs"], "tcp")
        ours = Proc(net.host_a, "-m", PEER, "listen", relay_addr)
        procs.append(ours)
        target = _of_kind(ours.wait_for("ready", 60)["addrs"], "tcp")
        py = Proc(net.host_b, str(PY_PEER), "--dial", target, exe=str(PY_PYTHON))
        procs.append(py)
        assert py.wait_for("dialed", 40)["ok"] is True
        punched = ours.wait_for("holepunch", 60)
        # py's view: a connection to us at NAT A's outside address, port 4001.
        direct = f"/ip4/{net.nat_a_wan}/tcp/4001"
        for _ in range(8):  # py reports the relayed connection too, and maybe failed tries
            if py.wait_for("connection", 30)["addrs"] == [direct]:
                break
        else:
            raise AssertionError(f"py never reported a connection at {direct}")
        ping = ours.wait_for("ping", 40)
    assert punched["role"] == "initiator" and punched["outcome"] == "direct", punched
    assert punched["transport"] == "tcp" and punched["attempts"] <= 3
    assert punched["remote_addr"].startswith(f"/ip4/{net.nat_b_wan}/tcp/4001"), punched
    assert len(ping["rtts_ms"]) == 3
    assert ping["connections"] and all(limited is False for _, limited in ping["connections"])
