"""The relay's decisions, without I/O: the reservation table with its expiries, the circuit
table with its data and duration budgets, and every refusal
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md, "Reservation" and
"Circuit Establishment").

Time is an input (``now``, in the driver's monotonic clock); ``next_deadline`` /
``handle_timer`` follow ``p2pstack.sansio.TimedCore``. A reservation belongs to one connection
of the peer (``conn``, any hashable the driver chooses) and ends when it expires or when that
connection closes (the spec: "the reservation remains valid [...] as long as there is an active
connection from the peer to the relay"). Every table is bounded by the ``RelayConfig`` limits.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

import attrs

from p2pstack.identity import PeerId
from protocols.relay._hop_config import RelayConfig
from protocols.relay._wire import Status

__all__ = ["Granted", "HopCore", "Refused", "RelayStatistics"]

K = TypeVar("K", bound=Hashable)


@attrs.frozen
class Granted:
    """A reservation was made or renewed; it ends at ``expires`` (driver clock)."""

    expires: float
    renewed: bool


@attrs.frozen
class Refused:
    """A request refused with ``status``; ``reason`` says why, for logs and events."""

    status: Status
    reason: str


@attrs.frozen(kw_only=True)
class RelayStatistics:
    """A snapshot of the relay's tables."""

    reservations: int
    circuits: int
    reservations_refused: int
    circuits_refused: int


@attrs.define
class _Reservation:
    peer: PeerId
    ip: str | None
    expires: float


@attrs.define
class _Circuit:
    source: PeerId
    target: PeerId
    deadline: float | None  # None: no duration limit, or already reported expired
    data_left: list[int | None]  # per direction: bytes still allowed (None: unlimited)
    relayed: list[int] = attrs.field(factory=lambda: [0, 0])


