"""Arguments of ``p2pstack node``'s membership options (issue 13; docs/membership.md):
``--membership`` runs SWIM membership and joins through the ``--bootstrap`` peers. Standard
library only: parsing must not load the network stack (see ``_registry``)."""

from __future__ import annotations

import argparse

__all__ = ["add_node_membership_arguments"]


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.01 <= value <= 60:
        raise argparse.ArgumentTypeError("the probe interval is 0.01 to 60 seconds")
    return value


def add_node_membership_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--membership`` and ``--membership-probe-interval`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--membership",
        action="store_true",
        help="run SWIM gossip membership (/p2pstack/swim/1.0.0), joining through the "
        "--bootstrap peers; prints each member's state change (alive, suspect, dead, left)",
    )
    p.add_argument(
        "--membership-probe-interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help="SWIM probe interval; the probe timeout is half of it and the gossip interval a "
        "fifth (default: 1, memberlist's LAN value)",
    )
