"""The discovery part of ``p2pstack node``: the sources its options ask for, the ``Discovery``
service over them, and ``peer:discovery`` events (docs/discovery.md, "The command line")."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from multiaddr import Multiaddr

from p2pstack.discovery import DiscoveredPeer, PeerDiscovered, PeerDiscovery
from p2pstack.host import Host
from p2pstack.roots.cli._common import Output, UserError
from p2pstack.roots.cli._mdns import mdns_sources
from p2pstack.roots.cli._rendezvous import rendezvous_sources
from protocols.discovery import (
    Bootstrap,
    BootstrapConfig,
    DialPolicyConfig,
    Discovery,
    DiscoveryConfig,
    check_bootstrap_addr,
    is_dnsaddr,
)

__all__ = [
    "SOURCE_BUILDERS",
    "check_bootstrap_entries",
    "direct_bootstrap",
    "discovery_config",
    "discovery_event",
    "node_sources",
    "report_announced",
    "source_names",
]


def check_bootstrap_entries(texts: Sequence[str]) -> list[Multiaddr]:
    """Parse ``--bootstrap`` values for discovery: ``/.../p2p/<id>`` or ``/dnsaddr/<name>``.

    Raises:
        UserError: a value is neither.
    """
    addrs = []
    for text in texts:
        try:
            addrs.append(check_bootstrap_addr(text))
        except ValueError as exc:
            raise UserError(f"--bootstrap: {exc}") from None
    return addrs


def direct_bootstrap(texts: Sequence[str]) -> list[str]:
    """The ``--bootstrap`` values that name a peer directly (not ``/dnsaddr/``): those the DHT
    and pubsub joins connect to themselves."""
    return [text for text in texts if not is_dnsaddr(check_bootstrap_addr(text))]


def _bootstrap(args: argparse.Namespace) -> list[PeerDiscovery]:
    if not args.bootstrap:
        return []
    peers = check_bootstrap_entries(args.bootstrap)
    return [Bootstrap(BootstrapConfig(peers=peers, nameserver=args.dns_server))]


#: Builders of the node's discovery sources from its arguments, in order (mDNS and rendezvous
#: add theirs here). The DHT's random walk is added by ``open_default_host``.
SOURCE_BUILDERS: list[Callable[[argparse.Namespace], list[PeerDiscovery]]] = [
    _bootstrap,
    rendezvous_sources,
    mdns_sources,
]


def node_sources(args: argparse.Namespace) -> list[PeerDiscovery]:
    """The discovery sources the options ask for."""
    return [source for build in SOURCE_BUILDERS for source in build(args)]


def discovery_config(args: argparse.Namespace) -> DiscoveryConfig:
    """The discovery service's settings for ``--min-connections``."""
    if args.min_connections is None:
        return DiscoveryConfig()
    return DiscoveryConfig(policy=DialPolicyConfig(min_connections=args.min_connections))


def source_names(host: Host) -> list[str]:
    """The names of the sources the node's discovery service reads (for the ``listening``
    event)."""
    return [source.source for source in host.service(Discovery).discoverers]


def report_announced(host: Host, out: Output) -> None:
    """Print the discoveries the service announced so far (``peer:discovery`` events)."""
    for peer in host.service(Discovery).announced():
        name, text, fields = _describe(peer)
        out.event(name, text, **fields)


def discovery_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """``PeerDiscovered`` as ``p2pstack node`` prints it: ``peer:discovery`` with ``peer_id``,
    ``addrs`` and ``source``; None for other events."""
    if not isinstance(event, PeerDiscovered):
        return None
    return _describe(event.peer)


def _describe(peer: DiscoveredPeer) -> tuple[str, str, dict[str, object]]:
    addrs = [str(a) for a in peer.addrs]
    text = f"discovered {peer.peer_id} ({peer.source})" + "".join(f" {a}" for a in addrs)
    fields: dict[str, object] = {"peer_id": str(peer.peer_id), "addrs": addrs}
    fields["source"] = peer.source
    return "peer:discovery", text, fields
