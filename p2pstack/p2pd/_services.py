"""The DHT, pubsub, connection-manager and peerstore requests of the p2pd control protocol, as
``client.dht``, ``client.pubsub``, ``client.connmanager`` and ``client.peerstore``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.abc

from p2pstack.identity import PeerId, PublicKey
from p2pstack.p2pd import _requests as rq
from p2pstack.p2pd._channel import ControlChannel, ReplyStream
from p2pstack.p2pd._codec import (
    DaemonProtocolError,
    DhtItem,
    PeerInfo,
    PubsubMessage,
    decode_dht_item,
    decode_dht_response,
    decode_ps_message,
    peer_id,
    peer_info,
    texts,
)
from p2pstack.p2pd.pb import p2pd_pb2 as pb

__all__ = ["ConnManagerClient", "DhtClient", "PeerstoreClient", "PubsubClient"]

T = TypeVar("T")
D = pb.DHTRequest
#: Slack, in seconds, on top of a DHT query's own timeout for the daemon to answer (at most the
#: timeout itself, so that short timeouts stay short).
_SLACK = 5.0


def _bound(timeout: float) -> float:
    return timeout + min(_SLACK, timeout)


def _item_reader(
    channel: ControlChannel,
) -> Callable[[anyio.abc.ByteStream], Awaitable[DhtItem | None]]:
    async def read(stream: anyio.abc.ByteStream) -> DhtItem | None:
        body = await channel.read_or_eof(stream)  # go and js both end with END; EOF ends too
        if body is None:
            return None
        msg = decode_dht_response(body)
        return None if msg.type == pb.DHTResponse.END else decode_dht_item(msg)

    return read


def _dht_start(resp: pb.Response) -> tuple[list[DhtItem], bool]:
    """A BEGIN (items follow) or a single VALUE (the whole answer)."""
    if not resp.HasField("dht") or not resp.dht.HasField("type"):
        raise DaemonProtocolError("DHT reply without a DHTResponse")
    if resp.dht.type == pb.DHTResponse.BEGIN:
        return [], True
    return [decode_dht_item(resp.dht)], False


class DhtClient:
    """DHT requests. ``timeout`` is the query's bound, passed to the daemon too (in seconds)."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel

    def _stream(self, request: pb.Request, timeout: float) -> ReplyStream[DhtItem]:
        return ReplyStream(
            self._channel,
            request,
            _dht_start,
            _item_reader(self._channel),
            deadline_after=_bound(timeout),
        )

    async def _single(self, request: pb.Request, timeout: float) -> DhtItem:
        items = await self._stream(request, timeout).collect(limit=1)
        if not items:
            raise DaemonProtocolError("the daemon's DHT answer holds no value")
        return items[0]

    async def find_peer(self, peer: PeerId, *, timeout: float = 60.0) -> PeerInfo:
        """The addresses of ``peer``, found through the DHT.

        Raises:
            DaemonError: not found, or no DHT. DaemonProtocolError: a malformed reply.
            P2PTimeoutError: no answer in ``timeout`` (plus up to 5 s of slack).
        """
        item = await self._single(rq.dht(D.FIND_PEER, peer=peer, timeout=timeout), timeout)
        if item.peer is None:
            raise DaemonProtocolError("FIND_PEER answer without a peer")
        return item.peer

    def find_providers(
        self, cid: bytes, *, count: int = 20, timeout: float = 60.0
    ) -> ReplyStream[PeerInfo]:
        """Providers of ``cid`` (binary CID), as the daemon finds them (at most ``count``)."""
        request = rq.dht(D.FIND_PROVIDERS, cid=cid, count=count, timeout=timeout)
        return _mapped(self._stream(request, timeout), _peer_of)

    def get_closest_peers(self, key: bytes, *, timeout: float = 60.0) -> ReplyStream[PeerId]:
        """The peers closest to ``key`` the daemon's lookup finds."""
        request = rq.dht(D.GET_CLOSEST_PEERS, key=key, timeout=timeout)
        return _mapped(self._stream(request, timeout), lambda i: peer_id(_value_of(i)))

    async def get_public_key(self, peer: PeerId, *, timeout: float = 60.0) -> PublicKey:
        """The public key of ``peer`` (raises as :meth:`find_peer`)."""
        item = await self._single(rq.dht(D.GET_PUBLIC_KEY, peer=peer, timeout=timeout), timeout)
        try:
            return PublicKey.from_protobuf(_value_of(item))
        except ValueError as exc:  # IdentityError is a P2PError, not a ValueError: kept
            raise DaemonProtocolError(f"bad public key from the daemon: {exc}") from None

    async def get_value(self, key: bytes, *, timeout: float = 60.0) -> bytes:
        """The best record value stored under ``key`` (raises as :meth:`find_peer`)."""
        item = await self._single(rq.dht(D.GET_VALUE, key=key, timeout=timeout), timeout)
        return _value_of(item)

    def search_value(self, key: bytes, *, timeout: float = 60.0) -> ReplyStream[bytes]:
        """Successively better values of ``key`` as the daemon finds them."""
        request = rq.dht(D.SEARCH_VALUE, key=key, timeout=timeout)
        return _mapped(self._stream(request, timeout), _value_of)

    async def put_value(self, key: bytes, value: bytes, *, timeout: float = 60.0) -> None:
        """Store ``value`` under ``key`` (raises as :meth:`find_peer`)."""
        request = rq.dht(D.PUT_VALUE, key=key, value=value, timeout=timeout)
        await self._channel.request(request, _bound(timeout))

    async def provide(self, cid: bytes, *, timeout: float = 60.0) -> None:
        """Announce the daemon as a provider of ``cid`` (raises as :meth:`find_peer`)."""
        await self._channel.request(rq.dht(D.PROVIDE, cid=cid, timeout=timeout), _bound(timeout))


