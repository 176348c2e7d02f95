"""``p2pstack node``'s rendezvous services and the printing of what they discover
(docs/discovery.md, "Rendezvous")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2pstack.roots.cli._common import UserError
from p2pstack.roots.cli._rendezvous_args import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from p2pstack.discovery import PeerDiscovery
    from p2pstack.interfaces import Service

__all__ = ["POLL_INTERVAL", "check_rendezvous_options", "rendezvous_services", "rendezvous_sources"]

#: Seconds between the node's polls of its namespaces.
POLL_INTERVAL = 10.0


def check_rendezvous_options(args: argparse.Namespace) -> None:
    """Fail before the node starts on unusable rendezvous options.

    Raises:
        UserError: ``--namespace`` without ``--rendezvous``, or a point that is not a multiaddr
            ending in ``/p2p/<peer-id>``.
    """
    if args.namespace and not args.rendezvous:
        raise UserError("--namespace needs --rendezvous MULTIADDR")
    for text in args.rendezvous:
        try:
            addr = Multiaddr(text)
            peer = addr.get_peer_id()
        except (MultiaddrError, ValueError, LookupError, TypeError):
            raise UserError(f"--rendezvous: {text!r} is not a multiaddr") from None
        if peer is None:
            raise UserError(f"--rendezvous: {text} does not end in /p2p/<peer-id>")


def rendezvous_services(args: argparse.Namespace) -> list[Service]:
    """The point the options ask for (none without ``--rendezvous-point``). The client is a
    discovery source (``rendezvous_sources``): the discovery service runs it."""
    from protocols.discovery.rendezvous import RendezvousPoint

    return [RendezvousPoint()] if args.rendezvous_point else []


def rendezvous_sources(args: argparse.Namespace) -> list[PeerDiscovery]:
    """The rendezvous client ``--rendezvous`` asks for, registering and discovering in the
    ``--namespace`` values (none without the option)."""
    from protocols.discovery.rendezvous import Rendezvous

    if not args.rendezvous:
        return []
    namespaces = list(dict.fromkeys(args.namespace or [DEFAULT_NAMESPACE]))
    client: Rendezvous = Rendezvous(
        args.rendezvous, register=namespaces, discover=namespaces, poll_interval=POLL_INTERVAL
    )
    return [client]
