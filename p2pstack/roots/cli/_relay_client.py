"""``p2pstack node --relay MA``: listen through circuit relay v2 relays, and print the
reservation events as ``relay:reservation`` lines (``--json``: ``{"event":
"relay:reservation", "state": "made"|"refreshed"|"lost", ...}``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from p2pstack.errors import P2PError
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id
from p2pstack.roots.cli._common import UserError
from protocols.relay import (
    AutoRelay,
    AutoRelayConfig,
    CircuitRelayTransport,
    RelayCandidates,
    ReservationLost,
    ReservationMade,
    ReservationRefreshed,
)

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host

__all__ = [
    "auto_relay",
    "check_relay_options",
    "listen_via_relays",
    "node_auto_relay",
    "reachability_relay",
    "relay_event",
]


def relay_listen_addr(text: str) -> Multiaddr:
    """The circuit listen address for ``--relay text``.

    Raises:
        UserError: not a multiaddr ending in ``/p2p/<id>`` (or ``/p2p/<id>/p2p-circuit``).
    """
    try:
        addr = parse_multiaddr(text.removesuffix("/p2p-circuit"))
        _, relay = split_peer_id(addr)
    except ValueError as exc:
        raise UserError(f"--relay: {exc}") from None
    if relay is None or "/p2p-circuit" in str(addr):
        raise UserError(f"--relay: {text} must be a relay address ending in /p2p/<peer-id>")
    return parse_multiaddr(f"{addr}/p2p-circuit")


def check_relay_options(args: argparse.Namespace) -> None:
    """Fail before the node starts on a bad ``--relay`` or ``--auto-relay``.

    Raises:
        UserError: what is wrong, in one line.
    """
    for text in args.relay:
        relay_listen_addr(text)
    if args.auto_relay < 0:
        raise UserError("--auto-relay: the number of reservations cannot be negative")


async def listen_via_relays(host: Host, args: argparse.Namespace) -> None:
    """Reserve at every ``--relay`` and listen through it (without ``--auto-relay``, which
    then picks them itself).

    Raises:
        UserError: a relay could not be reached or refused (the message names the status).
    """
    for text in args.relay:
        try:
            await host.listen([relay_listen_addr(text)])
        except P2PError as exc:
            raise UserError(f"--relay {text}: {exc}") from None


def auto_relay(
    args: argparse.Namespace, candidates: RelayCandidates | None = None
) -> tuple[CircuitRelayTransport, AutoRelay]:
    """The circuit transport and the auto-relay service for ``--auto-relay N``: forced on (the
    node was asked to use relays), candidates from ``--relay``, connected hop peers and
    ``candidates`` (the DHT when the node runs it)."""
    circuit = CircuitRelayTransport()
    relays = [str(relay_listen_addr(text)).removesuffix("/p2p-circuit") for text in args.relay]
    config = AutoRelayConfig(reservations=args.auto_relay, force=True, relays=relays)
    return circuit, AutoRelay(circuit, config, candidates=candidates)


def reachability_relay(
    candidates: RelayCandidates | None = None,
) -> tuple[CircuitRelayTransport, AutoRelay]:
    """The circuit transport and auto-relay for ``--autonat`` without ``--relay`` or
    ``--auto-relay``: one reservation while AutoNAT finds the node private (released when it
    becomes public), at a connected peer that serves the relay hop protocol or one that
    ``candidates`` finds (the DHT when the node runs it)."""
    circuit = CircuitRelayTransport()
    config = AutoRelayConfig(reservations=1, check_interval=5.0)
    return circuit, AutoRelay(circuit, config, candidates=candidates)


def node_auto_relay(
    args: argparse.Namespace, *, dht: bool
) -> tuple[CircuitRelayTransport, AutoRelay]:
    """The node's auto-relay: ``auto_relay`` with ``--auto-relay N``, else (``--autonat``
    without ``--relay``) ``reachability_relay``; when the node runs the DHT (``dht``), relays
    are also looked for in it (``dht_relay_candidates``)."""
    from p2pstack.roots.relay_discovery import dht_relay_candidates

    candidates = dht_relay_candidates if dht else None
    if args.auto_relay:
        return auto_relay(args, candidates)
    return reachability_relay(candidates)


def relay_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """Describe a reservation event for the node's output, or ``None`` for other events."""
    if isinstance(event, ReservationMade | ReservationRefreshed):
        state = "made" if isinstance(event, ReservationMade) else "refreshed"
        addrs = [str(a) for a in event.addrs]
        text = f"relay reservation {state} at {event.relay}: {' '.join(addrs)}"
        fields: dict[str, object] = {
            "state": state,
            "relay": str(event.relay),
            "addrs": addrs,
            "expire": event.expire,
        }
        return "relay:reservation", text, fields
    if isinstance(event, ReservationLost):
        text = f"relay reservation lost at {event.relay}: {event.reason}"
        fields = {"state": "lost", "relay": str(event.relay), "reason": event.reason}
        return "relay:reservation", text, fields
    return None
