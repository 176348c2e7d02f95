"""``p2pstack pubsub sub|pub``: an ephemeral pubsub node that connects to every ``--bootstrap``
peer, then subscribes and prints messages, or publishes one message, and exits; and the pubsub
part of ``p2pstack node`` (its service, its topics, its events). Shapes: issue 11, item 5;
README, "The command line"; docs/pubsub.md, "The command line".

``from`` in a message event is the message's signed ``from``, its original publisher, never the
peer that forwarded it.
"""

from __future__ import annotations

import argparse
import base64
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from p2pstack.roots.cli import _pubsub_join as join
from p2pstack.roots.cli._client import client_config
from p2pstack.roots.cli._common import Output, UserError, load_identity, run_async
from p2pstack.roots.cli._dht import check_bootstrap_option
from p2pstack.roots.cli._errors import describe
from p2pstack.roots.defaults import default_services, open_default_host
from protocols.pubsub import MessageTooLarge, Pubsub, PubsubMessage, TopicPeerChanged

__all__ = [
    "message_fields",
    "node_services",
    "print_message",
    "print_messages",
    "pubsub_event",
    "report_join",
    "run_pubsub",
]


def message_fields(message: PubsubMessage) -> dict[str, object]:
    """The fields of a ``message`` event.

    Args:
        message: a delivered message.

    Returns:
        ``topic``; ``from`` (the original publisher, None under StrictNoSign); ``seqno`` (its 8
        bytes in hex, or None); ``data`` (the UTF-8 text, or None when the bytes are not
        UTF-8); ``data_b64`` (standard base64, always); ``msg_id`` (hex, as this node computes
        it).
    """
    try:
        text: str | None = message.data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    seqno = message.raw.seqno
    return {
        "topic": message.topic,
        "from": None if message.from_peer is None else str(message.from_peer),
        "seqno": None if seqno is None else seqno.hex(),
        "data": text,
        "data_b64": base64.b64encode(message.data).decode("ascii"),
        "msg_id": message.msg_id.hex(),
    }


def print_message(out: Output, message: PubsubMessage) -> None:
    """Print a ``message`` event (text: ``[TOPIC] FROM: DATA``).

    Args:
        out: the output.
        message: the message.
    """
    fields = message_fields(message)
    data = fields["data"]
    if data is None:
        data = f"({len(message.data)} bytes, not UTF-8; base64: {fields['data_b64']})"
    sender = fields["from"] or "(unsigned)"
    out.event("message", f"[{message.topic}] {sender}: {data}", **fields)


async def print_messages(
    messages: AsyncIterator[PubsubMessage], out: Output, count: int | None = None
) -> None:
    """Print each message of a subscription as it arrives.

    Args:
        messages: the subscription.
        out: the output.
        count: stop after this many messages (None: when the subscription ends).
    """
    seen = 0
    async for message in messages:
        print_message(out, message)
        seen += 1
        if count is not None and seen >= count:
            return


def node_services(router: str) -> list[Service]:
    """The services of ``p2pstack node --pubsub ROUTER``.

    Args:
        router: ``"gossipsub"`` or ``"floodsub"``.

    Returns:
        Identify, ping, perf (served) and ``Pubsub(router)``.
    """
    return [*default_services(serve_perf=True), Pubsub(router)]


async def report_join(host: Host, bootstrap: Sequence[str], out: Output, timeout: float) -> None:
    """Connect to the ``--bootstrap`` peers for ``p2pstack node --pubsub`` and print the
    outcome: ``{"event": "pubsub_bootstrapped", "peers": N}`` (the pubsub peers among those
    reached) or ``{"event": "pubsub_bootstrap_failed", "error": ...}``; the node keeps running
    either way.

    Args:
        host: the node's host (with the ``Pubsub`` service).
        bootstrap: the ``--bootstrap`` values.
        out: the output.
        timeout: seconds for the connections and the pubsub links.
    """
    failures: tuple[type[BaseException], ...] = (UserError, *NETWORK_ERRORS)
    pubsub = host.service(Pubsub)
    try:
        with anyio.fail_after(timeout):
            reached = await join.connect_all(host, check_bootstrap_option(bootstrap))
            peers = await join.wait_links(host, pubsub, reached)
    except failures as exc:
        error = describe(exc)
        out.event("pubsub_bootstrap_failed", f"pubsub bootstrap failed: {error}", error=error)
        return
    plural = "s" if len(peers) != 1 else ""
    out.event(
        "pubsub_bootstrapped", f"pubsub: linked to {len(peers)} peer{plural}", peers=len(peers)
    )


