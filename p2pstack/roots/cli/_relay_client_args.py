"""``p2pstack node --relay MA``: the option (standard library only, like every ``*_args``
module, so that parsing stays cheap)."""

from __future__ import annotations

import argparse

__all__ = ["add_node_relay_arguments"]


def add_node_relay_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--relay`` and ``--auto-relay`` to the node command."""
    p.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="reserve a slot at this circuit relay v2 relay (an address ending in /p2p/<id>) "
        "and listen through it; repeatable; prints relay:reservation events",
    )
    p.add_argument(
        "--auto-relay",
        type=int,
        default=0,
        metavar="N",
        help="keep N relay reservations, picked from --relay, from connected peers that "
        "serve the relay hop protocol and, when the node runs the DHT, from a DHT lookup; "
        "lost ones are replaced (default: 0, off)",
    )
