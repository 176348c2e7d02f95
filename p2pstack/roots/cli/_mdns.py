"""``p2pstack node --mdns``: discover peers on the local network with mDNS
(``protocols.discovery.mdns``), one of the node's discovery sources."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2pstack.discovery import PeerDiscovery

__all__ = ["add_node_mdns_arguments", "mdns_sources"]


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 3600 seconds: {text!r}")
    return value


def add_node_mdns_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mdns",
        action="store_true",
        help="discover peers on the local network with mDNS (224.0.0.251:5353, "
        "_p2p._udp.local) and announce this node there; prints a peer:discovery event per find",
    )
    p.add_argument(
        "--mdns-interval",
        type=_interval,
        default=10.0,
        metavar="SECONDS",
        help="seconds between mDNS queries (default: 10, as js-libp2p)",
    )


def mdns_sources(args: argparse.Namespace) -> list[PeerDiscovery]:
    """The mDNS service for ``--mdns`` (a discovery source the discovery service runs), or
    none without it."""
    if not args.mdns:
        return []
    from protocols.discovery.mdns import Mdns, MdnsConfig

    return [Mdns(MdnsConfig(interval=args.mdns_interval))]