class HopCore:
    """Reservation and circuit bookkeeping of a relay.

    Args:
        config: the limits.
    """

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._reservations: dict[tuple[PeerId, Hashable], _Reservation] = {}
        self._per_peer: dict[PeerId, int] = {}
        self._per_ip: dict[str, int] = {}
        self._circuits: dict[int, _Circuit] = {}
        self._circuits_of: dict[PeerId, int] = {}
        self._next_circuit = 0
        self._expired_peers: list[PeerId] = []
        self._expired_circuits: list[int] = []
        self._refused = [0, 0]

    # -- reservations ---------------------------------------------------------------------------

    def reserve(
        self, peer: PeerId, conn: Hashable, ip: str | None, now: float, *, relayed: bool = False
    ) -> Granted | Refused:
        """Decide a RESERVE from ``peer`` over connection ``conn`` from address ``ip``.

        A reservation already held on the same connection is renewed without counting against
        the limits.

        Args:
            peer: the reserving peer.
            conn: its connection (the reservation ends with it).
            ip: the connection's remote IP address (``None``: not counted per IP).
            now: the current time.
            relayed: the request came over a relayed connection.

        Returns:
            ``Granted``, or ``Refused`` with ``PERMISSION_DENIED`` (over a relayed connection)
            or ``RESERVATION_REFUSED`` (a limit reached).
        """
        if relayed:
            return self._refuse(
                0, Status.PERMISSION_DENIED, "reservation over a relayed connection"
            )
        expires = now + self.config.reservation_ttl
        held = self._reservations.get((peer, conn))
        if held is not None:
            held.expires = expires
            return Granted(expires, renewed=True)
        cfg = self.config
        if len(self._reservations) >= cfg.max_reservations:
            return self._refuse(0, Status.RESERVATION_REFUSED, "too many reservations")
        if self._per_peer.get(peer, 0) >= cfg.max_reservations_per_peer:
            return self._refuse(0, Status.RESERVATION_REFUSED, "too many reservations for peer")
        if ip is not None and self._per_ip.get(ip, 0) >= cfg.max_reservations_per_ip:
            return self._refuse(0, Status.RESERVATION_REFUSED, f"too many reservations from {ip}")
        self._reservations[peer, conn] = _Reservation(peer, ip, expires)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        if ip is not None:
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        return Granted(expires, renewed=False)

    def has_reservation(self, peer: PeerId) -> bool:
        """Whether ``peer`` holds a reservation (expired ones are removed by ``handle_timer``)."""
        return peer in self._per_peer

    def reservations(self) -> list[tuple[PeerId, float]]:
        """Each reservation's peer and expiry."""
        return [(r.peer, r.expires) for r in self._reservations.values()]

    def connection_closed(self, peer: PeerId, conn: Hashable) -> bool:
        """Drop the reservation ``peer`` held on ``conn``, if any; returns whether there was one."""
        held = self._reservations.pop((peer, conn), None)
        if held is None:
            return False
        self._forget(held)
        return True

    def _forget(self, held: _Reservation) -> None:
        _decrement(self._per_peer, held.peer)
        if held.ip is not None:
            _decrement(self._per_ip, held.ip)

    # -- circuits -------------------------------------------------------------------------------

    def open_circuit(
        self, source: PeerId, target: PeerId, now: float, *, relayed: bool = False
    ) -> int | Refused:
        """Decide a CONNECT from ``source`` to ``target``.

        Args:
            source: the peer asking.
            target: the peer it wants.
            now: the current time (the duration limit counts from here).
            relayed: the request came over a relayed connection (a circuit over a circuit).

        Returns:
            The circuit's id (call ``close_circuit`` with it when it ends), or ``Refused``:
            ``PERMISSION_DENIED`` (relay loop, or a peer asking for itself), ``NO_RESERVATION``
            or ``RESOURCE_LIMIT_EXCEEDED``.
        """
        cfg = self.config
        if relayed:
            return self._refuse(1, Status.PERMISSION_DENIED, "connect over a relayed connection")
        if source == target:
            return self._refuse(1, Status.PERMISSION_DENIED, "a circuit to itself")
        if not self.has_reservation(target):
            return self._refuse(1, Status.NO_RESERVATION, f"{target} has no reservation")
        if len(self._circuits) >= cfg.max_circuits:
            return self._refuse(1, Status.RESOURCE_LIMIT_EXCEEDED, "too many circuits")
        for peer in (source, target):
            if self._circuits_of.get(peer, 0) >= cfg.max_circuits_per_peer:
                return self._refuse(
                    1, Status.RESOURCE_LIMIT_EXCEEDED, f"too many circuits for {peer}"
                )
        cid = self._next_circuit
        self._next_circuit += 1
        deadline = None if cfg.limit_duration is None else now + cfg.limit_duration
        self._circuits[cid] = _Circuit(source, target, deadline, [cfg.limit_data, cfg.limit_data])
        for peer in (source, target):
            self._circuits_of[peer] = self._circuits_of.get(peer, 0) + 1
        return cid

    def take_data(self, cid: int, direction: int, size: int) -> int:
        """Account ``size`` bytes read from one side of circuit ``cid``.

        Args:
            cid: the circuit.
            direction: 0 from source to target, 1 from target to source.
            size: bytes read.

        Returns:
            How many of them may be forwarded; fewer than ``size`` means the data limit is
            reached: forward those and reset the circuit.
        """
        circuit = self._circuits[cid]
        left = circuit.data_left[direction]
        allowed = size if left is None else min(size, left)
        if left is not None:
            circuit.data_left[direction] = left - allowed
        circuit.relayed[direction] += allowed
        return allowed

    def close_circuit(self, cid: int) -> tuple[int, int]:
        """Forget circuit ``cid``; returns the bytes relayed in each direction."""
        circuit = self._circuits.pop(cid, None)
        if circuit is None:
            return (0, 0)
        for peer in (circuit.source, circuit.target):
            _decrement(self._circuits_of, peer)
        return (circuit.relayed[0], circuit.relayed[1])

    # -- timers -----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest reservation expiry or circuit duration deadline."""
        times = [r.expires for r in self._reservations.values()]
        times.extend(c.deadline for c in self._circuits.values() if c.deadline is not None)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Remove the reservations that expired by ``now`` and mark the circuits past their
        duration (``take_expired`` hands both out)."""
        for key, held in list(self._reservations.items()):
            if held.expires <= now:
                del self._reservations[key]
                self._forget(held)
                self._expired_peers.append(held.peer)
        for cid, circuit in self._circuits.items():
            if circuit.deadline is not None and circuit.deadline <= now:
                circuit.deadline = None
                self._expired_circuits.append(cid)

    def take_expired(self) -> tuple[list[PeerId], list[int]]:
        """The peers whose reservations expired and the circuits that ran out of time since
        the last call (the driver resets those circuits)."""
        peers, self._expired_peers = self._expired_peers, []
        circuits, self._expired_circuits = self._expired_circuits, []
        return peers, circuits

    def statistics(self) -> RelayStatistics:
        """Counts of reservations and circuits held, and of refusals so far."""
        return RelayStatistics(
            reservations=len(self._reservations),
            circuits=len(self._circuits),
            reservations_refused=self._refused[0],
            circuits_refused=self._refused[1],
        )

    def _refuse(self, kind: int, status: Status, reason: str) -> Refused:
        self._refused[kind] += 1
        return Refused(status, reason)


def _decrement(counts: dict[K, int], key: K) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
