"""What the AutoNAT v1 and v2 services share: their settings, the server's rate limits and
dialer, and the client's probing (connected servers followed through a topology, re-checks when
our addresses change, the probe schedule of ``_schedule``)."""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import LocalProtocolError
from protocols.autonat._dialer import DialerFactory
from protocols.autonat._policy import RateLimiter, ServerLimits, dialable
from protocols.autonat._schedule import ClientSchedule, recheck_on_address_changes, run_probes

if TYPE_CHECKING:
    from p2pstack.events import Unsubscribe
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from p2pstack.topology import Topology

__all__ = ["AutoNATConfig", "ProbingService", "local_test_addrs"]


@attrs.frozen(kw_only=True)
class AutoNATConfig:
    """AutoNAT settings (v1 and v2 share them).

    Attributes:
        client: ask servers and decide our reachability.
        server: answer requests (needs a dialer factory).
        allow_private: the client also asks about private and loopback addresses (a server's
            own policy is ``limits.allow_private``).
        limits: the server's limits and private-address policy.
        schedule: the client's timing and confidence.
        request_timeout: seconds a server gives one request stream to arrive and be answered.
    """

    client: bool = True
    server: bool = True
    allow_private: bool = False
    limits: ServerLimits = attrs.field(factory=ServerLimits)
    schedule: ClientSchedule = attrs.field(factory=ClientSchedule)
    request_timeout: float = 30.0


def local_test_addrs(host: Host, *, allow_private: bool) -> list[Multiaddr]:
    """Our addresses worth testing: the advertised ones and the observed ones (confirmed or
    not), that a server may dial (``dialable``)."""
    candidates = [*host.addresses.advertised(), *host.addresses.observed(include_unconfirmed=True)]
    return [a for a in dict.fromkeys(candidates) if dialable(a, allow_private=allow_private)]


class ProbingService:
    """The part of an AutoNAT service that is the same in v1 and v2.

    Subclasses name themselves (``service_name``, in errors) and implement ``_probe_vote``:
    ask one server, answer ``True`` (reachable), ``False`` (not) or ``None`` (no verdict).
    """

    service_name: ClassVar[str] = "AutoNAT"

    def __init__(
        self,
        config: AutoNATConfig | None = None,
        *,
        dialer: DialerFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or AutoNATConfig()
        limits = self.config.limits
        self._dialer = dialer
        self._rng = rng or random.Random()
        self._limiter = RateLimiter(
            window=limits.window,
            total=limits.global_rate,
            per_key=limits.per_peer_rate,
            max_keys=limits.max_peers,
        )
        self._busy = anyio.CapacityLimiter(limits.max_concurrent)
        self._host: Host | None = None
        self._topology: Topology | None = None
        self._wake = anyio.Event()
        self._handles: list[Unsubscribe] = []

    def _start_client(self, host: Host, protocol_id: str, *, source: str, task: str) -> None:
        """Follow the servers that speak ``protocol_id`` and start the probe task."""
        self._topology = host.register_topology(protocol_id, on_connect=self._new_server)
        self._handles = recheck_on_address_changes(host, self._recheck)
        probes = functools.partial(
            run_probes, source=source, new_wake=self._new_wake, rng=self._rng
        )
        host.start_soon(
            probes, host, protocol_id, self._probe_vote, self.config.schedule, name=task
        )

    async def _probe_vote(self, peer: PeerId) -> bool | None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop following servers; the host cancels the probe task."""
        if self._topology is not None:
            self._topology.close()
            self._topology = None
        for handle in self._handles:
            handle.close()
        self._handles = []

    def _require_host(self) -> Host:
        if self._host is None:
            raise LocalProtocolError(f"the {self.service_name} service has not been started")
        return self._host

    def _new_wake(self) -> anyio.Event:
        self._wake = anyio.Event()
        return self._wake

    def _recheck(self) -> None:
        # The current round's event (``_new_wake`` replaces it every round).
        self._wake.set()

    def _new_server(self, _peer: PeerId) -> None:
        if self._require_host().addresses.reachability == "unknown":
            self._wake.set()
