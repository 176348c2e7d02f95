"""Sans-IO DCUtR state machines for both ends of a ``/libp2p/dcutr`` stream
(https://github.com/libp2p/specs/blob/master/relay/DCUtR.md#the-protocol).

The spec's ``B`` (the peer that *received* the relayed connection) opens the stream: it is the
``InitiatorCore``. It sends CONNECT with its addresses and times the answer (the RTT), answers
the peer's CONNECT with SYNC and dials once half the RTT has passed. ``A`` (the peer that
dialed through the relay) is the ``ResponderCore``: it answers CONNECT with its own CONNECT and
dials as soon as SYNC arrives. On failure ``B`` starts over on the same stream; "Inbound peers
(here B) SHOULD retry twice (thus a total of 3 attempts)".

No I/O, clock or randomness: bytes and ``now`` go in, bytes, events and the next deadline come
out. Bounds: one partial message of at most ``MAX_MESSAGE_SIZE`` bytes is buffered; at most
``MAX_ADDRS`` addresses are kept per message; the responder accepts at most ``max_attempts``
CONNECT rounds. A peer that breaks the rules gets a ``RemoteProtocolError`` subclass and the
core refuses further input (``LocalProtocolError``).
"""

from __future__ import annotations

import enum
from collections import deque

import attrs
from multiaddr import Multiaddr

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from p2pstack.framing import LpDecoder
from protocols.dcutr._policy import AddressPolicy
from protocols.dcutr._wire import (
    MAX_MESSAGE_SIZE,
    DcutrMessage,
    MalformedMessageError,
    MessageType,
    UnexpectedMessageError,
    decode_message,
    encode_message,
)

__all__ = ["DcutrEvent", "DialRequested", "InitiatorCore", "ResponderCore", "UpgradeFailed"]

#: "Inbound peers SHOULD retry twice (thus a total of 3 attempts)."
DEFAULT_MAX_ATTEMPTS = 3


@attrs.frozen(kw_only=True)
class DialRequested:
    """Dial (or, for QUIC on the responder, punch towards) the peer now.

    Attributes:
        attempt: 1 for the first attempt.
        addrs: the peer's addresses that passed the ``AddressPolicy`` (maybe none).
        rejected: the peer's addresses dropped (invalid, or refused by the policy).
        rtt: the measured round trip in seconds (initiator only).
    """

    attempt: int
    addrs: tuple[Multiaddr, ...]
    rejected: int
    rtt: float | None


@attrs.frozen(kw_only=True)
class UpgradeFailed:
    """The initiator gives up: ``attempts`` attempts were made (0: none could start)."""

    attempts: int
    reason: str


DcutrEvent = DialRequested | UpgradeFailed


class _State(enum.Enum):
    IDLE = "idle"
    AWAIT_CONNECT = "await-connect"
    AWAIT_SYNC = "await-sync"  # responder: CONNECT answered
    SYNC_TIMER = "sync-timer"  # initiator: SYNC sent, waiting RTT/2
    DIALING = "dialing"
    DONE = "done"
    BROKEN = "broken"


