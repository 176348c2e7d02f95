"""PUBSUB requests: GET_TOPICS, LIST_PEERS, PUBLISH, and SUBSCRIBE (an OK ``Response``, then one
varint-prefixed ``PSMessage`` per message until the client closes the connection)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from p2pstack.roots.daemon import _wire as w

if TYPE_CHECKING:
    from p2pstack.roots.daemon._server import ControlConnection, DaemonServer
    from protocols.pubsub import Pubsub, PubsubMessage

__all__ = ["handle_pubsub", "to_ps_message"]


def to_ps_message(message: PubsubMessage) -> bytes:
    """The framed ``PSMessage`` of a delivered message (its signed wire fields)."""
    raw = message.raw
    return w.encode(
        w.ps_message(
            sender=raw.from_.to_bytes() if raw.from_ is not None else None,
            data=message.data,
            seqno=raw.seqno,
            topics=[message.topic],
            signature=raw.signature,
            key=raw.key,
        )
    )


def _pubsub(server: DaemonServer) -> Pubsub:
    from p2pstack.roots.daemon._server import Unavailable

    if server.pubsub is None:
        raise Unavailable("pubsub not enabled (start the daemon with -pubsub)")
    return server.pubsub


async def handle_pubsub(
    server: DaemonServer, command: w.PubsubCommand, conn: ControlConnection
) -> bool:
    """Answer a PUBSUB request on ``conn``.

    Returns:
        True for SUBSCRIBE (the connection carried the subscription until it closed).
    """
    from p2pstack.roots.daemon._server import EXPECTED, describe

    response = w.ok_response()
    try:
        pubsub = _pubsub(server)
        if command.op == "SUBSCRIBE":
            assert command.topic is not None
            await _subscribe(pubsub, command.topic, conn)
            return True
        if command.op == "GET_TOPICS":
            response.pubsub.topics.extend(sorted(pubsub.topics))
        elif command.op == "LIST_PEERS":
            peers = pubsub.peers(command.topic)
            response.pubsub.SetInParent()
            response.pubsub.peerIDs.extend(p.to_bytes() for p in peers)
        else:
            assert command.topic is not None
            pubsub.publish(command.topic, command.data)
        response.pubsub.SetInParent()
    except EXPECTED as exc:
        response = w.error_response(describe(exc))
    await conn.send(w.encode(response))
    return False


async def _subscribe(pubsub: Pubsub, topic: str, conn: ControlConnection) -> None:
    subscription = pubsub.subscribe(topic)
    try:
        await conn.send(w.encode(w.ok_response()))
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_closed, conn, tg.cancel_scope)
            async for message in subscription:
                await conn.send(to_ps_message(message))
            tg.cancel_scope.cancel()
    finally:
        subscription.close()


async def _until_closed(conn: ControlConnection, scope: anyio.CancelScope) -> None:
    """Wait until the client closes (or breaks) the connection, then end the subscription."""
    from p2pstack.roots.daemon._server import CLOSED

    try:
        while await conn.receive(4096):
            pass  # a subscriber has nothing to say; anything it sends is ignored
    except CLOSED:
        pass
    scope.cancel()
