"""Topologies: "tell me when a connected peer that supports protocol P appears or goes away".

A topology follows the host's events: a peer joins it when ``PeerProtocolsChanged`` (sent once
identify learned the peer's protocols) lists the protocol while the peer is connected, and
leaves it when its last connection closes (``PeerDisconnected``) or it stops listing the
protocol. This is what routing tables (kad) and meshes (gossipsub) keep themselves up to date
with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from p2pstack.events import EventBus, PeerDisconnected, PeerProtocolsChanged

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = ["PeerCallback", "Topology"]

#: A topology callback: called synchronously with the peer; it must not block.
PeerCallback = Callable[["PeerId"], object]


class Topology:
    """A registered topology (``host.register_topology``); ``close()`` unregisters it.

    Attributes:
        protocol: the protocol ID followed.
    """

    def __init__(
        self,
        bus: EventBus,
        protocol: str,
        *,
        on_connect: PeerCallback | None,
        on_disconnect: PeerCallback | None,
    ) -> None:
        self.protocol = protocol
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._peers: set[PeerId] = set()
        self._handles = [
            bus.on(PeerProtocolsChanged, self._protocols_changed),
            bus.on(PeerDisconnected, self._disconnected),
        ]
        self._closed = False

    @property
    def peers(self) -> frozenset[PeerId]:
        """The connected peers known to support the protocol."""
        return frozenset(self._peers)

    def _seed(self, known: Iterable[tuple[PeerId, Iterable[str]]]) -> None:
        """Report the peers already connected and known to support the protocol."""
        for peer, protocols in known:
            if self.protocol in protocols:
                self._join(peer)

    def _join(self, peer: PeerId) -> None:
        if peer not in self._peers and not self._closed:
            self._peers.add(peer)
            if self._on_connect is not None:
                self._on_connect(peer)

    def _leave(self, peer: PeerId) -> None:
        if peer in self._peers:
            self._peers.discard(peer)
            if self._on_disconnect is not None:
                self._on_disconnect(peer)

    def _protocols_changed(self, event: PeerProtocolsChanged) -> None:
        if self.protocol in event.protocols:
            self._join(event.peer_id)
        else:
            self._leave(event.peer_id)

    def _disconnected(self, event: PeerDisconnected) -> None:
        self._leave(event.peer_id)

    def close(self) -> None:
        """Stop following; no callback is called afterwards. Idempotent."""
        self._closed = True
        self._peers.clear()
        for handle in self._handles:
            handle.close()
