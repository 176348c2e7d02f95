"""Arguments of ``p2pstack node``'s AutoNAT options (issue 14; docs/nat.md, "Reachability and
AutoNAT"): ``--autonat`` runs AutoNAT v1 and v2, client and server, and prints reachability
changes and confirmed observed addresses. Standard library only: parsing must not load the
network stack."""

from __future__ import annotations

import argparse

__all__ = ["add_node_autonat_arguments"]


def _confidence(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError("the confidence is 1 to 32 servers")
    return value


def _confirmations(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError("observed addresses need 1 to 16 observers")
    return value


def add_node_autonat_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--autonat``, ``--autonat-confidence``, ``--autonat-allow-private`` and
    ``--observed-confirmations`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--autonat",
        action="store_true",
        help="run AutoNAT v1 and v2 (client and server): ask connected peers to dial us back, "
        "print 'reachability' (public, private, unknown) and 'observed_addrs' events, and "
        "dial back peers that ask (rate limited, public addresses only)",
    )
    p.add_argument(
        "--autonat-confidence",
        type=_confidence,
        default=3,
        metavar="N",
        help="with --autonat: servers that must agree before the reachability changes (default: 3)",
    )
    p.add_argument(
        "--autonat-allow-private",
        action="store_true",
        help="with --autonat: also test and dial back private and loopback addresses "
        "(private networks and tests; never on the Internet)",
    )
    p.add_argument(
        "--observed-confirmations",
        type=_confirmations,
        default=4,
        metavar="N",
        help="distinct peers (by IP) that must report an observed address before it is "
        "advertised and offered for hole punching (default: 4, as go-libp2p; 1 in a test "
        "network with a single public peer)",
    )
