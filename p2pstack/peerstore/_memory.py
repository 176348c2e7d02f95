"""The in-memory peerstore: bounded per peer and in total, expiring what peers that are gone
told us, never forgetting pinned (connected or protected) peers. Signed peer records follow
https://github.com/libp2p/specs/blob/master/RFC/0003-routing-records.md (keep the highest seq).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from p2pstack.errors import IdentityError
from p2pstack.identity import Envelope, PeerRecord
from p2pstack.peerstore._interface import ADDR_TTL_RECENT

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId, PublicKey

__all__ = ["Peerstore", "PeerstoreLimits", "PeerstoreStatistics"]

log = logging.getLogger("p2pstack.peerstore")

# Rough per-item overheads (bytes) for the memory accounting: the accounting bounds what a peer
# can make us hold; it need not match CPython's allocator exactly.
_ITEM_OVERHEAD = 64
_PEER_OVERHEAD = 512
# A Multiaddr object costs far more than its bytes (measured with tracemalloc).
_ADDR_OVERHEAD = 192
# Least time between two full sweeps for expired peers when over a bound.
_SWEEP_INTERVAL = 60.0


@attrs.frozen(kw_only=True)
class PeerstoreLimits:
    """Bounds on what the peerstore holds. Derive variants with ``attrs.evolve``."""

    #: Most peers remembered.
    max_peers: int = 10_000
    #: Most addresses kept per peer (the most durable win).
    max_addrs_per_peer: int = 64
    #: Longest address kept (binary multiaddr bytes).
    max_addr_length: int = 256
    #: Most protocol IDs kept per peer.
    max_protocols_per_peer: int = 256
    #: Longest protocol ID kept (longer ones are dropped).
    max_protocol_length: int = 256
    #: Most metadata keys per peer.
    max_metadata_keys: int = 32
    #: Longest metadata value kept (longer ones are truncated).
    max_metadata_value: int = 1024
    #: Approximate bytes one peer's data may take; protocols are cut and records refused beyond.
    max_bytes_per_peer: int = 32 * 1024
    #: Approximate bytes all peers' data may take; least recently updated peers go first.
    max_total_bytes: int = 64 * 1024 * 1024
    #: How long an unpinned peer's data (protocols, keys, metadata, records) outlives its last
    #: update and its last unexpired address.
    forget_after: float = ADDR_TTL_RECENT


@attrs.frozen(kw_only=True)
class PeerstoreStatistics:
    """A snapshot of the peerstore's size."""

    peers: int
    pinned_peers: int
    approx_bytes: int
    evicted_peers: int
    expired_peers: int


@attrs.define
class _PeerData:
    addrs: dict[Multiaddr, float] = attrs.field(factory=dict)  # addr -> expiry time
    protocols: list[str] = attrs.field(factory=list)
    public_key: PublicKey | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    record: PeerRecord | None = None
    envelope: Envelope | None = None
    envelope_size: int = 0
    touched: float = 0.0
    size: int = 0

    def measure(self) -> int:
        size = _PEER_OVERHEAD + self.envelope_size
        size += sum(len(a.to_bytes()) + _ADDR_OVERHEAD for a in self.addrs)
        size += sum(len(p) + _ITEM_OVERHEAD for p in self.protocols)
        size += sum(len(k) + len(v) + _ITEM_OVERHEAD for k, v in self.metadata.items())
        if self.public_key is not None:
            size += len(self.public_key.to_bytes()) + _ITEM_OVERHEAD
        return size