def pubsub_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """A topic membership change as ``p2pstack node`` prints it.

    Args:
        event: an event from ``host.subscribe()``.

    Returns:
        ``(name, text, fields)`` for ``TopicPeerChanged`` (``topic_peer_joined`` or
        ``topic_peer_left``, with ``peer_id`` and ``topic``), else None.
    """
    if not isinstance(event, TopicPeerChanged):
        return None
    peer, verb = str(event.peer_id), "joined" if event.subscribed else "left"
    fields: dict[str, object] = {"peer_id": peer, "topic": event.topic}
    return f"topic_peer_{verb}", f"{peer} {verb} topic {event.topic}", fields


def run_pubsub(args: argparse.Namespace) -> int:
    """``pubsub sub|pub TOPIC ... --bootstrap MA``: exit 0, or 1 with one line on stderr.

    Args:
        args: ``pubsub_command`` and its arguments (see ``_pubsub_args``).

    Returns:
        0 on success (``sub``: after ``--count`` messages or a signal once subscribed); 128 +
        the signal number (130, 143) for SIGINT or SIGTERM before that, with one line on stderr.

    Raises:
        UserError: no bootstrap peer reachable, none speaking the router's protocols, too few
            subscribers for ``pub`` within ``--timeout``, a message too large.
    """
    check_bootstrap_option(args.bootstrap)
    return run_async(_run, args)


@asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[tuple[Host, Pubsub, list[PeerId]]]:
    """An ephemeral node linked to its ``--bootstrap`` pubsub peers within ``--timeout``."""
    addrs = check_bootstrap_option(args.bootstrap)
    async with open_default_host(
        identity=load_identity(args.key),
        config=client_config(args.timeout),
        services=[*default_services(), Pubsub(args.router)],
    ) as host:
        pubsub = host.service(Pubsub)
        with anyio.fail_after(args.timeout):
            reached = await join.connect_all(host, addrs)
            peers = await join.wait_links(host, pubsub, reached)
        yield host, pubsub, peers


@attrs.define
class _Signals:
    """The SIGINT or SIGTERM that stopped a ``pubsub`` client, and whether it had done its job
    by then (``subscribed`` printed, or ``published``)."""

    signum: int | None = None
    ready: bool = False


async def _run(args: argparse.Namespace) -> int:
    # The handlers are set before anything else: a signal while connecting or subscribing
    # stops the client as cleanly as one after ``subscribed``.
    out, signals, status = Output(args.json), _Signals(), 0
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                async for signum in received:
                    signals.signum = signum
                    tg.cancel_scope.cancel()

            tg.start_soon(stop_on_signal)
            async with _client(args) as (host, pubsub, peers):
                if args.pubsub_command == "pub":
                    status = await _publish(args, host, pubsub, out, signals=signals)
                else:
                    status = await _subscribe(args, host, pubsub, peers, out, signals=signals)
            tg.cancel_scope.cancel()
    if signals.signum is None or signals.ready:
        return status
    name = signal.Signals(signals.signum).name
    done = "publishing on" if args.pubsub_command == "pub" else "subscribing to"
    print(f"p2pstack: interrupted by {name} before {done} {args.topic}", file=sys.stderr)
    return 128 + signals.signum


async def _subscribe(
    args: argparse.Namespace,
    host: Host,
    pubsub: Pubsub,
    peers: Sequence[PeerId],
    out: Output,
    *,
    signals: _Signals,
) -> int:
    topic: str = args.topic
    with anyio.fail_after(args.timeout):
        subscription = await join.subscribe_through(host, pubsub, topic, peers)
    try:
        plural = "s" if len(peers) != 1 else ""
        text = f"subscribed to {topic} ({len(peers)} peer{plural})"
        out.event("subscribed", text, topic=topic, peers=len(peers))
        signals.ready = True  # a signal from now on is the normal way to stop
        await print_messages(subscription, out, args.count)
    finally:
        subscription.close()
    return 0


async def _publish(
    args: argparse.Namespace, host: Host, pubsub: Pubsub, out: Output, *, signals: _Signals
) -> int:
    topic: str = args.topic
    try:
        published = await join.publish_through(
            host,
            pubsub,
            topic,
            args.message.encode(),
            wait_peers=args.wait_peers,
            timeout=args.timeout,
        )
    except MessageTooLarge as exc:
        raise UserError(str(exc)) from None
    msg_id = published.msg_id.hex()
    plural = "s" if published.peers != 1 else ""
    out.event(
        "published",
        f"published {msg_id} on {topic} to {published.peers} peer{plural}",
        topic=topic,
        msg_id=msg_id,
        peers=published.peers,
    )
    signals.ready = True
    return 0
