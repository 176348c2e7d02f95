"""Server side of the DHT, sans-IO: one request in, one response (or none) out
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages).

What each request gets, following the spec and, where the spec is silent, go-libp2p-kad-dht and
js-libp2p's kad-dht:

- ``FIND_NODE(key)``: ``closerPeers`` = the ``k`` peers of the routing table nearest to
  ``sha256(key)``, never the requester ("never tell a peer about itself", js) nor ourselves. When
  ``key`` is our own peer ID the answer is exactly ourselves, the spec's "for an exact match
  exactly one Peer is returned" (go does the same; js appends itself to the k closest).
- ``GET_VALUE(key)``: ``record`` when we hold one under ``key`` (for ``/pk/<id>`` with a public
  key inlined in the peer ID, that key, as the spec allows) plus ``closerPeers``.
- ``PUT_VALUE(key, record)``: ``record.key`` must equal ``key`` and pass its namespace's
  validator; when a record is already held under the key, the one the namespace's selector
  prefers is kept. The response echoes the request's key and record (go and js clients check
  that the echoed value is theirs), also when the older record was kept (go answers an outdated
  record with an error, js echoes every PUT_VALUE; a peer holding a newer record is not
  misbehaving, so its stream is not reset). The stored copy is stamped with the wall-clock time
  in ``timeReceived`` (RFC 3339, as go and js stamp it), which GET_VALUE answers then carry.
- ``ADD_PROVIDER(key, providerPeers)``: only entries naming the sender itself are recorded, and
  only with addresses (js drops address-less ones). No response.
- ``GET_PROVIDERS(key)``: ``providerPeers`` we hold for ``key`` plus ``closerPeers``.
- ``PING``: answered with ``PING`` ("Nodes should respond to this message but it is currently
  never sent"), echoing its key and cluster level but none of the peers or record it may carry.

Every response echoes the request's ``key`` and ``clusterLevel`` (go and js do). Peers without a
known address are left out of ``closerPeers`` and ``providerPeers``, as go and js do: a peer the
requester cannot dial is no use to it. Provider keys are multihashes (a CID's multihash, as js
and py send them), at most 80 bytes like go.

A request that is malformed or not allowed raises :class:`KadProtocolError`, a record that fails
validation :class:`RecordValidationError`; the driver resets that stream and counts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from multiaddr import Multiaddr

from p2pstack.errors import InvalidPeerIdError, RemoteProtocolError
from p2pstack.identity import PeerId
from p2pstack.varint import IncompleteVarint, decode_uvarint
from protocols.kad._keyspace import key_of
from protocols.kad._store import DEFAULT_MAX_ADDRS_PER_PROVIDER
from protocols.kad._types import (
    KadError,
    KadMessage,
    KadPeer,
    KadProtocolError,
    MessageType,
    Record,
    RecordValidationError,
)
from protocols.kad._wire import format_time_received

if TYPE_CHECKING:
    from protocols.kad._store import ProviderStore, RecordStore
    from protocols.kad._table import RoutingTable
    from protocols.kad._validation import Validators

__all__ = ["MAX_PROVIDER_ADDRS", "MAX_PROVIDER_KEY_SIZE", "RequestHandler", "check_multihash"]

#: Longest provider key accepted (go-libp2p-kad-dht's limit; a sha2-512 multihash is 66 bytes).
MAX_PROVIDER_KEY_SIZE = 80

#: Addresses of one ADD_PROVIDER sender kept (the rest dropped), as many as the store keeps.
MAX_PROVIDER_ADDRS = DEFAULT_MAX_ADDRS_PER_PROVIDER


def check_multihash(key: bytes) -> None:
    """Check that ``key`` is one whole multihash (code, length, digest of that length) of at most
    :data:`MAX_PROVIDER_KEY_SIZE` bytes.

    Raises:
        KadProtocolError: it is not.
    """
    if not key:
        raise KadProtocolError("provider key is empty")
    if len(key) > MAX_PROVIDER_KEY_SIZE:
        raise KadProtocolError(f"provider key longer than {MAX_PROVIDER_KEY_SIZE} bytes")
    try:
        _code, pos = decode_uvarint(key)
        length, pos = decode_uvarint(key, pos)
    except (IncompleteVarint, RemoteProtocolError) as exc:
        raise KadProtocolError("provider key is not a multihash") from exc
    if len(key) - pos != length:
        raise KadProtocolError("provider key's multihash length does not match its digest")


class RequestHandler:
    """Answers DHT requests from the routing table and the local stores (see the module
    docstring). Holds no state of its own beyond its collaborators.

    Args:
        local: our own peer ID.
        table: the routing table ``closerPeers`` come from (read only).
        records: where PUT_VALUE records are kept.
        providers: where ADD_PROVIDER entries are kept.
        validators: the record namespaces.
        peer_info: the ``KadPeer`` (addresses, connection state) to describe a peer with; for
            ``local`` it must give our own advertised addresses.
        k: how many ``closerPeers`` at most.
        on_provider: called with each provider entry accepted (the sender and the addresses
            it announced), so the driver can put them in its peerstore.
        wall_clock: seconds since the epoch, for the ``timeReceived`` stamp of stored records.
    """

    def __init__(
        self,
        *,
        local: PeerId,
        table: RoutingTable,
        records: RecordStore,
        providers: ProviderStore,
        validators: Validators,
        peer_info: Callable[[PeerId], KadPeer],
        k: int = 20,
        on_provider: Callable[[KadPeer], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.table = table
        self.records = records
        self.providers = providers
        self.validators = validators
        self.peer_info = peer_info
        self.k = k
        self.on_provider = on_provider
        self.wall_clock = wall_clock

    def handle(self, request: KadMessage, sender: KadPeer, now: float) -> KadMessage | None:
        """Answer one request.

        Args:
            request: the decoded request.
            sender: the peer that sent it (the remote peer of the stream).
            now: the current time (seconds), for the stores' expiry.

        Returns:
            The response to send, or ``None`` (ADD_PROVIDER has none).

        Raises:
            KadProtocolError: the request is malformed or not allowed (missing key or record,
                record key differs from the message key, provider key not a multihash, provider
                entries for another peer or without addresses, an unknown type, a full store).
            RecordValidationError: a PUT_VALUE record fails its namespace's validator.
        """
        kind = request.type
        if kind == MessageType.FIND_NODE:
            return self._find_node(request, sender.peer_id)
        if kind == MessageType.GET_VALUE:
            return self._get_value(request, sender.peer_id, now)
        if kind == MessageType.PUT_VALUE:
            return self._put_value(request, now)
        if kind == MessageType.ADD_PROVIDER:
            self._add_provider(request, sender.peer_id, now)
            return None
        if kind == MessageType.GET_PROVIDERS:
            return self._get_providers(request, sender.peer_id, now)
        if kind == MessageType.PING:
            return _reply(request)
        raise KadProtocolError(f"unknown DHT message type {kind!r}")

    # -- peer routing --------------------------------------------------------------------------

    def closer_peers(self, key: bytes, requester: PeerId) -> tuple[KadPeer, ...]:
        """The ``k`` table peers nearest to ``sha256(key)`` that have addresses, without the
        requester (the local peer is never in the table)."""
        found: list[KadPeer] = []
        for peer in self.table.closest(key_of(key), 2 * self.k + 1):
            if peer == requester:
                continue
            info = self.peer_info(peer)
            if info.addrs:
                found.append(info)
                if len(found) == self.k:
                    break
        return tuple(found)

    def _find_node(self, request: KadMessage, requester: PeerId) -> KadMessage:
        if not request.key:
            raise KadProtocolError("FIND_NODE without a key")
        if request.key == self.local.to_bytes():
            me = self.peer_info(self.local)
            closer: tuple[KadPeer, ...] = (me,) if me.addrs else ()
        else:
            closer = self.closer_peers(request.key, requester)
        return _reply(request, closer_peers=closer)

    # -- records -------------------------------------------------------------------------------

    def _get_value(self, request: KadMessage, requester: PeerId, now: float) -> KadMessage:
        key = request.key
        if not key:
            raise KadProtocolError("GET_VALUE without a key")
        record = self.records.get(key, now)
        if record is None:
            record = _inlined_public_key(key)
        return _reply(request, record=record, closer_peers=self.closer_peers(key, requester))

    def _put_value(self, request: KadMessage, now: float) -> KadMessage:
        record = request.record
        if record is None:
            raise KadProtocolError("PUT_VALUE without a record")
        if record.key != request.key:
            raise KadProtocolError("PUT_VALUE record key differs from the message key")
        self.validators.validate(record.key, record.value)
        held = self.records.get(record.key, now)
        if held is not None and not self._prefers(record, held):
            return _reply(request, record=record)  # keep the record the namespace prefers
        try:
            stamp = format_time_received(self.wall_clock())
            self.records.put(Record(key=record.key, value=record.value, time_received=stamp), now)
        except (KadProtocolError, RecordValidationError):
            raise  # RecordTooLarge is a RecordValidationError
        except KadError as exc:
            # StoreFull: a peer flooding new keys must not crash the host; its stream is reset.
            raise KadProtocolError(f"record not stored: {exc}") from exc
        return _reply(request, record=record)

    def _prefers(self, new: Record, held: Record) -> bool:
        """Whether the validated ``new`` record should replace ``held``: the selector picks
        it, or ``held`` no longer passes (an expired IPNS record makes the selector fail)."""
        if new.value == held.value:
            return True
        try:
            return self.validators.select(new.key, [new.value, held.value]) == 0
        except RecordValidationError:
            return True

    # -- providers -----------------------------------------------------------------------------

    def _add_provider(self, request: KadMessage, sender: PeerId, now: float) -> None:
        check_multihash(request.key)
        own = [entry for entry in request.provider_peers if entry.peer_id == sender]
        if not own:
            raise KadProtocolError("ADD_PROVIDER names no provider entry for the sender itself")
        addrs = _unique(addr for entry in own for addr in entry.addrs)[:MAX_PROVIDER_ADDRS]
        if not addrs:
            raise KadProtocolError("ADD_PROVIDER entry without addresses")
        provider = KadPeer(peer_id=sender, addrs=addrs)
        if self.providers.add(request.key, provider, now) and self.on_provider is not None:
            self.on_provider(provider)

    def _get_providers(self, request: KadMessage, requester: PeerId, now: float) -> KadMessage:
        check_multihash(request.key)
        found: list[KadPeer] = []
        for stored in self.providers.get(request.key, now):
            addrs = stored.addrs or self.peer_info(stored.peer_id).addrs
            if addrs:
                found.append(KadPeer(peer_id=stored.peer_id, addrs=addrs))
        return _reply(
            request,
            provider_peers=tuple(found),
            closer_peers=self.closer_peers(request.key, requester),
        )


def _reply(
    request: KadMessage,
    *,
    record: Record | None = None,
    closer_peers: tuple[KadPeer, ...] = (),
    provider_peers: tuple[KadPeer, ...] = (),
) -> KadMessage:
    return KadMessage(
        type=request.type,
        key=request.key,
        record=record,
        closer_peers=closer_peers,
        provider_peers=provider_peers,
        cluster_level=request.cluster_level,
    )


def _inlined_public_key(key: bytes) -> Record | None:
    """For ``/pk/<peer ID>`` where the peer ID inlines its public key (an identity multihash,
    as Ed25519 and secp256k1 IDs do), the record the spec says to answer with."""
    if not key.startswith(b"/pk/"):
        return None
    try:
        peer = PeerId.from_bytes(key[4:])
    except InvalidPeerIdError:
        return None
    public_key = peer.extract_public_key()
    if public_key is None:
        return None
    return Record(key=key, value=public_key.to_protobuf())


def _unique(addrs: Iterable[Multiaddr]) -> tuple[Multiaddr, ...]:
    return tuple(dict.fromkeys(addrs))
