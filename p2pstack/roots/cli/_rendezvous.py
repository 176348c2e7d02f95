"""``p2pstack node``'s rendezvous services and the printing of what they discover
(docs/discovery-rendezvous.md, "The command line")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2pstack.roots.cli._common import Output, UserError
from p2pstack.roots.cli._rendezvous_args import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from p2pstack.interfaces import Service
    from protocols.discovery.rendezvous import Rendezvous

__all__ = ["POLL_INTERVAL", "check_rendezvous_options", "print_discoveries", "rendezvous_services"]

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
    """The point and/or client the options ask for (none without them)."""
    from protocols.discovery.rendezvous import Rendezvous, RendezvousPoint

    services: list[Service] = []
    if args.rendezvous_point:
        services.append(RendezvousPoint())
    if args.rendezvous:
        namespaces = list(dict.fromkeys(args.namespace or [DEFAULT_NAMESPACE]))
        client = Rendezvous(
            args.rendezvous, register=namespaces, discover=namespaces, poll_interval=POLL_INTERVAL
        )
        services.append(client)
    return services


async def print_discoveries(client: Rendezvous, out: Output) -> None:
    """Print each discovered peer: ``{"event": "peer:discovery", "peer_id", "addrs",
    "source": "rendezvous"}``."""
    async for found in client.discovered():
        addrs = [str(a) for a in found.addrs]
        text = f"discovered {found.peer_id} via {found.source}: {' '.join(addrs)}"
        out.event(
            "peer:discovery", text, peer_id=str(found.peer_id), addrs=addrs, source=found.source
        )
