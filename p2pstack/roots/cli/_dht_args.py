"""Arguments of the DHT command line: ``p2pstack node``'s DHT options and the ``p2pstack dht``
subcommands (issue 10, item 8; docs/kad.md, "The command line"). Standard library only: parsing
must not load the network stack (see ``_registry``)."""

from __future__ import annotations

import argparse

__all__ = [
    "DHT_ACTIONS",
    "DHT_MODES",
    "DHT_PROTOCOL",
    "add_client_options",
    "add_node_dht_arguments",
    "configure_dht",
    "node_wants_dht",
]

#: ``--dht`` of ``p2pstack node``: serve the DHT (``server``) or only use it (``client``).
DHT_MODES = ("server", "client")
#: The default ``--dht-protocol`` (``protocols.kad.PROTOCOL_ID``, kept equal by a test).
DHT_PROTOCOL = "/ipfs/kad/1.0.0"
#: The ``p2pstack dht`` actions, in ``--help`` order.
DHT_ACTIONS = ("put", "get", "provide", "find-providers", "find-peer")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _namespace(text: str) -> str:
    name = text.strip("/")
    if not name or "/" in name:
        raise argparse.ArgumentTypeError(f"a namespace is one path segment, got {text!r}")
    return name


def _common_dht_options(p: argparse.ArgumentParser) -> None:
    """``--dht-protocol`` and ``--dht-namespace``, shared by ``node`` and every ``dht`` action."""
    p.add_argument(
        "--dht-protocol",
        default=DHT_PROTOCOL,
        metavar="PROTOCOL",
        help=f"the DHT's protocol ID (default: {DHT_PROTOCOL})",
    )
    p.add_argument(
        "--dht-namespace",
        action="append",
        type=_namespace,
        default=[],
        metavar="NAME",
        help="accept records under /NAME/ without validation (for tests), repeatable; "
        "/pk/ and /ipns/ records are always validated",
    )


def add_node_dht_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--bootstrap``, ``--dht``, ``--dht-protocol`` and ``--dht-namespace`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a peer to join through (ending in /p2p/<peer-id>), repeatable: the DHT's "
        "(implies --dht server unless pubsub is on) and pubsub's",
    )
    p.add_argument(
        "--dht",
        choices=DHT_MODES,
        default=None,
        help="run the Kademlia DHT: 'server' answers queries and advertises the protocol, "
        "'client' only asks (default: off, or server when another DHT option is given)",
    )
    _common_dht_options(p)


def node_wants_dht(args: argparse.Namespace) -> str | None:
    """The DHT mode a ``node`` command asks for.

    Args:
        args: the parsed ``node`` arguments.

    Returns:
        ``"server"`` or ``"client"``, or None when no DHT option was given (no DHT);
        ``--bootstrap`` counts as one only without ``--pubsub``/``--subscribe``.
    """
    if args.dht is not None:
        mode: str = args.dht
        return mode
    # --bootstrap alone asks for the DHT, unless pubsub is on: then it names pubsub peers.
    pubsub = getattr(args, "pubsub", None) or getattr(args, "subscribe", None)
    pubsub = pubsub or getattr(args, "membership", False)  # then it names membership seeds
    others = args.dht_namespace or args.dht_protocol != DHT_PROTOCOL
    return "server" if others or (args.bootstrap and not pubsub) else None


def _client_options(p: argparse.ArgumentParser) -> None:
    """What every ``dht`` action takes: the bootstrap peers, the stack, output, deadline."""
    p.add_argument(
        "--bootstrap",
        action="append",
        required=True,
        metavar="MULTIADDR",
        help="a DHT peer to connect to first (ending in /p2p/<peer-id>), repeatable",
    )
    _common_dht_options(p)
    add_client_options(
        p,
        timeout=60.0,
        timeout_help="deadline of the connections to the bootstrap peers, and then of the DHT "
        "operation (default: 60)",
    )


def add_client_options(p: argparse.ArgumentParser, *, timeout: float, timeout_help: str) -> None:
    """Add ``--key``, ``--json`` and ``--timeout``, shared by the client commands (``dht``,
    ``pubsub``) that start an ephemeral node.

    Args:
        p: the command's subparser.
        timeout: the default of ``--timeout`` (seconds).
        timeout_help: what ``--timeout`` bounds, for the help text.
    """
    p.add_argument(
        "--key",
        metavar="PATH",
        help="key file, readable by its owner only (default: a fresh, ephemeral key)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=timeout,
        metavar="SECONDS",
        help=timeout_help,
    )


def configure_dht(p: argparse.ArgumentParser) -> None:
    """Add the ``dht`` actions to the ``dht`` subparser.

    Args:
        p: the ``dht`` subparser.
    """
    sub = p.add_subparsers(dest="dht_command", required=True, metavar="ACTION")
    put = sub.add_parser("put", help="store a value under a key (UTF-8 text)")
    put.add_argument("record_key", metavar="KEY", help="record key, e.g. /test/hello")
    put.add_argument("value", metavar="VALUE", help="the value (UTF-8 text)")
    get = sub.add_parser("get", help="read the best value stored under a key")
    get.add_argument("record_key", metavar="KEY", help="record key, e.g. /test/hello")
    get.add_argument(
        "--quorum",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop once N peers have answered with a value (default: the DHT's quorum)",
    )
    provide = sub.add_parser("provide", help="announce that this node provides a CID")
    provide.add_argument("cid", metavar="CID", help="CIDv0 (Qm...) or CIDv1")
    provide.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help="address to listen on and announce, repeatable (default: /ip4/127.0.0.1/tcp/0)",
    )
    providers = sub.add_parser("find-providers", help="list the peers that provide a CID")
    providers.add_argument("cid", metavar="CID", help="CIDv0 (Qm...) or CIDv1")
    providers.add_argument(
        "--limit",
        type=_positive_int,
        default=20,
        metavar="N",
        help="stop after N providers (default: 20)",
    )
    peer = sub.add_parser("find-peer", help="find the addresses of a peer")
    peer.add_argument("peer_id", metavar="PEER_ID", help="the peer's ID (12D3KooW..., Qm...)")
    for action in (put, get, provide, providers, peer):
        _client_options(action)
