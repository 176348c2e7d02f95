"""Peer exchange for the ``Pubsub`` service
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#prune-backoff-and-peer-exchange):
connect to peers offered in a PRUNE, and give the router our peers' signed records to offer.

An offered peer's signed record is used only when signed by that peer (``px_record``); its
addresses go to the peerstore and the peer is dialed in a task (a pubsub stream follows through
the topology once identify lists the protocol). At most ``max_dials`` dials run at once; more
offers wait for the next PRUNE (go caps its PX connector the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import NETWORK_ERRORS, IdentityError
from protocols.pubsub._routing import px_record
from protocols.pubsub._types import PeerInfo, ValidationError

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId

__all__ = ["PxConnector"]

_log = logging.getLogger(__name__)

_DIAL_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)


class PxConnector:
    """Dials peers offered by peer exchange (see the module docstring).

    Args:
        host: our host.
        max_dials: dials running at once.
        timeout: seconds one dial may take.

    Attributes:
        dials: PX dials started.
        bad_records: offered records that were malformed, badly signed or for another peer.
    """

    def __init__(self, host: Host, *, max_dials: int = 16, timeout: float = 10.0) -> None:
        self._host = host
        self._max_dials = max_dials
        self._timeout = timeout
        self._running = 0
        self.dials = 0
        self.bad_records = 0

    def signed_record(self, peer: PeerId) -> bytes | None:
        """``peer``'s signed peer record as we hold it (to offer it in a PRUNE)."""
        envelope = self._host.peerstore.signed_record(peer)
        return None if envelope is None else envelope.to_bytes()

    def offer(self, offered: Iterable[PeerInfo]) -> None:
        """Take peers offered in PRUNEs: store their verified records and dial them. Never
        blocks."""
        host = self._host
        for info in offered:
            peer = info.peer_id
            if peer == host.peer_id or host.connections(peer) or self._running >= self._max_dials:
                continue
            try:
                if px_record(info) is not None and info.signed_peer_record is not None:
                    host.peerstore.consume_signed_record(info.signed_peer_record)
            except (ValidationError, IdentityError) as exc:
                self.bad_records += 1
                _log.debug("bad peer exchange record for %s: %s", peer, exc)
                continue
            self._running += 1
            self.dials += 1
            host.start_soon(self._dial, peer, name="pubsub px dial")

    async def _dial(self, peer: PeerId) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await self._host.dial_peer(peer)
        except _DIAL_ERRORS as exc:
            _log.debug("peer exchange dial to %s failed: %r", peer, exc)
        finally:
            self._running -= 1
