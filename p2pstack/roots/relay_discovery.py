"""Relay candidates from the Kademlia DHT (a composition root: protocols.relay and
protocols.kad do not import each other). ``dht_relay_candidates`` is an auto-relay
``RelayCandidates`` source: a lookup of a random key through the host's ``Kad`` service, the
peers it met (those the peerstore knows to serve the relay hop protocol first). docs/nat.md,
"Auto-relay"."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator

from p2pstack.errors import NETWORK_ERRORS, ServiceNotFound
from p2pstack.host import Host
from p2pstack.identity import PeerId
from protocols.kad import Kad
from protocols.relay import HOP_PROTOCOL_ID

__all__ = ["DHT_RELAY_CANDIDATES", "dht_relay_candidates"]

log = logging.getLogger("p2pstack.roots")

#: The most peers one lookup offers auto-relay.
DHT_RELAY_CANDIDATES = 16


async def dht_relay_candidates(
    host: Host, *, limit: int = DHT_RELAY_CANDIDATES
) -> AsyncIterator[PeerId]:
    """Relay candidates for auto-relay (``AutoRelay(..., candidates=dht_relay_candidates)``).

    Looks up a random 32-byte key through ``host.service(Kad)`` (the lookup puts the addresses
    of the peers it meets into the peerstore, so auto-relay can dial them by peer ID) and
    yields the peers that answered: those the peerstore knows to serve
    ``/libp2p/circuit/relay/0.2.0/hop`` first, then the others, at most ``limit``. Yields
    nothing if the host runs no DHT, or the lookup found no one to ask or failed (logged).

    Args:
        host: the node auto-relay runs on.
        limit: the most peers yielded.
    """
    try:
        kad = host.service(Kad)
    except ServiceNotFound:
        return
    try:
        result = await kad.get_closest_peers(secrets.token_bytes(32))
    except NETWORK_ERRORS as exc:  # NotFound: an empty routing table
        log.info("relay candidates: DHT lookup failed: %s", exc)
        return
    peers = [p.peer_id for p in result.closest if p.peer_id != host.peer_id]
    hop = [p for p in peers if host.peerstore.supports(p, HOP_PROTOCOL_ID)]
    others = [p for p in peers if p not in hop]
    for peer in [*hop, *others][:limit]:
        yield peer
