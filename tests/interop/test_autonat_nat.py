"""AutoNAT v1 with py-libp2p 0.8.1 through a real NAT (network namespaces and an nftables
masquerade router, as in tests/p2pstack/cli/test_autonat_nat.py): py behind the NAT asks our
node, which answers E_DIAL_ERROR; our node behind the NAT asks py, which answers OK without a
real dial back. Private ranges inside our own namespaces only."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence

from tests.interop.peers import HERE, PY_PYTHON
from tests.p2pstack.cli.runner import NodeProcess
from tests.p2pstack.cli.test_autonat_nat import AUTONAT, NEEDS_NAT, _enter, nat_topology

pytestmark = NEEDS_NAT

PY_AUTONAT_PEER = HERE / "py" / "autonat_peer.py"


class NetnsPeer(NodeProcess):
    """An interop peer process started inside a named network namespace, read like a node."""

    def __init__(self, argv: Sequence[str], namespace: str) -> None:
        # NodeProcess runs the p2pstack script: the same readers over another command.
        self.args = list(argv)
        self.proc = subprocess.Popen(
            list(argv),
            preexec_fn=_enter(namespace),  # noqa: PLW1509 (setns only; no locks)
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        self.stderr = ""
        self._eof = False
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()


def _py(namespace: str, *args: str) -> NetnsPeer:
    if not PY_PYTHON.exists():
        raise AssertionError(f"{PY_PYTHON} missing: run `make interop-setup`")
    return NetnsPeer([str(PY_PYTHON), str(PY_AUTONAT_PEER), *args], namespace)


def test_py_behind_nat_asks_our_node() -> None:
    with nat_topology() as ns:
        ours = NodeProcess(
            [*AUTONAT, "--listen", "/ip4/10.99.1.2/tcp/0"], preexec_fn=_enter(ns["pub"])
        )
        py: NetnsPeer | None = None
        try:
            listening = ours.wait_event(lambda e: e["event"] == "listening")
            (target,) = [str(a) for a in listening["addrs"] if "10.99.1.2" in str(a)]  # type: ignore[attr-defined]  # a JSON list
            own = "/ip4/10.99.2.2/tcp/4101"
            mapped = "/ip4/10.99.1.1/tcp/4101"  # the router's address: what our node observes
            py = _py(ns["nat"], "--mode", "ask", "--listen", own, "--dial", target,
                     "--ask", own, "--ask", mapped)  # fmt: skip
            answer = py.wait_event(lambda e: e["event"] == "v1_response", timeout=60)
        finally:
            if py is not None:
                py.kill()
            ours.kill()
    # Our server dials only the observed IP (the router's), where nothing forwards to py.
    assert (answer["status"], answer["addr"]) == ("E_DIAL_ERROR", None)


def test_our_node_behind_nat_asks_py() -> None:
    with nat_topology() as ns:
        py = _py(ns["pub"], "--mode", "serve", "--listen", "/ip4/10.99.1.2/tcp/4102")
        ours: NodeProcess | None = None
        try:
            listening = py.wait_event(lambda e: e["event"] == "listening", timeout=60)
            target = f"/ip4/10.99.1.2/tcp/4102/p2p/{listening['peer_id']}"
            ours = NodeProcess(
                [*AUTONAT, "--listen", "/ip4/10.99.2.2/tcp/0", "--bootstrap", target],
                preexec_fn=_enter(ns["nat"]),
            )
            decided = ours.wait_event(lambda e: e["event"] == "reachability", timeout=60)
        finally:
            if ours is not None:
                ours.kill()
            py.kill()
    # py-libp2p 0.8.1 "dials back" with its main host, which reuses the connection our node
    # opened through the NAT: it answers OK, and with --autonat-confidence 1 that one answer
    # decides. With the default confidence (3) one such server cannot decide alone.
    assert (decided["reachability"], decided["source"]) == ("public", "autonat")
