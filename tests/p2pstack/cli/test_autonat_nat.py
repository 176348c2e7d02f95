"""AutoNAT through a real NAT: ``p2pstack node --autonat`` processes in network namespaces joined
by a router namespace that masquerades (nftables) the private side. The node behind the NAT
must decide ``private`` (its servers' dial backs fail: v1 to its observed address on the
router, v2 to its private address after paying dial data); the public node it connected to is
dialed back through the NAT's established direction and decides ``public``.

Only private ranges (10.99.0.0/16) inside namespaces created here; the private-address policy is
switched on for the test.

    [pub: 10.99.1.2] --veth-- [router: 10.99.1.1 | 10.99.2.1, masquerade] --veth-- [nat: 10.99.2.2]
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.p2pstack.cli.runner import NodeProcess
from tests.protocols.discovery.mdns.netns import netns_available

#: The namespaces need root, ``ip`` and ``nft`` (tests/interop/setup.sh installs nftables).
NEEDS_NAT = pytest.mark.skipif(
    not netns_available() or shutil.which("nft") is None,
    reason="needs root, ip and nft for namespaces with a NAT router",
)
pytestmark = NEEDS_NAT

AUTONAT = ("--json", "--autonat", "--autonat-allow-private", "--autonat-confidence", "1")
_CLONE_NEWNET = 0x40000000


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


@contextmanager
def nat_topology() -> Iterator[dict[str, str]]:
    """Create the three namespaces (names unique to this process); remove them afterwards."""
    tag = f"an{os.getpid() % 100000}"
    ns = {"pub": f"{tag}pub", "rtr": f"{tag}rtr", "nat": f"{tag}nat"}
    try:
        for name in ns.values():
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"{tag}a", "netns", ns["pub"], "type", "veth",
             "peer", "name", f"{tag}b", "netns", ns["rtr"])  # fmt: skip
        _run("ip", "link", "add", f"{tag}c", "netns", ns["rtr"], "type", "veth",
             "peer", "name", f"{tag}d", "netns", ns["nat"])  # fmt: skip
        for name, link, addr in [
            (ns["pub"], f"{tag}a", "10.99.1.2/24"),
            (ns["rtr"], f"{tag}b", "10.99.1.1/24"),
            (ns["rtr"], f"{tag}c", "10.99.2.1/24"),
            (ns["nat"], f"{tag}d", "10.99.2.2/24"),
        ]:
            _run("ip", "-n", name, "addr", "add", addr, "dev", link)
            _run("ip", "-n", name, "link", "set", link, "up")
        # The private side routes everything through the router; the public side has no route
        # to 10.99.2.0/24 at all: only the NAT's established flows come back.
        _run("ip", "-n", ns["nat"], "route", "add", "default", "via", "10.99.2.1")
        _run("ip", "netns", "exec", ns["rtr"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        rules = (
            "add table ip nat\n"
            "add chain ip nat post { type nat hook postrouting priority 100 ; }\n"
            f'add rule ip nat post oifname "{tag}b" masquerade\n'
        )
        subprocess.run(
            ["ip", "netns", "exec", ns["rtr"], "nft", "-f", "-"],
            input=rules.encode(),
            check=True,
            capture_output=True,
            timeout=10,
        )
        yield ns
    finally:
        for name in ns.values():
            # Whatever was created goes (a name never added fails quietly).
            subprocess.run(
                ["ip", "netns", "del", name], check=False, capture_output=True, timeout=10
            )


def _enter(name: str) -> Callable[[], None]:
    def enter() -> None:  # runs in the child between fork and exec
        fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
        os.close(fd)

    return enter


def _reachability(e: dict[str, object]) -> bool:
    return e["event"] == "reachability"


def test_node_behind_nat_is_private_and_its_server_public() -> None:
    with nat_topology() as ns:
        public = NodeProcess(
            [*AUTONAT, "--listen", "/ip4/10.99.1.2/tcp/0"], preexec_fn=_enter(ns["pub"])
        )
        private: NodeProcess | None = None
        try:
            listening = public.wait_event(lambda e: e["event"] == "listening")
            (target,) = [str(a) for a in listening["addrs"] if "10.99.1.2" in str(a)]  # type: ignore[attr-defined]  # a JSON list
            private = NodeProcess(
                [*AUTONAT, "--listen", "/ip4/10.99.2.2/tcp/0", "--bootstrap", target],
                preexec_fn=_enter(ns["nat"]),
            )
            behind = private.wait_event(_reachability, timeout=60)
            assert (behind["reachability"], behind["previous"]) == ("private", "unknown")
            server = public.wait_event(_reachability, timeout=60)
            assert server["reachability"] == "public"
            # Nobody ever saw the private address: the server saw the router's.
            connected = public.wait_event(lambda e: e["event"] == "connected")
            assert "/ip4/10.99.1.1/" in str(connected["addr"])
        finally:
            if private is not None:
                private.kill()
            public.kill()
