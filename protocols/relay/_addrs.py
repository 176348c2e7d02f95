"""Relayed addresses: ``<relay addr>/p2p/<relay>/p2p-circuit[/p2p/<target>]``
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md#introduction, "Addressing").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.multiaddrs import split_peer_id, with_peer_id

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = ["circuit_addr", "is_circuit", "split_circuit"]

_CIRCUIT = "/p2p-circuit"


def is_circuit(addr: Multiaddr) -> bool:
    """Whether ``addr`` goes through a relay."""
    return any(p.name == "p2p-circuit" for p in addr.protocols())


def split_circuit(addr: Multiaddr) -> tuple[Multiaddr | None, PeerId]:
    """Split ``<relay addr>/p2p/<relay>/p2p-circuit`` (no target) into the relay's transport
    address (``None`` for a bare ``/p2p/<relay>``) and its peer ID.

    Raises:
        TransportError: not such an address; the message says why (a circuit over a circuit,
            no relay peer ID, something after ``/p2p-circuit``).
    """
    text = str(addr)
    head, sep, tail = text.partition(_CIRCUIT)
    if not sep:
        raise TransportError(f"{addr} is not a relayed address")
    if _CIRCUIT in tail:
        raise TransportError(f"{addr}: a circuit over a circuit is refused")
    if tail:
        raise TransportError(f"{addr}: nothing may follow /p2p-circuit here")
    if not head:
        raise TransportError(f"{addr}: the relay's /p2p/<id> is missing before /p2p-circuit")
    try:
        transport, relay = split_peer_id(Multiaddr(head))
    except ValueError as exc:
        raise TransportError(f"{addr}: {exc}") from None
    if relay is None:
        raise TransportError(f"{addr}: the relay's /p2p/<id> is missing before /p2p-circuit")
    return transport, relay


def circuit_addr(relay_addr: Multiaddr | None, relay: PeerId) -> Multiaddr:
    """``<relay_addr>/p2p/<relay>/p2p-circuit`` (``/p2p/<relay>/p2p-circuit`` if no address)."""
    if relay_addr is None:
        return Multiaddr(f"/p2p/{relay}{_CIRCUIT}")
    return Multiaddr(f"{with_peer_id(relay_addr, relay)}{_CIRCUIT}")