def _peer_of(item: DhtItem) -> PeerInfo:
    if item.peer is None:
        raise DaemonProtocolError("DHT VALUE without a peer")
    return item.peer


def _value_of(item: DhtItem) -> bytes:
    if item.value is None:
        raise DaemonProtocolError("DHT VALUE without a value")
    return item.value


def _mapped(stream: ReplyStream[DhtItem], convert: Callable[[DhtItem], T]) -> ReplyStream[T]:
    return stream.map(convert)


class PubsubClient:
    """Pubsub requests (the daemon must run with pubsub)."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel

    async def get_topics(self, *, timeout: float | None = None) -> tuple[str, ...]:
        """The topics the daemon is subscribed to."""
        resp = await self._channel.request(rq.pubsub(pb.PSRequest.GET_TOPICS), timeout)
        return texts(resp.pubsub.topics)

    async def list_peers(self, topic: str, *, timeout: float | None = None) -> tuple[PeerId, ...]:
        """The peers the daemon knows to be subscribed to ``topic``."""
        request = rq.pubsub(pb.PSRequest.LIST_PEERS, topic=topic)
        resp = await self._channel.request(request, timeout)
        return tuple(peer_id(p) for p in resp.pubsub.peerIDs)

    async def publish(self, topic: str, data: bytes, *, timeout: float | None = None) -> None:
        """Publish ``data`` on ``topic``."""
        request = rq.pubsub(pb.PSRequest.PUBLISH, topic=topic, data=data)
        await self._channel.request(request, timeout)

    def subscribe(
        self, topic: str, *, timeout: float | None = None, idle_timeout: float | None = None
    ) -> ReplyStream[PubsubMessage]:
        """Subscribe to ``topic``; iterate the result for messages, close it to unsubscribe
        (``async with client.pubsub.subscribe(t) as sub: async for msg in sub: ...``).

        Args:
            timeout: bound of the subscription request itself (default: the client's).
            idle_timeout: the longest wait for one message (``None``: the caller bounds it).
        """
        channel = self._channel

        async def read(stream: anyio.abc.ByteStream) -> PubsubMessage | None:
            body = await channel.read_or_eof(stream)
            return None if body is None else decode_ps_message(body)

        return ReplyStream(
            channel,
            rq.pubsub(pb.PSRequest.SUBSCRIBE, topic=topic),
            lambda _resp: ([], True),
            read,
            deadline_after=None,
            first_timeout=timeout if timeout is not None else channel.timeout,
            idle_timeout=idle_timeout,
        )


class ConnManagerClient:
    """Connection-manager requests: tags weigh peers for trimming."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel

    async def tag_peer(self, peer: PeerId, tag: str, weight: int) -> None:
        """Tag ``peer`` with ``tag`` of ``weight``."""
        M = pb.ConnManagerRequest
        await self._channel.request(rq.connmanager(M.TAG_PEER, peer=peer, tag=tag, weight=weight))

    async def untag_peer(self, peer: PeerId, tag: str) -> None:
        """Remove ``tag`` from ``peer``."""
        M = pb.ConnManagerRequest
        await self._channel.request(rq.connmanager(M.UNTAG_PEER, peer=peer, tag=tag))

    async def trim(self) -> None:
        """Make the daemon trim its connections now."""
        await self._channel.request(rq.connmanager(pb.ConnManagerRequest.TRIM))


class PeerstoreClient:
    """Peerstore requests (js-libp2p's PEERSTORE, request type 9)."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel

    async def get_protocols(self, peer: PeerId) -> tuple[str, ...]:
        """The protocols the daemon knows ``peer`` supports."""
        request = rq.peerstore(pb.PeerstoreRequest.GET_PROTOCOLS, peer)
        resp = await self._channel.request(request)
        return texts(resp.peerStore.protos)

    async def get_peer_info(self, peer: PeerId) -> PeerInfo:
        """What the daemon's peerstore holds about ``peer`` (its addresses)."""
        resp = await self._channel.request(rq.peerstore(pb.PeerstoreRequest.GET_PEER_INFO, peer))
        if not resp.peerStore.HasField("peer"):
            raise DaemonProtocolError("GET_PEER_INFO answer without a peer")
        return peer_info(resp.peerStore.peer)
