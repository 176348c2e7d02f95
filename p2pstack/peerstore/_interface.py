"""The peerstore interface: what services and the host may ask of any peerstore, and the
address TTLs they pass it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import Envelope, PeerId, PeerRecord, PublicKey

__all__ = [
    "ADDR_TTL_CONNECTED",
    "ADDR_TTL_PERMANENT",
    "ADDR_TTL_RECENT",
    "PeerStore",
    "forget_if_anonymous",
]

#: TTL for addresses a peer told us about while connected (go-libp2p uses 30 minutes).
ADDR_TTL_RECENT = 30 * 60.0
#: TTL for addresses of peers we are connected to; extended while the connection lives.
ADDR_TTL_CONNECTED = 2 * 60 * 60.0
#: Addresses added by the user (bootstrap lists): never expire.
ADDR_TTL_PERMANENT = float("inf")


class PeerStore(Protocol):
    """What the host knows about other peers. No method blocks; none does I/O on the network.

    Implementations bound what a remote peer can make them store (per peer and in total), let
    it expire once the peer is gone, and never forget a pinned (connected or protected) peer.
    """

    def peers(self) -> list[PeerId]:
        """Every peer with a live record."""
        ...

    def __contains__(self, peer: object) -> bool: ...

    def add_addrs(self, peer: PeerId, addrs: Iterable[Multiaddr], ttl: float) -> None:
        """Add addresses (without ``/p2p/``), or extend their expiry to ``now + ttl``."""
        ...

    def addrs(self, peer: PeerId) -> list[Multiaddr]:
        """The peer's unexpired addresses, most durable first."""
        ...

    def clear_addrs(self, peer: PeerId) -> None:
        """Forget every address of ``peer``."""
        ...

    def set_protocols(self, peer: PeerId, protocols: Iterable[str]) -> None:
        """Replace the peer's supported protocols (within the store's bounds)."""
        ...

    def protocols(self, peer: PeerId) -> list[str]:
        """The protocols the peer said it supports."""
        ...

    def supports(self, peer: PeerId, protocol: str) -> bool:
        """Whether the peer said it supports ``protocol``."""
        ...

    def set_public_key(self, peer: PeerId, key: PublicKey) -> None:
        """Remember the peer's key. Raises ``IdentityError`` if it is not ``peer``'s."""
        ...

    def public_key(self, peer: PeerId) -> PublicKey | None:
        """The peer's public key, if known (or embedded in its peer ID)."""
        ...

    def set_metadata(self, peer: PeerId, key: str, value: str) -> None:
        """Store a short string (within the store's bounds)."""
        ...

    def metadata(self, peer: PeerId, key: str) -> str | None:
        """A metadata string, or ``None``."""
        ...

    def consume_signed_record(self, record: Envelope | bytes, ttl: float = ...) -> bool:
        """Store a signed peer record if it is newer than the one held; add its addresses.

        Returns whether it was stored. Raises ``IdentityError`` if it is invalid.
        """
        ...

    def signed_record(self, peer: PeerId) -> Envelope | None:
        """The newest signed peer record of ``peer`` (to pass on), or ``None``."""
        ...

    def peer_record(self, peer: PeerId) -> PeerRecord | None:
        """The decoded newest signed peer record of ``peer``, or ``None``."""
        ...

    def pin(self, peer: PeerId, reason: str) -> None:
        """Never forget ``peer`` while any reason (``"connected"``, ``"protected"``) holds."""
        ...

    def is_pinned(self, peer: PeerId) -> bool:
        """Whether ``peer`` is pinned."""
        ...

    def unpin(self, peer: PeerId, reason: str) -> None:
        """Drop one pin reason; once none is left, the peer's data may expire."""
        ...

    def remove_peer(self, peer: PeerId) -> None:
        """Forget everything about ``peer`` (even if pinned)."""
        ...


def forget_if_anonymous(store: PeerStore, peer: PeerId) -> bool:
    """Forget ``peer`` if all ``store`` knows of it is what its handshake told (its key).

    A peer that connected, never identified (no protocols, no signed record) and left no
    address to reach it back costs nothing once it is gone: its key comes again with its next
    handshake. Without this, every throw-away identity that completes a handshake leaves a
    peerstore entry of a few long-lived objects until ``forget_after`` expires it, scattered
    among the freed buffers of its connection (see docs/reliability.md).

    Args:
        store: the peerstore.
        peer: a peer whose last connection just closed.

    Returns:
        Whether the peer was forgotten (never when it is still pinned, for example protected).
    """
    if peer not in store or store.is_pinned(peer):
        return False
    if store.protocols(peer) or store.addrs(peer) or store.signed_record(peer) is not None:
        return False
    store.remove_peer(peer)
    return True
