"""Events the ``Kad`` service publishes on ``host.events``, and its statistics snapshot."""

from __future__ import annotations

import attrs

from p2pstack.identity import PeerId

__all__ = [
    "Counters",
    "KadEvent",
    "KadModeChanged",
    "KadPeerAdded",
    "KadPeerRemoved",
    "KadStatistics",
    "snapshot",
]


@attrs.frozen
class KadPeerAdded:
    """A DHT server entered our routing table."""

    peer_id: PeerId


@attrs.frozen
class KadPeerRemoved:
    """A peer left our routing table (failed a liveness check, or stopped serving the DHT)."""

    peer_id: PeerId


@attrs.frozen
class KadModeChanged:
    """The service switched between answering queries (``server``) and not (``client``)."""

    mode: str


#: Every event of the DHT service, for exhaustive ``match``.
KadEvent = KadPeerAdded | KadPeerRemoved | KadModeChanged


@attrs.frozen(kw_only=True)
class KadStatistics:
    """A snapshot of the service's counters (``Kad.statistics()``).

    Attributes:
        mode: ``server`` or ``client`` (what ``auto`` resolved to).
        routing_table_size: peers in the routing table.
        records: records held by the local store.
        provider_keys: keys with provider records in the local store.
        inbound_streams: inbound DHT streams open now.
        inbound_requests: requests answered.
        inbound_rejected: inbound streams reset at a concurrency limit.
        inbound_bad: inbound messages that were malformed, oversized or failed validation
            (their stream was reset).
        inbound_timeouts: inbound streams closed after ``idle_timeout`` without a request.
        outbound_requests: requests sent.
        outbound_failures: requests that failed (dial, refusal, bad answer).
        outbound_timeouts: requests that got no answer in time.
        bad_values: records in answers that failed validation (ignored).
        lookups: lookups finished.
        lookups_timed_out: lookups that hit their deadline.
        liveness_checks: pings of least-recently-seen peers.
        liveness_failures: those pings that failed (the peer was evicted).
    """

    mode: str
    routing_table_size: int
    records: int
    provider_keys: int
    inbound_streams: int
    inbound_requests: int
    inbound_rejected: int
    inbound_bad: int
    inbound_timeouts: int
    outbound_requests: int
    outbound_failures: int
    outbound_timeouts: int
    bad_values: int
    lookups: int
    lookups_timed_out: int
    liveness_checks: int
    liveness_failures: int


@attrs.define
class Counters:
    """The service's running counters (mutable; ``KadStatistics`` is their snapshot)."""

    inbound_requests: int = 0
    inbound_rejected: int = 0
    inbound_bad: int = 0
    inbound_timeouts: int = 0
    outbound_requests: int = 0
    outbound_failures: int = 0
    outbound_timeouts: int = 0
    bad_values: int = 0
    lookups: int = 0
    lookups_timed_out: int = 0
    liveness_checks: int = 0
    liveness_failures: int = 0


def snapshot(
    counters: Counters,
    *,
    mode: str,
    routing_table_size: int,
    records: int,
    provider_keys: int,
    inbound_streams: int,
) -> KadStatistics:
    """Freeze ``counters`` and the given sizes into a ``KadStatistics``."""
    return KadStatistics(
        mode=mode,
        routing_table_size=routing_table_size,
        records=records,
        provider_keys=provider_keys,
        inbound_streams=inbound_streams,
        **attrs.asdict(counters),
    )
