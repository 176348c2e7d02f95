"""A terminal chat room over libp2p pubsub (gossipsub by default): every line typed is published
on the room's topic, every message on it is printed with its sender's nickname.

Run it in two terminals (the first prints the address the second joins through)::

    .venv/bin/python examples/chat.py --nick alice
    .venv/bin/python examples/chat.py --nick bob --bootstrap /ip4/127.0.0.1/tcp/PORT/p2p/ID

Any pubsub node on the same topic takes part, a js-libp2p one included
(tests/interop/test_pubsub_cli.py runs it against one). A chat message is the UTF-8 JSON object
``{"nick": ..., "text": ...}``; any other message is shown as text from the sender's peer ID,
so plain-text publishers (``p2pstack pubsub pub``) show up too. ``/quit`` or end of input leaves.
Reads stdin with ``anyio.wait_readable``: POSIX only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata

import anyio

from p2pstack import Host
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.roots.defaults import default_services, open_default_host
from protocols.pubsub import Pubsub, PubsubMessage, Subscription, TopicPeerChanged

TOPIC = "p2pstack-chat"
#: Longest nickname shown, and longest line sent (characters).
MAX_NICK = 32
MAX_TEXT = 2000
#: Seconds to reach the bootstrap peers, and to write our subscription to them.
JOIN_TIMEOUT = 15.0
#: Seconds to wait for the bootstrap peers' own subscriptions (a peer not in the room yet
#: gets ours now and joins us when it subscribes).
ROOM_WAIT = 5.0


def clean(text: str, limit: int) -> str:
    """``text`` without control characters (a peer must not drive our terminal), cut at
    ``limit`` characters."""
    shown = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in text)
    return shown[:limit]


def encode(nick: str, text: str) -> bytes:
    """A chat message's payload."""
    return json.dumps({"nick": nick, "text": text}, ensure_ascii=False).encode()


def render(message: PubsubMessage) -> str:
    """How a message is printed: ``<nick> text``, or ``<peer-id> text`` for a non-chat message
    (``<peer-id>`` ends with the last 6 characters of the sender's ID)."""
    sender = str(message.from_peer) if message.from_peer else "unsigned"
    short = f"{sender[:8]}…{sender[-6:]}"
    text = message.data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("text"), str):
        nick = clean(str(body.get("nick") or short), MAX_NICK)
        return f"<{nick}> {clean(body['text'], MAX_TEXT)}"
    return f"<{short}> {clean(text, MAX_TEXT)}"


async def join(
    host: Host, pubsub: Pubsub, topic: str, bootstrap: list[str]
) -> tuple[Subscription, int]:
    """Connect to the bootstrap peers, wait until they are known to be in the room, join it,
    and return once our subscription (and, for gossipsub, GRAFT) has been written to them.

    Returns:
        The room's subscription and the number of peers in the room we are linked to.
    """
    peers = []
    for addr in bootstrap:
        try:
            with anyio.fail_after(JOIN_TIMEOUT):
                peers.append((await host.connect(addr)).remote_peer)
        except NETWORK_ERRORS as exc:
            print(f"chat: could not reach {addr}: {exc}", file=sys.stderr)
    with anyio.move_on_after(ROOM_WAIT):
        await pubsub.wait_until(lambda ps: set(peers) <= set(ps.peers(topic)))
    subscription = pubsub.subscribe(topic)  # GRAFTs the room's peers we know of
    with anyio.fail_after(JOIN_TIMEOUT):
        await pubsub.flush(peers)
    return subscription, len(pubsub.peers(topic))


async def show(host: Host, subscription: Subscription) -> None:
    """Print the room's messages (ours excepted: the terminal shows them)."""
    async with subscription:
        async for message in subscription:
            if message.from_peer != host.peer_id:
                print(render(message), flush=True)


async def show_arrivals(host: Host, topic: str) -> None:
    """Print who enters and leaves the room."""
    with host.subscribe() as events:
        async for event in events:
            if isinstance(event, TopicPeerChanged) and event.topic == topic:
                verb = "joined" if event.subscribed else "left"
                print(f"* {event.peer_id} {verb}", flush=True)


async def read_input(pubsub: Pubsub, topic: str, nick: str, fd: int) -> None:
    """Publish each line typed until ``/quit`` or end of input."""
    pending = b""
    while True:
        await anyio.wait_readable(fd)
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            text = raw.decode("utf-8", errors="replace").strip()
            if text == "/quit":
                return
            if text:
                pubsub.publish(topic, encode(nick, text[:MAX_TEXT]))


async def chat(args: argparse.Namespace) -> None:
    async with open_default_host(
        listen=args.listen or ["/ip4/127.0.0.1/tcp/0"],
        services=[*default_services(), Pubsub(args.router)],
    ) as host:
        pubsub = host.service(Pubsub)
        print(f"chat: you are {args.nick} ({host.peer_id})", flush=True)
        print(f"chat: others join with --bootstrap {host.addrs[0]}", flush=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(show_arrivals, host, args.topic)
            subscription, peers = await join(host, pubsub, args.topic, args.bootstrap)
            tg.start_soon(show, host, subscription)
            plural = "s" if peers != 1 else ""
            print(f"chat: joined {args.topic} ({peers} peer{plural} in the room)", flush=True)
            await read_input(pubsub, args.topic, args.nick, sys.stdin.fileno())
            await pubsub.flush()  # our last lines reach the room before we leave
            tg.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="A terminal chat room over libp2p pubsub.")
    parser.add_argument("--nick", default=os.environ.get("USER", "anon"), help="your name")
    parser.add_argument("--topic", default=TOPIC, help=f"the room (default: {TOPIC})")
    parser.add_argument("--bootstrap", action="append", default=[], metavar="MULTIADDR")
    parser.add_argument("--listen", action="append", metavar="MULTIADDR")
    parser.add_argument("--router", choices=["gossipsub", "floodsub"], default="gossipsub")
    args = parser.parse_args()
    args.nick = clean(args.nick, MAX_NICK)
    try:
        anyio.run(chat, args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