class _Base:
    def __init__(self, policy: AddressPolicy, max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._policy = policy
        self.max_attempts = max_attempts
        self.attempts = 0
        self._decoder = LpDecoder(MAX_MESSAGE_SIZE)
        self._out = bytearray()
        self._events: deque[DcutrEvent] = deque()
        self._state = _State.IDLE
        self._deadline: float | None = None

    @property
    def state(self) -> str:
        """The state's name (for logs and tests)."""
        return self._state.value

    def data_to_send(self) -> bytes:
        """Bytes to write to the stream (and forget)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> DcutrEvent | None:
        """The next event, or ``None``."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must be called, or ``None``."""
        return self._deadline

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the stream.

        Raises:
            MalformedMessageError: a message is oversized or not a valid ``HolePunch``.
            UnexpectedMessageError: a message the protocol does not allow now.
            LocalProtocolError: the core already failed or finished.
        """
        if self._state in (_State.BROKEN, _State.DONE):
            raise LocalProtocolError(f"DCUtR core is {self._state.value}")
        try:
            bodies = self._decoder.feed(data)
            for body in bodies:
                self._handle(decode_message(body), now)
        except MalformedMessageError:
            self._break()
            raise
        except RemoteProtocolError as exc:
            self._break()
            if isinstance(exc, UnexpectedMessageError):
                raise
            raise MalformedMessageError(str(exc)) from None

    def _break(self) -> None:
        self._state = _State.BROKEN
        self._deadline = None

    def _filtered(self, msg: DcutrMessage) -> tuple[tuple[Multiaddr, ...], int]:
        addrs = self._policy.filter(msg.addrs)
        return addrs, msg.invalid + len(msg.addrs) - len(addrs)

    def _send(self, kind: MessageType, addrs: tuple[Multiaddr, ...] = ()) -> None:
        self._out += encode_message(DcutrMessage(kind, addrs))

    def _handle(self, msg: DcutrMessage, now: float) -> None:
        raise NotImplementedError


class InitiatorCore(_Base):
    """The side that opens the stream (the spec's ``B``, inbound on the relayed connection).

    Args:
        policy: which of the peer's addresses may be dialed.
        max_attempts: CONNECT/SYNC rounds before giving up.
        response_timeout: seconds to wait for the peer's CONNECT.
    """

    def __init__(
        self,
        *,
        policy: AddressPolicy | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        response_timeout: float = 10.0,
    ) -> None:
        super().__init__(policy or AddressPolicy(), max_attempts)
        self._response_timeout = response_timeout
        self._sent_at = 0.0
        self.rtt: float | None = None
        self._pending: DialRequested | None = None

    def start_attempt(self, now: float, local_addrs: tuple[Multiaddr, ...]) -> None:
        """Send CONNECT with ``local_addrs`` and start timing the round trip.

        Raises:
            LocalProtocolError: an attempt is under way, the core is finished, or every
                attempt was used.
        """
        if self._state not in (_State.IDLE, _State.DIALING):
            raise LocalProtocolError(f"cannot start an attempt while {self._state.value}")
        if self.attempts >= self.max_attempts:
            raise LocalProtocolError("every attempt was used")
        self.attempts += 1
        self._send(MessageType.CONNECT, local_addrs)
        self._sent_at = now
        self._state = _State.AWAIT_CONNECT
        self._deadline = now + self._response_timeout

    def attempt_failed(self, now: float, local_addrs: tuple[Multiaddr, ...]) -> None:
        """The dial of the current attempt failed: start the next one, or give up
        (``UpgradeFailed``) when ``max_attempts`` were made."""
        if self._state is not _State.DIALING:
            raise LocalProtocolError(f"no attempt is dialing ({self._state.value})")
        if self.attempts >= self.max_attempts:
            self._finish(f"no direct connection after {self.attempts} attempts")
        else:
            self.start_attempt(now, local_addrs)

    def succeeded(self) -> None:
        """The direct connection exists: nothing more to do."""
        self._state = _State.DONE
        self._deadline = None

    def _finish(self, reason: str) -> None:
        self._state = _State.DONE
        self._deadline = None
        self._events.append(UpgradeFailed(attempts=self.attempts, reason=reason))

    def _handle(self, msg: DcutrMessage, now: float) -> None:
        if self._state is not _State.AWAIT_CONNECT or msg.type is not MessageType.CONNECT:
            raise UnexpectedMessageError(
                f"DCUtR initiator got {msg.type.name} while {self._state.value}"
            )
        self.rtt = max(now - self._sent_at, 0.0)
        addrs, rejected = self._filtered(msg)
        if not addrs:
            # Nothing we may dial: no SYNC, no retry (another round would bring the same).
            self._finish(f"the peer sent no dialable address ({rejected} rejected)")
            return
        self._send(MessageType.SYNC)
        self._pending = DialRequested(
            attempt=self.attempts, addrs=addrs, rejected=rejected, rtt=self.rtt
        )
        self._state = _State.SYNC_TIMER
        self._deadline = now + self.rtt / 2

    def handle_timer(self, now: float) -> None:
        """Fire what is due: the SYNC timer (``DialRequested``) or the response timeout
        (``UpgradeFailed``)."""
        if self._deadline is None or now < self._deadline:
            return
        if self._state is _State.AWAIT_CONNECT:
            self._finish(f"no CONNECT answer within {self._response_timeout:g} s")
        elif self._state is _State.SYNC_TIMER and self._pending is not None:
            self._events.append(self._pending)
            self._pending = None
            self._state = _State.DIALING
            self._deadline = None


class ResponderCore(_Base):
    """The side that accepts the stream (the spec's ``A``, which dialed through the relay).

    Args:
        local_addrs: the addresses sent back in our CONNECT (``local_addrs`` may be updated).
        policy: which of the peer's addresses may be dialed.
        max_attempts: most CONNECT rounds accepted; one more is an ``UnexpectedMessageError``.
        idle_timeout: seconds to wait for the peer's next message (``handle_timer`` then
            marks the core done; the driver closes the stream).
    """

    def __init__(
        self,
        local_addrs: tuple[Multiaddr, ...],
        *,
        policy: AddressPolicy | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        idle_timeout: float = 30.0,
        now: float = 0.0,
    ) -> None:
        super().__init__(policy or AddressPolicy(), max_attempts)
        self.local_addrs = local_addrs
        self._idle_timeout = idle_timeout
        self._remote: tuple[tuple[Multiaddr, ...], int] = ((), 0)
        self._state = _State.AWAIT_CONNECT
        self._deadline = now + idle_timeout

    @property
    def done(self) -> bool:
        """Whether the peer went quiet for ``idle_timeout`` (close the stream)."""
        return self._state is _State.DONE

    def _handle(self, msg: DcutrMessage, now: float) -> None:
        if self._state is _State.AWAIT_CONNECT and msg.type is MessageType.CONNECT:
            if self.attempts >= self.max_attempts:
                raise UnexpectedMessageError(
                    f"DCUtR peer started more than {self.max_attempts} rounds"
                )
            self.attempts += 1
            self._remote = self._filtered(msg)
            self._send(MessageType.CONNECT, self.local_addrs)
            self._state = _State.AWAIT_SYNC
        elif self._state is _State.AWAIT_SYNC and msg.type is MessageType.SYNC:
            addrs, rejected = self._remote
            self._events.append(
                DialRequested(attempt=self.attempts, addrs=addrs, rejected=rejected, rtt=None)
            )
            self._state = _State.AWAIT_CONNECT
        else:
            raise UnexpectedMessageError(
                f"DCUtR responder got {msg.type.name} while {self._state.value}"
            )
        self._deadline = now + self._idle_timeout

    def handle_timer(self, now: float) -> None:
        """After ``idle_timeout`` without a message the exchange is over (``done``)."""
        if self._deadline is not None and now >= self._deadline:
            self._state = _State.DONE
            self._deadline = None
