"""``p2pstack node --autonat``: the AutoNAT services and the events the node prints for them
(docs/nat.md, "Reachability and AutoNAT")."""

from __future__ import annotations

import argparse

import attrs

from p2pstack.events import ObservedAddrsChanged, ReachabilityChanged
from p2pstack.interfaces import Service
from p2pstack.roots.autonat import autonat_services
from protocols.autonat import AutoNATConfig, ClientSchedule, ServerLimits

__all__ = ["BOOT_DELAY", "autonat_event", "node_autonat_services"]

#: Seconds after start before the node's first AutoNAT round (peers connect meanwhile).
BOOT_DELAY = 2.0


def node_autonat_services(args: argparse.Namespace) -> list[Service]:
    """AutoNAT v1 and v2 for ``node``, dialing back with the node's security and muxers.

    Args:
        args: ``autonat_allow_private``, ``autonat_confidence``, ``security``, ``muxer``.
    """
    allow = bool(args.autonat_allow_private)
    config = AutoNATConfig(
        allow_private=allow,
        limits=attrs.evolve(ServerLimits(), allow_private=allow),
        schedule=ClientSchedule(boot_delay=BOOT_DELAY, confidence=args.autonat_confidence),
    )
    return autonat_services(config, security=args.security or [], muxers=args.muxer or [])


def autonat_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """A reachability change or new confirmed observed addresses, as ``node`` prints them.

    Returns:
        ``("reachability", text, {"reachability", "previous", "source"})``,
        ``("observed_addrs", text, {"addrs"})``, or None for other events.
    """
    if isinstance(event, ReachabilityChanged):
        return (
            "reachability",
            f"reachability {event.reachability} (was {event.previous}, by {event.source})",
            {
                "reachability": event.reachability,
                "previous": event.previous,
                "source": event.source,
            },
        )
    if isinstance(event, ObservedAddrsChanged):
        addrs = [str(a) for a in event.addrs]
        return "observed_addrs", "observed addresses: " + " ".join(addrs), {"addrs": addrs}
    return None
