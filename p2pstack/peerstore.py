"""The peerstore: what the host knows about other peers (addresses with TTLs, public keys,
protocols, agent strings). In-memory and bounded; the clock is injectable for simulation."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from p2pstack.errors import IdentityError

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId, PublicKey

__all__ = ["ADDR_TTL_CONNECTED", "ADDR_TTL_PERMANENT", "ADDR_TTL_RECENT", "Peerstore"]

#: TTL for addresses a peer told us about while connected (go-libp2p uses 30 minutes).
ADDR_TTL_RECENT = 30 * 60.0
#: TTL for addresses of peers we are connected to; extended while the connection lives.
ADDR_TTL_CONNECTED = 2 * 60 * 60.0
#: Addresses added by the user (bootstrap lists): never expire.
ADDR_TTL_PERMANENT = float("inf")


@attrs.define
class _PeerData:
    addrs: dict[Multiaddr, float] = attrs.field(factory=dict)  # addr -> expiry time
    protocols: list[str] = attrs.field(factory=list)
    public_key: PublicKey | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)


class Peerstore:
    """Per-peer records, bounded in peers and in addresses, protocols and metadata per peer.

    When ``max_peers`` is exceeded the least recently updated peer is forgotten. Expired
    addresses are dropped when read.

    Args:
        max_peers: most peers remembered.
        max_addrs_per_peer: most addresses kept per peer (the newest win).
        max_protocols_per_peer: most protocol IDs kept per peer.
        clock: monotonic seconds; injectable so that a simulation controls expiry.
    """

    def __init__(
        self,
        *,
        max_peers: int = 10_000,
        max_addrs_per_peer: int = 64,
        max_protocols_per_peer: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._peers: OrderedDict[PeerId, _PeerData] = OrderedDict()
        self._max_peers = max_peers
        self._max_addrs = max_addrs_per_peer
        self._max_protocols = max_protocols_per_peer
        self._clock = clock

    def _entry(self, peer: PeerId) -> _PeerData:
        data = self._peers.get(peer)
        if data is None:
            data = self._peers[peer] = _PeerData()
            while len(self._peers) > self._max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
        return data

    def peers(self) -> list[PeerId]:
        """Every peer with a record."""
        return list(self._peers)

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers

    def add_addrs(self, peer: PeerId, addrs: Iterable[Multiaddr], ttl: float) -> None:
        """Add addresses (without ``/p2p/``), or extend their expiry to ``now + ttl``."""
        data = self._entry(peer)
        expiry = self._clock() + ttl
        for addr in addrs:
            data.addrs[addr] = max(expiry, data.addrs.get(addr, expiry))
        if len(data.addrs) > self._max_addrs:
            newest = sorted(data.addrs.items(), key=lambda item: item[1], reverse=True)
            data.addrs = dict(newest[: self._max_addrs])

    def addrs(self, peer: PeerId) -> list[Multiaddr]:
        """The peer's unexpired addresses, most durable first."""
        data = self._peers.get(peer)
        if data is None:
            return []
        now = self._clock()
        data.addrs = {a: exp for a, exp in data.addrs.items() if exp > now}
        return [a for a, _ in sorted(data.addrs.items(), key=lambda item: -item[1])]

    def clear_addrs(self, peer: PeerId) -> None:
        """Forget every address of ``peer``."""
        if peer in self._peers:
            self._peers[peer].addrs.clear()

    def set_protocols(self, peer: PeerId, protocols: Iterable[str]) -> None:
        """Replace the peer's supported protocols (as told by identify)."""
        self._entry(peer).protocols = list(dict.fromkeys(protocols))[: self._max_protocols]

    def protocols(self, peer: PeerId) -> list[str]:
        """The protocols the peer said it supports."""
        data = self._peers.get(peer)
        return list(data.protocols) if data else []

    def supports(self, peer: PeerId, protocol: str) -> bool:
        """Whether the peer said it supports ``protocol``."""
        data = self._peers.get(peer)
        return data is not None and protocol in data.protocols

    def set_public_key(self, peer: PeerId, key: PublicKey) -> None:
        """Remember the peer's public key.

        Raises:
            IdentityError: the key does not belong to ``peer``.
        """
        if not peer.matches(key):
            raise IdentityError(f"public key does not match peer {peer}")
        self._entry(peer).public_key = key

    def public_key(self, peer: PeerId) -> PublicKey | None:
        """The peer's public key, if known (or embedded in its peer ID)."""
        data = self._peers.get(peer)
        if data is not None and data.public_key is not None:
            return data.public_key
        return peer.extract_public_key()

    def set_metadata(self, peer: PeerId, key: str, value: str) -> None:
        """Store a short string (``agent_version``, ``protocol_version``); at most 32 keys and
        1 KiB per value are kept."""
        meta = self._entry(peer).metadata
        if key in meta or len(meta) < 32:
            meta[key] = value[:1024]

    def metadata(self, peer: PeerId, key: str) -> str | None:
        """A metadata string, or ``None``."""
        data = self._peers.get(peer)
        return data.metadata.get(key) if data else None