class Peerstore:
    """The in-memory ``PeerStore``.

    A peer's record expires when it is not pinned, all its addresses have expired and it was
    last updated more than ``limits.forget_after`` ago. Past ``max_peers`` or
    ``max_total_bytes``, the least recently updated unpinned peer is forgotten.

    Args:
        limits: per-peer and total bounds.
        clock: monotonic seconds; injectable so that a simulation controls expiry.
        is_pinned: extra pin check (for example "has an open connection"), consulted with
            ``pin``/``unpin``.
    """

    def __init__(
        self,
        *,
        limits: PeerstoreLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        is_pinned: Callable[[PeerId], bool] | None = None,
    ) -> None:
        self.limits = limits or PeerstoreLimits()
        self.is_pinned_hook = is_pinned
        self._clock = clock
        self._peers: OrderedDict[PeerId, _PeerData] = OrderedDict()
        self._pins: dict[PeerId, set[str]] = {}
        self._total = 0
        self._evicted = 0
        self._expired = 0
        self._last_sweep = float("-inf")

    # -- bookkeeping ---------------------------------------------------------------------------

    def is_pinned(self, peer: PeerId) -> bool:
        """Whether ``peer`` is pinned (by ``pin`` or by the ``is_pinned`` hook)."""
        if peer in self._pins:
            return True
        return self.is_pinned_hook is not None and self.is_pinned_hook(peer)

    def pin(self, peer: PeerId, reason: str) -> None:
        """Never forget ``peer`` while any pin reason holds."""
        self._pins.setdefault(peer, set()).add(reason)

    def unpin(self, peer: PeerId, reason: str) -> None:
        """Drop one pin reason; the expiry clock of the peer's data starts now."""
        reasons = self._pins.get(peer)
        if reasons is None:
            return
        reasons.discard(reason)
        if not reasons:
            del self._pins[peer]
            data = self._peers.get(peer)
            if data is not None:
                data.touched = self._clock()

    def _expires_at(self, data: _PeerData) -> float:
        last_addr = max(data.addrs.values(), default=float("-inf"))
        return max(last_addr, data.touched + self.limits.forget_after)

    def _live(self, peer: PeerId) -> _PeerData | None:
        data = self._peers.get(peer)
        if data is None:
            return None
        if self._expires_at(data) <= self._clock() and not self.is_pinned(peer):
            self._drop(peer)
            self._expired += 1
            return None
        return data

    def _drop(self, peer: PeerId) -> None:
        data = self._peers.pop(peer)
        self._total -= data.size

    def _entry(self, peer: PeerId) -> _PeerData:
        data = self._live(peer)
        if data is None:
            data = self._peers[peer] = _PeerData()
        else:
            self._peers.move_to_end(peer)
        data.touched = self._clock()
        return data

    def _account(self, peer: PeerId, data: _PeerData) -> None:
        """Re-measure ``peer`` after a change and evict others if over the total bounds."""
        size = data.measure()
        self._total += size - data.size
        data.size = size
        limits = self.limits
        if len(self._peers) <= limits.max_peers and self._total <= limits.max_total_bytes:
            return
        now = self._clock()
        if now - self._last_sweep >= _SWEEP_INTERVAL:
            self._last_sweep = now
            self.expire()
        while len(self._peers) > limits.max_peers or self._total > limits.max_total_bytes:
            # Least recently updated first; pinned peers are skipped, never evicted.
            victim = next((p for p in self._peers if p != peer and not self.is_pinned(p)), None)
            if victim is None:
                return
            self._drop(victim)
            self._evicted += 1

    def expire(self) -> int:
        """Forget every expired unpinned peer now (reads do it lazily anyway).

        Returns:
            How many peers were forgotten.
        """
        before = self._expired
        for peer in list(self._peers):
            self._live(peer)
        return self._expired - before

    def remove_peer(self, peer: PeerId) -> None:
        """Forget everything about ``peer`` (even if pinned; the pin itself stays)."""
        if peer in self._peers:
            self._drop(peer)

    def statistics(self) -> PeerstoreStatistics:
        """A snapshot of counts and the approximate bytes held."""
        return PeerstoreStatistics(
            peers=len(self._peers),
            pinned_peers=sum(1 for p in self._peers if self.is_pinned(p)),
            approx_bytes=self._total,
            evicted_peers=self._evicted,
            expired_peers=self._expired,
        )

    def peers(self) -> list[PeerId]:
        """Every peer with a live record."""
        return [peer for peer in list(self._peers) if self._live(peer) is not None]

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers and self._live(peer) is not None  # type: ignore[arg-type]

    # -- addresses -----------------------------------------------------------------------------

    def add_addrs(self, peer: PeerId, addrs: Iterable[Multiaddr], ttl: float) -> None:
        """Add addresses (without ``/p2p/``), or extend their expiry to ``now + ttl``. Addresses
        longer than ``max_addr_length`` are ignored; past ``max_addrs_per_peer`` or the per-peer
        byte bound the most durable are kept (addresses come before protocols in that bound)."""
        data = self._entry(peer)
        expiry = self._clock() + ttl
        for addr in addrs:
            if len(addr.to_bytes()) <= self.limits.max_addr_length:
                data.addrs[addr] = max(expiry, data.addrs.get(addr, expiry))
        ranked = sorted(data.addrs.items(), key=lambda item: item[1], reverse=True)
        budget = self.limits.max_bytes_per_peer - _PEER_OVERHEAD
        data.addrs = {}
        for addr, exp in ranked[: self.limits.max_addrs_per_peer]:
            budget -= len(addr.to_bytes()) + _ADDR_OVERHEAD
            if budget < 0:
                break
            data.addrs[addr] = exp
        self._account(peer, data)

    def addrs(self, peer: PeerId) -> list[Multiaddr]:
        """The peer's unexpired addresses, most durable first."""
        data = self._live(peer)
        if data is None:
            return []
        now = self._clock()
        if any(exp <= now for exp in data.addrs.values()):
            data.addrs = {a: exp for a, exp in data.addrs.items() if exp > now}
            self._account(peer, data)
        return [a for a, _ in sorted(data.addrs.items(), key=lambda item: -item[1])]

    def clear_addrs(self, peer: PeerId) -> None:
        """Forget every address of ``peer``."""
        data = self._live(peer)
        if data is not None:
            data.addrs.clear()
            self._account(peer, data)

    # -- protocols, keys, metadata -------------------------------------------------------------

    def set_protocols(self, peer: PeerId, protocols: Iterable[str]) -> None:
        """Replace the peer's supported protocols. IDs longer than ``max_protocol_length`` are
        dropped; the list is cut at ``max_protocols_per_peer`` and at the per-peer byte bound."""
        data = self._entry(peer)
        data.protocols = []
        budget = self.limits.max_bytes_per_peer - data.measure()
        for proto in dict.fromkeys(protocols):
            if len(data.protocols) >= self.limits.max_protocols_per_peer:
                break
            if len(proto) > self.limits.max_protocol_length:
                continue
            budget -= len(proto) + _ITEM_OVERHEAD
            if budget < 0:
                break
            data.protocols.append(proto)
        self._account(peer, data)

    def protocols(self, peer: PeerId) -> list[str]:
        """The protocols the peer said it supports."""
        data = self._live(peer)
        return list(data.protocols) if data else []

    def supports(self, peer: PeerId, protocol: str) -> bool:
        """Whether the peer said it supports ``protocol``."""
        data = self._live(peer)
        return data is not None and protocol in data.protocols

    def set_public_key(self, peer: PeerId, key: PublicKey) -> None:
        """Remember the peer's public key.

        Raises:
            IdentityError: the key does not belong to ``peer``.
        """
        if not peer.matches(key):
            raise IdentityError(f"public key does not match peer {peer}")
        data = self._entry(peer)
        data.public_key = key
        self._account(peer, data)

    def public_key(self, peer: PeerId) -> PublicKey | None:
        """The peer's public key, if known (or embedded in its peer ID)."""
        data = self._live(peer)
        if data is not None and data.public_key is not None:
            return data.public_key
        return peer.extract_public_key()

    def set_metadata(self, peer: PeerId, key: str, value: str) -> None:
        """Store a short string (``agent_version``, ``protocol_version``); at most
        ``max_metadata_keys`` keys (of up to 64 characters) and ``max_metadata_value``
        characters per value are kept, and nothing past the per-peer byte bound."""
        data = self._entry(peer)
        meta = data.metadata
        if len(key) <= 64 and (key in meta or len(meta) < self.limits.max_metadata_keys):
            old = meta.get(key)
            meta[key] = value[: self.limits.max_metadata_value]
            if data.measure() > self.limits.max_bytes_per_peer:
                if old is None:
                    del meta[key]
                else:
                    meta[key] = old
        self._account(peer, data)

    def metadata(self, peer: PeerId, key: str) -> str | None:
        """A metadata string, or ``None``."""
        data = self._live(peer)
        return data.metadata.get(key) if data else None

    # -- signed peer records -------------------------------------------------------------------

    def consume_signed_record(self, record: Envelope | bytes, ttl: float = ADDR_TTL_RECENT) -> bool:
        """Store a signed peer record if its seq is higher than the one held, and add its
        addresses with ``ttl``.

        Args:
            record: the envelope, or its serialized bytes, as received.
            ttl: lifetime of the record's addresses.

        Returns:
            Whether the record was stored (``False``: not newer, or over the per-peer bound).

        Raises:
            IdentityError: bad signature, not a peer record, or signed by another key.
        """
        raw = record.to_bytes() if isinstance(record, Envelope) else bytes(record)
        peer_record, envelope = PeerRecord.from_envelope_bytes(raw)
        peer = peer_record.peer_id
        held = self._live(peer)
        if held is not None and held.record is not None and held.record.seq >= peer_record.seq:
            return False
        rest = held.measure() - held.envelope_size if held is not None else _PEER_OVERHEAD
        if rest + len(raw) > self.limits.max_bytes_per_peer:
            log.debug("peer record of %s too large to keep (%d bytes)", peer, len(raw))
            return False
        self._put_record(peer_record, envelope, len(raw))
        self.add_addrs(peer, peer_record.addrs, ttl)
        return True

    def _put_record(self, record: PeerRecord, envelope: Envelope, size: int) -> None:
        data = self._entry(record.peer_id)
        data.record, data.envelope, data.envelope_size = record, envelope, size
        data.public_key = envelope.public_key
        self._account(record.peer_id, data)

    add_signed_record = consume_signed_record

    def signed_record(self, peer: PeerId) -> Envelope | None:
        """The newest signed peer record of ``peer`` (to pass on), or ``None``."""
        data = self._live(peer)
        return data.envelope if data else None

    def peer_record(self, peer: PeerId) -> PeerRecord | None:
        """The decoded newest signed peer record of ``peer``, or ``None``."""
        data = self._live(peer)
        return data.record if data else None
