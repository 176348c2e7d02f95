"""Arguments of ``p2pstack node``'s rendezvous options (issue 13; docs/discovery.md, "Rendezvous"):
``--rendezvous-point`` serves ``/rendezvous/1.0.0``; ``--rendezvous MA`` registers in and polls
every ``--namespace`` at that point. Standard library only: parsing must not load the network
stack (see ``_registry``)."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_NAMESPACE", "add_node_rendezvous_arguments"]

#: The namespace of ``--rendezvous`` without ``--namespace``.
DEFAULT_NAMESPACE = "p2pstack"
#: Longest namespace in UTF-8 bytes (the spec's recommended limit, enforced by points).
_MAX_NAMESPACE = 255


def _namespace(text: str) -> str:
    if not text or len(text.encode()) > _MAX_NAMESPACE:
        raise argparse.ArgumentTypeError(f"a namespace is 1 to {_MAX_NAMESPACE} bytes of UTF-8")
    return text


def add_node_rendezvous_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--rendezvous-point``, ``--rendezvous`` and ``--namespace`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--rendezvous-point",
        action="store_true",
        help="serve as a rendezvous point (/rendezvous/1.0.0): peers register in namespaces "
        "and discover each other here",
    )
    p.add_argument(
        "--rendezvous",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a rendezvous point (with /p2p/<peer-id>), repeatable: register there in every "
        "--namespace and print the peers found in them",
    )
    p.add_argument(
        "--namespace",
        action="append",
        type=_namespace,
        default=[],
        metavar="NS",
        help=f"rendezvous namespace, repeatable (default with --rendezvous: {DEFAULT_NAMESPACE})",
    )
