"""The AutoNAT client's schedule (shared by v1 and v2): ask a few connected servers, feed the
answers to a ``ReachabilityTracker``, publish the decision on ``host.addresses``, and ask again
later (sooner while the answer is still ``unknown``, and when a new server connects then).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.events import LocalAddrsChanged, ObservedAddrsChanged, Unsubscribe
from protocols.autonat._dialer import DIAL_ERRORS
from protocols.autonat._policy import ReachabilityTracker

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId

__all__ = ["ClientSchedule", "recheck_on_address_changes", "run_probes"]

_log = logging.getLogger("protocols.autonat")


@attrs.frozen(kw_only=True)
class ClientSchedule:
    """When and whom the client asks.

    Attributes:
        boot_delay: seconds after start before the first round.
        retry_interval: seconds between rounds while the reachability is ``unknown``.
        refresh_interval: seconds between rounds once decided (go-libp2p: 15 min).
        servers_per_round: servers asked per round (concurrently).
        timeout: seconds for one request, dial back included.
        confidence: agreeing servers needed for a decision.
    """

    boot_delay: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    retry_interval: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    refresh_interval: float = attrs.field(default=15 * 60.0, validator=attrs.validators.gt(0))
    servers_per_round: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    confidence: int = attrs.field(default=3, validator=attrs.validators.ge(1))


#: ``probe(peer) -> True`` (it reached us), ``False`` (it could not) or ``None`` (no vote).
Probe = Callable[["PeerId"], Awaitable[bool | None]]


async def run_probes(
    host: Host,
    protocol_id: str,
    probe: Probe,
    schedule: ClientSchedule,
    *,
    source: str,
    new_wake: Callable[[], anyio.Event],
    rng: random.Random,
) -> None:
    """Probe rounds until cancelled (a host service task).

    Args:
        host: the host whose reachability is decided.
        protocol_id: servers are connected peers announcing this protocol.
        probe: asks one server.
        schedule: timing and fan-out.
        source: the ``ReachabilityChanged.source`` of the decisions.
        new_wake: called at the start of each round; setting the event it returns cuts the
            wait after that round short (the service sets it when a new server connects).
        rng: picks the servers of a round.
    """
    tracker = ReachabilityTracker(confidence=schedule.confidence)
    await anyio.sleep(schedule.boot_delay)
    while True:
        wake = new_wake()
        host.addresses.expire()
        servers = [
            peer
            for peer in {c.remote_peer for c in host.connections() if not c.limited}
            if protocol_id in host.peerstore.protocols(peer)
        ]
        rng.shuffle(servers)
        results: list[tuple[PeerId, bool | None]] = []
        async with anyio.create_task_group() as tg:
            for peer in servers[: schedule.servers_per_round]:
                tg.start_soon(_ask, probe, peer, schedule.timeout, results, source)
        decided = tracker.state
        for peer, reachable in results:
            tracker.record(peer, reachable, anyio.current_time())
        if tracker.state != decided:
            # Only our own changes are published: with v1 and v2 both running, neither
            # overrides the other's decision every round.
            host.addresses.set_reachability(tracker.state, source=source)
        interval = (
            schedule.refresh_interval if tracker.state != "unknown" else schedule.retry_interval
        )
        with anyio.move_on_after(interval):
            await wake.wait()


async def _ask(
    probe: Probe,
    peer: PeerId,
    timeout: float,
    results: list[tuple[PeerId, bool | None]],
    source: str,
) -> None:
    try:
        with anyio.fail_after(timeout):
            results.append((peer, await probe(peer)))
    except DIAL_ERRORS as exc:
        _log.debug("%s probe via %s failed: %r", source, peer, exc)


def recheck_on_address_changes(host: Host, wake: Callable[[], None]) -> list[Unsubscribe]:
    """Call ``wake()`` when our addresses change ("Nodes are encouraged to periodically re-check
    their status, especially after changing their set of addresses they're listening on").

    Returns:
        The callbacks' handles, to close when the service stops.
    """
    return [
        host.events.on(LocalAddrsChanged, lambda _event: wake()),
        host.events.on(ObservedAddrsChanged, lambda _event: wake()),
    ]
