"""Sans-IO routing of the simulated network: which node owns an address, and what NAT boxes do
to a packet on its way out (``egress``) and in (``ingress``). Time is passed in."""

from __future__ import annotations

import random
from collections.abc import Iterable

from transports.simnet._addresses import AddressPlan, Endpoint, IPAddress, Proto
from transports.simnet._nat import NatBox, NatMapping, NatSpec

__all__ = ["Egress", "Ingress", "Routing"]

#: What leaves a node: the source the outside sees and the mappings made on the way.
Egress = tuple[Endpoint, tuple[NatMapping, ...]]
#: Where a packet lands: node, the endpoint on that node, and the mappings that admitted it.
Ingress = tuple[int, Endpoint, tuple[NatMapping, ...]]


class Routing:
    """Addresses of nodes and NAT boxes, and the realm rules: nodes behind the same
    translating box reach each other by private address; everything else goes out through
    the sender's box (if any) and in through the receiver's (if any). Hairpinning (reaching a
    box's own public address from behind it) is not modelled: such packets are dropped.

    Args:
        plan: the address plan.
    """

    def __init__(self, plan: AddressPlan) -> None:
        self.plan = plan
        self.boxes: list[NatBox] = []
        self._box_of: dict[int, NatBox] = {}
        self._gateways: dict[IPAddress, NatBox] = {}

    def add_box(
        self, spec: NatSpec, nodes: Iterable[int], rng: random.Random | None = None
    ) -> NatBox:
        """Put ``nodes`` behind a new box (their addresses change if it translates); ``rng``
        draws its ports if it allocates them at random.

        Raises:
            ValueError: a node is already behind a box.
        """
        members = list(nodes)
        if taken := [n for n in members if n in self._box_of]:
            raise ValueError(f"nodes {taken} are already behind a NAT box")
        index = len(self.boxes) + 1
        public: dict[int, IPAddress] = {}
        if spec.translate:
            for version in (4, 6):
                ip = self.plan.gateway(version, index)
                if ip is not None:
                    public[version] = ip
        box = NatBox(spec, index, public, rng)
        for ip in public.values():
            self._gateways[ip] = box
        for n in members:
            self._box_of[n] = box
        self.boxes.append(box)
        return box

    def box_of(self, node: int) -> NatBox | None:
        """The box in front of ``node``, if any."""
        return self._box_of.get(node)

    def address(self, node: int, version: int) -> IPAddress | None:
        """``node``'s own address of IP ``version`` (private behind a translating box)."""
        box = self._box_of.get(node)
        return self.plan.host(version, node, private=box is not None and box.spec.translate)

    def addresses(self, node: int) -> tuple[IPAddress, ...]:
        """``node``'s own addresses, IPv4 first."""
        return tuple(ip for v in (4, 6) if (ip := self.address(node, v)) is not None)

    def _locate(self, ip: IPAddress) -> int | NatBox | None:
        """The node or box that owns public address ``ip``."""
        box = self._gateways.get(ip)
        if box is not None:
            return box
        node = self.plan.host_index(ip)
        if node is None:
            return None
        owner = self._box_of.get(node)
        return None if owner is not None and owner.spec.translate else node

    def _inside(self, box: NatBox, ip: IPAddress) -> int | None:
        """The node behind ``box`` that has address ``ip``."""
        node = self.plan.host_index(ip, private=box.spec.translate)
        return node if node is not None and self._box_of.get(node) is box else None

    def egress(
        self, proto: Proto, src: int, local: Endpoint, dst: Endpoint, now: float
    ) -> Egress | None:
        """A packet leaves node ``src`` from ``local`` for ``dst``.

        Returns:
            The source as the destination will see it and the mapping used, or ``None`` if
            the sender's box drops it.
        """
        box = self._box_of.get(src)
        if box is None or self._inside(box, dst[0]) is not None:
            return local, ()
        if dst[0] in box.public.values():
            return None  # hairpinning is not modelled
        mapping = box.outbound(proto, local, dst, now)
        return None if mapping is None else (mapping.external, (mapping,))

    def ingress(
        self, proto: Proto, src: int, seen: Endpoint, dst: Endpoint, now: float
    ) -> Ingress | None:
        """A packet from node ``src``, with source ``seen`` after ``egress``, reaches ``dst``.

        Returns:
            Its destination, or ``None`` if no node has that address or a box filters it.
        """
        src_box = self._box_of.get(src)
        if src_box is not None and (inner := self._inside(src_box, dst[0])) is not None:
            return inner, dst, ()
        where = self._locate(dst[0])
        if where is None:
            return None
        box = where if isinstance(where, NatBox) else self._box_of.get(where)
        if box is None:
            assert isinstance(where, int)
            return where, dst, ()
        mapping = box.inbound(proto, dst, seen, now)
        if mapping is None:
            return None
        node = where if isinstance(where, int) else self._inside(box, mapping.internal[0])
        return None if node is None else (node, mapping.internal, (mapping,))

    def hint(self, src: int, proto: Proto, dst: Endpoint) -> int:
        """The node a packet to ``dst`` would most likely reach (for the link spec), or 0
        when unknown (the default link applies)."""
        src_box = self._box_of.get(src)
        if src_box is not None and (inner := self._inside(src_box, dst[0])) is not None:
            return inner
        where = self._locate(dst[0])
        if isinstance(where, NatBox):
            internal = where.peek(proto, dst)
            return 0 if internal is None else (self._inside(where, internal[0]) or 0)
        return where or 0
