"""Arguments of the pubsub command line: ``p2pstack node``'s ``--pubsub``/``--subscribe`` and the
``p2pstack pubsub sub|pub`` subcommands (issue 11, item 5; docs/pubsub.md, "The command line").
Standard library only: parsing must not load the network stack (see ``_registry``)."""

from __future__ import annotations

import argparse

from p2pstack.roots.cli._dht_args import _positive_int, add_client_options

__all__ = [
    "DEFAULT_ROUTER",
    "PUBSUB_ACTIONS",
    "ROUTERS",
    "add_node_pubsub_arguments",
    "configure_pubsub",
    "node_wants_pubsub",
]

#: The routers by the name the command line uses, in ``--help`` order.
ROUTERS = ("gossipsub", "floodsub")
#: The router of ``--subscribe`` without ``--pubsub``, and of ``pubsub sub|pub``.
DEFAULT_ROUTER = "gossipsub"
#: The ``p2pstack pubsub`` actions, in ``--help`` order.
PUBSUB_ACTIONS = ("sub", "pub")


def _topic(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a topic is a non-empty string")
    return text


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_node_pubsub_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--pubsub`` and ``--subscribe`` to ``node``.

    Args:
        p: the ``node`` subparser.
    """
    p.add_argument(
        "--pubsub",
        choices=ROUTERS,
        default=None,
        help="run publish/subscribe with this router and forward messages on the subscribed "
        f"topics (default: off, or {DEFAULT_ROUTER} with --subscribe)",
    )
    p.add_argument(
        "--subscribe",
        action="append",
        type=_topic,
        default=[],
        metavar="TOPIC",
        help="join TOPIC and print each message received on it, repeatable",
    )


def node_wants_pubsub(args: argparse.Namespace) -> str | None:
    """The router a ``node`` command asks for.

    Args:
        args: the parsed ``node`` arguments.

    Returns:
        ``"gossipsub"`` or ``"floodsub"``, or None when no pubsub option was given.
    """
    if args.pubsub is not None:
        router: str = args.pubsub
        return router
    return DEFAULT_ROUTER if args.subscribe else None


def _client_options(p: argparse.ArgumentParser) -> None:
    """What ``sub`` and ``pub`` take: the bootstrap peers, the router, output, deadline."""
    p.add_argument("topic", metavar="TOPIC", type=_topic, help="the topic")
    p.add_argument(
        "--bootstrap",
        action="append",
        required=True,
        metavar="MULTIADDR",
        help="a pubsub peer to connect to (ending in /p2p/<peer-id>), repeatable",
    )
    p.add_argument(
        "--router",
        choices=ROUTERS,
        default=DEFAULT_ROUTER,
        help=f"the pubsub router (default: {DEFAULT_ROUTER})",
    )
    add_client_options(
        p,
        timeout=30.0,
        timeout_help="deadline of the connections to the bootstrap peers and of the wait before "
        "subscribing or publishing (default: 30)",
    )


def configure_pubsub(p: argparse.ArgumentParser) -> None:
    """Add the ``pubsub`` actions to the ``pubsub`` subparser.

    Args:
        p: the ``pubsub`` subparser.
    """
    sub = p.add_subparsers(dest="pubsub_command", required=True, metavar="ACTION")
    subscribe = sub.add_parser(
        "sub",
        help="subscribe to a topic through the bootstrap peers and print its messages",
        description="Connect to every --bootstrap peer, subscribe to TOPIC, print "
        "'subscribed' once the subscription (and, for gossipsub, the GRAFT) has been written to "
        "them, then print each message: from is its original publisher. Runs until "
        "--count messages, SIGINT or SIGTERM.",
    )
    _client_options(subscribe)
    subscribe.add_argument(
        "--count",
        type=_positive_int,
        default=None,
        metavar="N",
        help="exit after N messages (default: run until interrupted)",
    )
    publish = sub.add_parser(
        "pub",
        help="publish one message on a topic through the bootstrap peers",
        description="Connect to every --bootstrap peer, wait until --wait-peers subscribers "
        "of TOPIC are known, publish MESSAGE (UTF-8) and exit once it has been sent.",
    )
    _client_options(publish)
    publish.add_argument("message", metavar="MESSAGE", help="the message (UTF-8 text)")
    publish.add_argument(
        "--wait-peers",
        type=_count,
        default=1,
        metavar="N",
        help="wait (within --timeout) until N subscribers of TOPIC are known before "
        "publishing (default: 1; 0 publishes at once)",
    )
