"""Arguments of ``p2pstack node``'s hole-punching options (issue 14; docs/nat.md, "Hole
punching (DCUtR)"): ``--dcutr`` runs DCUtR (``/libp2p/dcutr``) with TCP port reuse and QUIC
punch sockets. Standard library only: parsing must not load the network stack (see
``_registry``)."""

from __future__ import annotations

import argparse

__all__ = ["add_node_dcutr_arguments"]


def add_node_dcutr_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--dcutr`` and ``--dcutr-allow-private`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--dcutr",
        "--holepunch",
        dest="dcutr",
        action="store_true",
        help="hole punching (DCUtR, /libp2p/dcutr): upgrade relayed connections to direct "
        "ones (TCP simultaneous open from the listen port, QUIC with UDP punching); prints "
        "one holepunch event per attempt series (outcome direct or failed)",
    )
    p.add_argument(
        "--dcutr-allow-private",
        action="store_true",
        help="with --dcutr: also dial private, loopback and other non-global addresses a "
        "peer sends (test networks only; by default they are never dialed)",
    )
