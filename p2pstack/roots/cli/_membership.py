"""``p2pstack node --membership``: the SWIM membership service, its join through
``--bootstrap`` and its events as the node prints them (docs/membership.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.roots.cli._common import Output, UserError
from p2pstack.roots.cli._dht import check_bootstrap_option
from p2pstack.roots.cli._errors import describe
from protocols.membership import (
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    Membership,
    MemberSuspected,
    SwimConfig,
)

if TYPE_CHECKING:
    from p2pstack.host import Host

__all__ = ["member_event", "membership_service", "report_join"]

_STATES: dict[type[object], str] = {
    MemberJoined: "alive",
    MemberAlive: "alive",
    MemberSuspected: "suspect",
    MemberDead: "dead",
    MemberLeft: "left",
}


def membership_service(args: argparse.Namespace) -> Membership:
    """The service for ``--membership`` and ``--membership-probe-interval``."""
    interval: float = args.membership_probe_interval
    config = attrs.evolve(
        SwimConfig(),
        probe_interval=interval,
        probe_timeout=interval / 2,
        gossip_interval=interval / 5,
    )
    return Membership(config=config)


def member_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """A member's state change as ``p2pstack node`` prints it.

    Returns:
        ``("member", text, {"peer_id", "state", "incarnation"})`` for a joined, alive,
        suspected, dead or left member; None for anything else (metadata changes too).
    """
    state = _STATES.get(type(event))
    if state is None:
        return None
    assert isinstance(event, MemberJoined | MemberAlive | MemberSuspected | MemberDead | MemberLeft)
    peer = str(event.peer_id)
    return (
        "member",
        f"member {peer} {state} (incarnation {event.incarnation})",
        {"peer_id": peer, "state": state, "incarnation": event.incarnation},
    )


async def report_join(host: Host, bootstrap: Sequence[str], out: Output, timeout: float) -> None:
    """Join the cluster through the ``--bootstrap`` peers (the first that answers) and print
    ``{"event": "membership_joined", "peer_id": ...}`` or ``{"event": "membership_join_failed",
    "error": ...}``; the node keeps running either way."""
    failures: tuple[type[BaseException], ...] = (UserError, TimeoutError, *NETWORK_ERRORS)
    membership = host.service(Membership)
    error = "no --bootstrap peer"
    for addr in check_bootstrap_option(bootstrap):
        try:
            with anyio.fail_after(timeout):
                await membership.join(addr, timeout=timeout)
        except failures as exc:
            error = describe(exc)
            continue
        out.event("membership_joined", f"membership: joined through {addr}", addr=str(addr))
        return
    out.event("membership_join_failed", f"membership: join failed: {error}", error=error)
