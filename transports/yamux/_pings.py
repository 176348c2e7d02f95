"""When a yamux session pings, sans-IO: keep-alive pings on idle connections and the RTT probe
that window auto-tuning needs (https://github.com/libp2p/specs/blob/master/yamux/README.md;
Ping frames are in https://github.com/hashicorp/yamux/blob/master/spec.md#ping-type).

The session core owns one ``PingSchedule`` and asks it what to do; the schedule only does
arithmetic on the times it is given.
"""

from __future__ import annotations

import enum

from transports.yamux._frame import MAX_U32

__all__ = ["PingSchedule", "TimerAction"]


class TimerAction(enum.Enum):
    """What ``PingSchedule.handle_timer`` asks the core to do."""

    NOTHING = enum.auto()
    SEND_KEEPALIVE = enum.auto()  # queue a Ping with the schedule's ``keepalive_opaque``
    TIMED_OUT = enum.auto()  # the keep-alive Ping went unanswered: the session is dead


class PingSchedule:
    """Keep-alive and RTT-probe bookkeeping.

    A keep-alive Ping goes out after ``interval`` seconds in which nothing arrived: traffic
    (the peer's own pings included) already proves the connection alive, so two idle peers
    send about one ping per interval between them, not two. It must be answered within
    ``timeout`` seconds. Window auto-tuning needs a round-trip time: one probe Ping measures it
    when data first flows, not for every connection that never moves bulk data.

    Args:
        interval: idle seconds before a keep-alive ping; ``None`` disables keep-alive.
        timeout: seconds a keep-alive ping may go unanswered.
    """

    __slots__ = (
        "_interval",
        "_keepalive",
        "_last_received",
        "_next_opaque",
        "_probe",
        "_timeout",
        "rtt",
    )

    def __init__(self, *, interval: float | None, timeout: float) -> None:
        self._interval = interval
        self._timeout = timeout
        self._next_opaque = 0
        self._last_received: float | None = None  # None: timers not started
        self._keepalive: tuple[int, float] | None = None  # (opaque, sent at) awaiting answer
        self._probe: tuple[int, float] | None = None  # the RTT probe, once sent
        self.rtt: float | None = None
        """The last measured round-trip time in seconds."""

    @property
    def keepalive_opaque(self) -> int | None:
        """The opaque value of the keep-alive ping awaiting its answer, if any."""
        return None if self._keepalive is None else self._keepalive[0]

    def new_opaque(self) -> int:
        """The opaque value for the next Ping (a u32 counter shared by every ping sent)."""
        opaque = self._next_opaque
        self._next_opaque = (opaque + 1) & MAX_U32
        return opaque

    def start(self, now: float) -> None:
        """Start timing at ``now`` (the session began; counts as traffic)."""
        self._last_received = now

    def received(self, now: float) -> None:
        """Bytes arrived at ``now``: the connection is alive (ignored before ``start``)."""
        if self._last_received is not None:
            self._last_received = now

    def probe(self, now: float) -> int | None:
        """Data flows at ``now``: the opaque value of an RTT probe to send, once per session
        and only when timers run and no RTT is known; else ``None``."""
        if self._last_received is None or self.rtt is not None or self._probe is not None:
            return None
        self._probe = (self.new_opaque(), now)
        return self._probe[0]

    def answered(self, opaque: int, now: float | None) -> bool:
        """A Ping answer arrived at ``now``.

        Returns:
            Whether it answered our keep-alive or probe ping (which then set ``rtt``).
        """
        for sent in (self._keepalive, self._probe):
            if sent is not None and sent[0] == opaque:
                if sent is self._keepalive:
                    self._keepalive = None
                else:
                    self._probe = (-1, sent[1])  # answered: never probe again
                if now is not None:
                    self.rtt = now - sent[1]
                return True
        return False

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` is next due, or ``None``."""
        if self._interval is None or self._last_received is None:
            return None
        if self._keepalive is not None:
            return self._keepalive[1] + self._timeout
        return self._last_received + self._interval

    def handle_timer(self, now: float) -> TimerAction:
        """The deadline passed: say what to do. After ``TIMED_OUT`` no deadline is armed.

        Args:
            now: the current time (at least ``next_deadline()``).

        Returns:
            The action for the core.
        """
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return TimerAction.NOTHING
        if self._keepalive is not None:
            self._interval = None  # the session is dead: no more keep-alive
            return TimerAction.TIMED_OUT
        self._keepalive = (self.new_opaque(), now)
        return TimerAction.SEND_KEEPALIVE
