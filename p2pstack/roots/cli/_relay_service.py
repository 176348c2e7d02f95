"""``p2pstack node --relay-service``: the relay service and the printing of its events
(docs/nat.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from p2pstack.roots.cli._common import UserError

if TYPE_CHECKING:
    from p2pstack.interfaces import Service

__all__ = ["check_relay_service_options", "relay_event", "relay_services"]

_LIMITS = {
    "relay_limit_duration": "limit_duration",
    "relay_limit_data": "limit_data",
    "relay_max_reservations": "max_reservations",
    "relay_max_circuits": "max_circuits",
}


def check_relay_service_options(args: argparse.Namespace) -> None:
    """Fail before the node starts when a relay limit is given without ``--relay-service``.

    Raises:
        UserError: a ``--relay-limit-*`` / ``--relay-max-*`` option without ``--relay-service``.
    """
    if args.relay_service:
        return
    for name in _LIMITS:
        if getattr(args, name) is not None:
            raise UserError(f"--{name.replace('_', '-')} needs --relay-service")


def relay_services(args: argparse.Namespace) -> list[Service]:
    """The relay service the options ask for (none without ``--relay-service``)."""
    if not args.relay_service:
        return []
    from protocols.relay import RelayConfig, RelayService

    changes: dict[str, Any] = {
        field: getattr(args, name)
        for name, field in _LIMITS.items()
        if getattr(args, name) is not None
    }
    return [RelayService(RelayConfig(**changes))]


def relay_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """A relay event as ``p2pstack node`` prints it.

    Returns:
        ``("relay:reservation", text, {"peer_id", "result", ...})`` for a reservation accepted
        (``result`` ``"accepted"`` or ``"renewed"``, with ``expire``) or refused (``"refused"``,
        with ``status`` and ``reason``); ``("relay:circuit", text, {"source", "target",
        "result", ...})`` for a circuit opened, refused (``status``, ``reason``) or closed
        (``reason``, ``bytes``); None for anything else.
    """
    from protocols.relay import (
        CircuitClosed,
        CircuitOpened,
        CircuitRefused,
        ReservationAccepted,
        ReservationRefused,
    )

    match event:
        case ReservationAccepted(peer=peer, expire=expire, renewed=renewed):
            result = "renewed" if renewed else "accepted"
            fields: dict[str, object] = {"peer_id": str(peer), "result": result, "expire": expire}
            return ("relay:reservation", f"reservation {result} for {peer}", fields)
        case ReservationRefused(peer=peer, status=status, reason=reason):
            fields = {"peer_id": str(peer), "result": "refused", "status": status.name}
            fields["reason"] = reason
            return ("relay:reservation", f"reservation refused for {peer}: {status.name}", fields)
        case CircuitOpened(source=source, target=target):
            fields = {"source": str(source), "target": str(target), "result": "opened"}
            return ("relay:circuit", f"circuit opened {source} -> {target}", fields)
        case CircuitRefused(source=source, target=target, status=status, reason=reason):
            fields = {"source": str(source), "target": str(target), "result": "refused"}
            fields.update(status=status.name, reason=reason)
            return ("relay:circuit", f"circuit refused {source} -> {target}: {status.name}", fields)
        case CircuitClosed(source=source, target=target, reason=reason, bytes_relayed=relayed):
            fields = {"source": str(source), "target": str(target), "result": "closed"}
            fields.update(reason=reason, bytes=list(relayed))
            return ("relay:circuit", f"circuit closed {source} -> {target} ({reason})", fields)
    return None
