"""Two hosts, each behind its own NAT router (nftables masquerade), joined by an "internet"
namespace that also runs the public splicer. Private ranges only:

    hostA 192.168.<n>.2 ── natA 192.168.<n>.1 | 10.<m>.1.2 ─┐
                                                        inet 10.<m>.1.1, 10.<m>.2.1 (splicer)
    hostB 192.168.<n+1>.2 ── natB 192.168.<n+1>.1 | 10.<m>.2.2 ─┘

Each NAT forwards what the LAN sends and only the answers to it (conntrack), and silently drops
anything unsolicited addressed to itself (no RST, no ICMP, as home routers do): the behaviour
hole punching relies on. ``symmetric=True`` maps every new flow to a random port
(``masquerade fully-random``), so the observed port predicts nothing.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import attrs


def available() -> bool:
    """Root with ``ip`` and ``nft``."""
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nft") is not None


def _run(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20, input=stdin, text=True)


def _ns(name: str, *cmd: str, stdin: str | None = None) -> None:
    _run("ip", "netns", "exec", name, *cmd, stdin=stdin)


@attrs.frozen
class NatNet:
    host_a: str
    host_b: str
    inet: str
    splicer_ip: str
    nat_a_wan: str
    nat_b_wan: str


def _nat_rules(wan: str, symmetric: bool) -> str:
    mode = " fully-random" if symmetric else ""
    return f"""
table ip nat {{
  chain post {{ type nat hook postrouting priority 100; oifname "{wan}" masquerade{mode}; }}
}}
table inet natfilter {{
  chain forwarding {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname != "{wan}" accept
  }}
  chain incoming {{
    type filter hook input priority 0; policy accept;
    iifname "{wan}" ct state new drop
  }}
}}
"""


@contextmanager
def nat_network(*, symmetric: bool = False, symmetric_b: bool | None = None) -> Iterator[NatNet]:
    """Build the topology; remove every namespace on exit, whatever happened.

    Args:
        symmetric: both NATs (or only A's, if ``symmetric_b`` is given) map flows randomly.
        symmetric_b: B's NAT maps flows randomly (default: as ``symmetric``).
    """
    sym_b = symmetric if symmetric_b is None else symmetric_b
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    m = random.randrange(100, 250)
    n = random.randrange(20, 240, 2)
    names = {k: f"hp{k}-{tag}" for k in ("ha", "hb", "na", "nb", "in")}
    made: list[str] = []
    try:
        for name in names.values():
            _run("ip", "netns", "add", name)
            made.append(name)
            _ns(name, "ip", "link", "set", "lo", "up")
        links = [
            ("ha", "na", f"192.168.{n}.2", f"192.168.{n}.1", 24),
            ("hb", "nb", f"192.168.{n + 1}.2", f"192.168.{n + 1}.1", 24),
            ("na", "in", f"10.{m}.1.2", f"10.{m}.1.1", 24),
            ("nb", "in", f"10.{m}.2.2", f"10.{m}.2.1", 24),
        ]
        for i, (left, right, left_ip, right_ip, plen) in enumerate(links):
            le, re_ = f"h{tag}l{i}", f"h{tag}r{i}"
            _run("ip", "link", "add", le, "netns", names[left], "type", "veth", "peer", re_,
                 "netns", names[right])  # fmt: skip
            for ns, dev, ip in ((names[left], le, left_ip), (names[right], re_, right_ip)):
                _ns(ns, "ip", "addr", "add", f"{ip}/{plen}", "dev", dev)
                _ns(ns, "ip", "link", "set", dev, "up")
        # hosts route through their NAT, NATs through inet
        _ns(names["ha"], "ip", "route", "add", "default", "via", f"192.168.{n}.1")
        _ns(names["hb"], "ip", "route", "add", "default", "via", f"192.168.{n + 1}.1")
        _ns(names["na"], "ip", "route", "add", "default", "via", f"10.{m}.1.1")
        _ns(names["nb"], "ip", "route", "add", "default", "via", f"10.{m}.2.1")
        for router in ("na", "nb", "in"):
            _ns(names[router], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _ns(names["na"], "nft", "-f", "-", stdin=_nat_rules(f"h{tag}l2", symmetric))
        _ns(names["nb"], "nft", "-f", "-", stdin=_nat_rules(f"h{tag}l3", sym_b))
        yield NatNet(
            host_a=names["ha"],
            host_b=names["hb"],
            inet=names["in"],
            splicer_ip=f"10.{m}.1.1",
            nat_a_wan=f"10.{m}.1.2",
            nat_b_wan=f"10.{m}.2.2",
        )
    finally:
        for name in made:
            subprocess.run(
                ["ip", "netns", "del", name], check=False, capture_output=True, timeout=20
            )
