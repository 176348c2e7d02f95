"""What RFC 4787 (UDP) and RFC 5382 (TCP) say a DCUtR hole punch between two NAT types can
achieve, worked out from the mapping and filtering rules alone (no simulation): the
"expected" column next to the simulated outcome of the ``nat_traversal`` workload
(docs/nat.md, "Simulating NATs", expected outcomes).

Both peers announce the address a public node observed (their mapping towards it). A peer
*keeps* that address towards the other peer when its box maps endpoint-independently (or
translates nothing); otherwise its packets to the peer leave from another port. A packet gets
through the receiver's box when the filtering admits its source on the observed mapping.
"""

from __future__ import annotations

import attrs

from transports.simnet import BEHAVIOURS, NatSpec

__all__ = ["NatType", "expected_quic", "expected_tcp", "nat_type"]

_EIM, _ADM, _APDM = BEHAVIOURS
#: NAT type labels, most to least permissive (the order of metric keys and plots).
TYPE_ORDER = (
    "public",
    "firewall",
    "fullcone",
    "restricted",
    "portrestricted",
    "addrdep",
    "symmetric",
)
#: The mapping class of each label (``holepunch_success_rate_eim_sym`` and so on).
MAPPING_CLASS = {
    "public": "public",
    "firewall": "eim",
    "fullcone": "eim",
    "restricted": "eim",
    "portrestricted": "eim",
    "addrdep": "adm",
    "symmetric": "sym",
}


@attrs.frozen
class NatType:
    """A node's situation: no box (``spec`` None), a firewall, or a translating box."""

    spec: NatSpec | None

    @property
    def label(self) -> str:
        """One of ``TYPE_ORDER``."""
        spec = self.spec
        if spec is None:
            return "public"
        if not spec.translate:
            return "firewall"
        if spec.mapping == _APDM:
            return "symmetric"
        if spec.mapping == _ADM:
            return "addrdep"
        return {_EIM: "fullcone", _ADM: "restricted", _APDM: "portrestricted"}[spec.filtering]

    @property
    def keeps_port(self) -> bool:
        """Whether packets to any peer leave from the observed address (EIM or no NAT)."""
        return self.spec is None or not self.spec.translate or self.spec.mapping == _EIM

    def admits(self, *, source_is_observed: bool, at_observed: bool = True) -> bool:
        """Whether a packet from the peer gets through the node's box, once the node itself
        has sent to the peer's observed address.

        Args:
            source_is_observed: the packet comes from the address the peer announced.
            at_observed: it arrives at the node's observed address (``False``: at the address
                the node's own packets to the peer left from, as a reply does).
        """
        spec = self.spec
        if spec is None or spec.filtering == _EIM:
            return True
        # The observed mapping has sent to the peer only if the node keeps its port; the
        # mapping its own packets left from always has. The peer's packets come from its box
        # address either way, so address-dependent filtering looks at nothing else.
        opened = self.keeps_port or not at_observed
        if spec.filtering == _ADM:
            return opened
        return opened and source_is_observed


def nat_type(spec: NatSpec | None) -> NatType:
    """The ``NatType`` of a box spec (None: a public node)."""
    return NatType(spec)


def expected_tcp(a: NatType, b: NatType) -> bool:
    """Whether simultaneous TCP dials from both listen ports to the observed addresses give a
    connection: either SYN through the other's box is enough (it meets the other's SYN-SENT
    socket, or its listener if it came from another port)."""
    return b.admits(source_is_observed=a.keeps_port) or a.admits(source_is_observed=b.keeps_port)


def expected_quic(client: NatType, server: NatType) -> bool:
    """Whether the QUIC client's Initial reaches the server (whose random UDP packets to the
    client's observed address opened its box) and the server's reply gets back through the
    client's box (whose Initials to the server's observed address opened it)."""
    if not server.admits(source_is_observed=client.keeps_port):
        return False
    # The reply goes to where the Initial came from; it leaves the server's box from the
    # observed address only if the server keeps its port.
    return client.admits(source_is_observed=server.keeps_port, at_observed=False)
