"""Sans-IO NAT and firewall boxes of the simulated network, after the behaviours of RFC 4787
(UDP) and RFC 5382 (TCP): mapping (endpoint-independent, address-dependent,
address-and-port-dependent), filtering (the same three), mapping timeouts, port allocation
(preserving, sequential, random), no hairpinning, and firewall-only boxes that translate
nothing and admit inbound packets of known flows only.

Time is passed in; the box never reads a clock (docs/simulation.md, "NAT boxes").
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from transports.simnet._addresses import Endpoint, IPAddress, Proto

__all__ = ["BEHAVIOURS", "PORT_ALLOCATIONS", "NatBox", "NatMapping", "NatSpec"]

#: Mapping and filtering behaviours, from the most to the least permissive.
BEHAVIOURS = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
#: How a translating box picks an external port (RFC 4787 section 4.2.1): keep the internal
#: port when free (else sequential), the next free port in order, or a random free port.
PORT_ALLOCATIONS = ("preserve", "sequential", "random")
#: External ports a translating box allocates when it cannot preserve the internal port.
_PORT_FIRST, _PORT_LAST = 1024, 65535


@attrs.frozen(kw_only=True)
class NatSpec:
    """How one box behaves.

    Attributes:
        mapping: when an internal endpoint keeps its external endpoint: for every destination
            (``endpoint-independent``), per destination address (``address-dependent``) or per
            destination address and port (``address-and-port-dependent``, "symmetric").
        filtering: which inbound packets a mapping admits: from anyone
            (``endpoint-independent``, "full cone"), from addresses the inside has sent to
            (``address-dependent``), or from exactly the endpoints it has sent to
            (``address-and-port-dependent``).
        translate: ``False`` makes a firewall: hosts keep their public addresses, only the
            filtering applies.
        udp_timeout: seconds a UDP mapping lives without refreshing traffic (RFC 4787 REQ-5
            asks for at least 120 s).
        tcp_timeout: idle seconds of a TCP mapping (RFC 5382 REQ-5: at least 2 h 4 min).
        inbound_refresh: whether inbound UDP refreshes a mapping (TCP traffic always does).
        port_allocation: ``preserve`` (keep the internal port as the external port when it is
            free, else the next free port in order), ``sequential`` (the next free port from
            1024 on) or ``random`` (a free port drawn from the box's seeded stream).
        max_mappings: table size; when full and nothing has expired, new flows are dropped.
    """

    mapping: str = "endpoint-independent"
    filtering: str = "address-and-port-dependent"
    translate: bool = True
    udp_timeout: float = 120.0
    tcp_timeout: float = 7440.0
    inbound_refresh: bool = False
    port_allocation: str = "preserve"
    max_mappings: int = 65536

    def __attrs_post_init__(self) -> None:
        if self.mapping not in BEHAVIOURS or self.filtering not in BEHAVIOURS:
            raise ValueError(f"mapping and filtering must be one of {BEHAVIOURS}")
        if self.port_allocation not in PORT_ALLOCATIONS:
            raise ValueError(f"port_allocation must be one of {PORT_ALLOCATIONS}")
        if self.udp_timeout <= 0 or self.tcp_timeout <= 0 or self.max_mappings < 1:
            raise ValueError("timeouts and max_mappings must be positive")

    @classmethod
    def of_kind(cls, kind: str, **overrides: Any) -> NatSpec:
        """A common box by name: ``full-cone``, ``restricted-cone``, ``port-restricted``
        (endpoint-independent mapping, filtering by endpoint, address, or address and port),
        ``address-dependent`` (address-dependent mapping, address-and-port-dependent
        filtering), ``symmetric`` (address-and-port-dependent both, sequential ports) or
        ``firewall``; ``overrides`` set other fields.

        Raises:
            ValueError: unknown kind.
        """
        eim, adf, apdf = BEHAVIOURS
        kinds = {
            "full-cone": (eim, eim, True),
            "restricted-cone": (eim, adf, True),
            "port-restricted": (eim, apdf, True),
            "address-dependent": (adf, apdf, True),
            "symmetric": (apdf, apdf, True),
            "firewall": (eim, apdf, False),
        }
        if kind not in kinds:
            raise ValueError(f"unknown NAT kind {kind!r}, choose from {sorted(kinds)}")
        mapping, filtering, translate = kinds[kind]
        # Typical symmetric boxes allocate ports rather than keep them.
        base = cls(
            mapping=mapping,
            filtering=filtering,
            translate=translate,
            port_allocation="sequential" if kind == "symmetric" else "preserve",
        )
        return attrs.evolve(base, **overrides)


class NatMapping:
    """One binding of an internal endpoint to an external one, with the remote endpoints the
    inside has sent to through it (what filtering admits)."""

    def __init__(
        self, proto: Proto, internal: Endpoint, external: Endpoint, timeout: float, now: float
    ) -> None:
        self.proto = proto
        self.internal = internal
        self.external = external
        self.timeout = timeout
        self.last_used = now
        self.remotes: dict[Endpoint, None] = {}
        self.remote_ips: dict[IPAddress, None] = {}
        self.key: tuple[object, ...] = ()

    def expired(self, now: float) -> bool:
        """Whether the mapping has been idle for its timeout."""
        return now - self.last_used >= self.timeout

    def refresh(self, now: float) -> bool:
        """Note traffic at ``now``.

        Returns:
            ``False`` if the mapping had already expired (the flow is gone).
        """
        if self.expired(now):
            return False
        self.last_used = now
        return True


class NatBox:
    """A NAT or firewall in front of some nodes.

    Args:
        spec: its behaviour.
        index: its number (1, 2, ...), which picks its public addresses.
        public: its public address per IP version (a firewall has none of its own).
        rng: the seeded stream of ``random`` port allocation (required for it).

    Raises:
        ValueError: ``random`` port allocation without ``rng``.
    """

    def __init__(
        self,
        spec: NatSpec,
        index: int,
        public: dict[int, IPAddress],
        rng: random.Random | None = None,
    ) -> None:
        if spec.port_allocation == "random" and rng is None:
            raise ValueError("random port allocation needs a seeded rng")
        self.spec = spec
        self.rng = rng
        self.index = index
        self.public = public
        self._by_key: dict[tuple[object, ...], NatMapping] = {}
        self._by_external: dict[tuple[Proto, Endpoint], NatMapping] = {}
        self._next_port = _PORT_FIRST

    def __repr__(self) -> str:
        return f"NatBox({self.index}, {self.spec.mapping}/{self.spec.filtering})"

    def mappings(self, now: float) -> list[NatMapping]:
        """The live mappings, oldest first."""
        return [m for m in self._by_key.values() if not m.expired(now)]

    def _key(self, proto: Proto, internal: Endpoint, remote: Endpoint) -> tuple[object, ...]:
        mapping = self.spec.mapping
        if mapping == BEHAVIOURS[0] or not self.spec.translate:
            return (proto, internal)
        if mapping == BEHAVIOURS[1]:
            return (proto, internal, remote[0])
        return (proto, internal, remote)

    def outbound(
        self, proto: Proto, internal: Endpoint, remote: Endpoint, now: float
    ) -> NatMapping | None:
        """A packet leaves from ``internal`` to ``remote``: find or make its mapping, refresh
        it and let replies from ``remote`` in.

        Returns:
            The mapping (its ``external`` is the source the outside sees), or ``None`` if the
            packet is dropped (no public address of that family, table full).
        """
        key = self._key(proto, internal, remote)
        mapping = self._by_key.get(key)
        if mapping is not None and mapping.expired(now):
            self._remove(mapping)
            mapping = None
        if mapping is None:
            mapping = self._create(key, proto, internal, now)
            if mapping is None:
                return None
        mapping.last_used = now
        mapping.remotes[remote] = None
        mapping.remote_ips[remote[0]] = None
        return mapping

    def inbound(
        self, proto: Proto, external: Endpoint, remote: Endpoint, now: float
    ) -> NatMapping | None:
        """A packet from ``remote`` reaches ``external``.

        Returns:
            The mapping that admits it (forward to its ``internal``), or ``None``: no live
            mapping, or the filtering rejects ``remote``.
        """
        mapping = self._by_external.get((proto, external))
        if mapping is None:
            return None
        if mapping.expired(now):
            self._remove(mapping)
            return None
        filtering = self.spec.filtering
        if filtering == BEHAVIOURS[1] and remote[0] not in mapping.remote_ips:
            return None
        if filtering == BEHAVIOURS[2] and remote not in mapping.remotes:
            return None
        if proto == "tcp" or self.spec.inbound_refresh:
            mapping.last_used = now
        return mapping

    def peek(self, proto: Proto, external: Endpoint) -> Endpoint | None:
        """The internal endpoint behind ``external`` now, ignoring filtering and expiry."""
        mapping = self._by_external.get((proto, external))
        return None if mapping is None else mapping.internal

    def _create(
        self, key: tuple[object, ...], proto: Proto, internal: Endpoint, now: float
    ) -> NatMapping | None:
        if len(self._by_key) >= self.spec.max_mappings:
            self._sweep(now)
            if len(self._by_key) >= self.spec.max_mappings:
                return None
        if self.spec.translate:
            ip = self.public.get(internal[0].version)
            if ip is None:
                return None
            port = self._free_port(proto, ip, internal[1])
            if port is None:
                return None
            external: Endpoint = (ip, port)
        else:
            external = internal
        timeout = self.spec.udp_timeout if proto == "udp" else self.spec.tcp_timeout
        mapping = NatMapping(proto, internal, external, timeout, now)
        mapping.key = key
        self._by_key[key] = mapping
        self._by_external[(proto, external)] = mapping
        return mapping

    def _free_port(self, proto: Proto, ip: IPAddress, wanted: int) -> int | None:
        allocation = self.spec.port_allocation
        if allocation == "preserve" and (proto, (ip, wanted)) not in self._by_external:
            return wanted
        if allocation == "random":
            assert self.rng is not None
            for _ in range(64):  # a few draws, then the ordered scan below finds any free one
                port = self.rng.randint(_PORT_FIRST, _PORT_LAST)
                if (proto, (ip, port)) not in self._by_external:
                    return port
        span = _PORT_LAST - _PORT_FIRST + 1
        for _ in range(span):
            port = self._next_port
            self._next_port = _PORT_FIRST + (port + 1 - _PORT_FIRST) % span
            if (proto, (ip, port)) not in self._by_external:
                return port
        return None

    def _remove(self, mapping: NatMapping) -> None:
        if self._by_key.get(mapping.key) is mapping:
            del self._by_key[mapping.key]
        if self._by_external.get((mapping.proto, mapping.external)) is mapping:
            del self._by_external[(mapping.proto, mapping.external)]

    def _sweep(self, now: float) -> None:
        for mapping in list(self._by_key.values()):
            if mapping.expired(now):
                self._remove(mapping)
