"""AutoNAT decisions without I/O: the server's limits and rate limiter, which requested
addresses a server may dial (v1: only the requester's observed IP; v2: dial data first for
another IP; never private or loopback addresses unless configured), and the client's
reachability tracker (a decision needs ``confidence`` agreeing servers, as go and js do).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence

import attrs
from multiaddr import Multiaddr

from p2pstack.addresses import Reachability, ip_of, is_public_addr, transport_key
from p2pstack.multiaddrs import split_peer_id

__all__ = [
    "RateLimiter",
    "ReachabilityTracker",
    "ServerLimits",
    "dialable",
    "select_v1_addrs",
    "select_v2_addr",
]


_positive = attrs.validators.gt(0)


def _dial_data(_inst: object, _attr: object, value: int) -> None:
    if not 30_000 <= value <= 100_000:
        raise ValueError("dial_data_bytes must be 30000-100000 (the v2 spec's range)")


@attrs.frozen(kw_only=True)
class ServerLimits:
    """What an AutoNAT server accepts. Defaults follow go-libp2p (v1: 30 dial backs a minute,
    3 per peer; v2: 60 and 12, 12 with dial data).

    Attributes:
        allow_private: dial private and loopback addresses too (tests, private networks).
        window: seconds over which the rates below are counted.
        global_rate: requests served per window, every peer together.
        per_peer_rate: requests served per window from one peer.
        dial_data_rate: v2 requests per window that needed dial data.
        max_concurrent: dial backs in progress at once.
        max_addrs: v1 addresses dialed per request (the first ones that qualify).
        dial_data_bytes: bytes of dial data a v2 client must send (30k-100k by the spec).
        dial_timeout: seconds for one dial back (connect, and for v2 the nonce exchange).
        max_peers: peers whose rate is tracked (the oldest are forgotten first).
    """

    allow_private: bool = False
    window: float = attrs.field(default=60.0, validator=attrs.validators.gt(0.0))
    global_rate: int = attrs.field(default=30, validator=_positive)
    per_peer_rate: int = attrs.field(default=3, validator=_positive)
    dial_data_rate: int = attrs.field(default=12, validator=_positive)
    max_concurrent: int = attrs.field(default=8, validator=_positive)
    max_addrs: int = attrs.field(default=4, validator=_positive)
    dial_data_bytes: int = attrs.field(default=30_000, validator=_dial_data)
    dial_timeout: float = attrs.field(default=15.0, validator=attrs.validators.gt(0.0))
    max_peers: int = attrs.field(default=1024, validator=_positive)


class RateLimiter:
    """Sliding-window counts, globally and per key; bounded (at most ``max_keys`` keys, each
    holding at most ``per_key`` timestamps).

    Args:
        window: seconds a request counts.
        total: requests allowed per window overall.
        per_key: requests allowed per window per key.
        max_keys: keys tracked.
    """

    def __init__(self, *, window: float, total: int, per_key: int, max_keys: int) -> None:
        self._window = window
        self._total = total
        self._per_key = per_key
        self._max_keys = max_keys
        self._all: deque[float] = deque()
        self._keys: dict[Hashable, deque[float]] = {}

    def allow(self, key: Hashable, now: float) -> bool:
        """Count a request from ``key`` at ``now`` if both limits allow it.

        Returns:
            Whether the request may be served.
        """
        horizon = now - self._window
        while self._all and self._all[0] <= horizon:
            self._all.popleft()
        times = self._keys.pop(key, deque())
        while times and times[0] <= horizon:
            times.popleft()
        if times:
            self._keys[key] = times
        if len(self._all) >= self._total or len(times) >= self._per_key:
            return False
        self._all.append(now)
        times.append(now)
        self._keys[key] = times
        while len(self._keys) > self._max_keys:
            del self._keys[next(iter(self._keys))]
        return True


def dialable(addr: Multiaddr, *, allow_private: bool) -> bool:
    """Whether a server may dial ``addr`` learned from a remote peer: an IP address with a
    TCP or UDP port, not relayed, and public unless ``allow_private``."""
    text = str(addr)
    if transport_key(addr) is None or "/p2p-circuit" in text:
        return False
    ip = ip_of(addr)
    if ip is None or ip.is_unspecified or ip.is_multicast:
        return False
    return allow_private or is_public_addr(addr)


def select_v1_addrs(
    addrs: Sequence[Multiaddr], observed: Multiaddr, *, allow_private: bool, max_addrs: int
) -> list[Multiaddr]:
    """The addresses a v1 server dials: dialable ones on the requester's observed IP ("MUST
    NOT dial any multiaddress unless it is based on the IP address the requesting node is
    observed as"), at most ``max_addrs``."""
    seen_ip = ip_of(observed)
    if seen_ip is None:
        return []
    bare = (_bare(a) for a in addrs)
    chosen = [a for a in bare if ip_of(a) == seen_ip and dialable(a, allow_private=allow_private)]
    return list(dict.fromkeys(chosen))[:max_addrs]


def select_v2_addr(
    addrs: Sequence[Multiaddr | None], observed: Multiaddr, *, allow_private: bool
) -> tuple[int, Multiaddr, bool] | None:
    """The address a v2 server dials: the first dialable one ("the server SHOULD use the first
    address it is willing to dial").

    Returns:
        ``(index, address, needs dial data)`` (data is needed when its IP is not the
        requester's observed IP), or ``None`` if none qualifies.
    """
    seen_ip = ip_of(observed)
    for index, sent in enumerate(addrs):
        if sent is None:
            continue
        addr = _bare(sent)
        if dialable(addr, allow_private=allow_private):
            return index, addr, ip_of(addr) != seen_ip
    return None


def _bare(addr: Multiaddr) -> Multiaddr:
    # A /p2p/ part is dropped: the dial back always authenticates the requester itself, so a
    # request cannot make us vouch for another peer that shares its IP.
    transport, _peer = split_peer_id(addr)
    return transport if transport is not None else addr


class ReachabilityTracker:
    """Turns AutoNAT answers into a reachability decision.

    The latest answer of each server counts (at most ``max_servers`` servers, answers older
    than ``max_age`` seconds are forgotten). ``public`` once at least ``confidence`` servers
    reached us and more reached us than failed to; ``private`` the other way round; until
    then, and when answers are refused, the current state stays (``unknown`` at first).

    Args:
        confidence: agreeing servers needed for a decision (the spec: "more than 3").
        max_servers: servers whose answers are kept.
        max_age: seconds an answer counts.
    """

    def __init__(
        self, *, confidence: int = 3, max_servers: int = 32, max_age: float = 3600.0
    ) -> None:
        if confidence < 1:
            raise ValueError("confidence must be at least 1")
        self.confidence = confidence
        self.state: Reachability = "unknown"
        self._max_servers = max_servers
        self._max_age = max_age
        self._answers: dict[Hashable, tuple[bool, float]] = {}

    def record(self, server: Hashable, reachable: bool | None, now: float) -> Reachability:
        """Count one server's answer (``None``: it refused or failed, no vote).

        Returns:
            The state after this answer.
        """
        if reachable is not None:
            self._answers.pop(server, None)
            self._answers[server] = (reachable, now)
            while len(self._answers) > self._max_servers:
                del self._answers[next(iter(self._answers))]
        horizon = now - self._max_age
        self._answers = {k: v for k, v in self._answers.items() if v[1] >= horizon}
        yes = sum(1 for ok, _ in self._answers.values() if ok)
        no = len(self._answers) - yes
        if yes >= self.confidence and yes > no:
            self.state = "public"
        elif no >= self.confidence and no > yes:
            self.state = "private"
        return self.state
