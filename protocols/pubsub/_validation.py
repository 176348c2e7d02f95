"""Topic validators of the ``Pubsub`` service
(https://github.com/libp2p/specs/blob/master/pubsub/README.md#the-topic-validator): each received
message runs through its topic's validators in order; synchronous ones run at once, the first
awaitable result moves the rest to a task, bounded in number and in time.

Outcomes (the spec's, as go and js): accept forwards and delivers; reject and ignore drop the
message, which is neither forwarded nor delivered. A validator that raises rejects (it cannot
vouch for the message; the error is logged as it may be the application's); one that takes
longer than ``timeout`` ignores. With ``max_pending`` validations running, further messages that
need an asynchronous validator are dropped and counted as throttled (go's validation throttle).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio

from protocols.pubsub._api import PubsubMessage, Validator
from protocols.pubsub._gossip_score import ValidationResult

__all__ = ["ValidationRunner"]

_log = logging.getLogger(__name__)

#: Runs a coroutine function as a task (the host's ``start_soon``).
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]


def _outcome(value: object) -> ValidationResult:
    if isinstance(value, ValidationResult):
        return value
    return ValidationResult.ACCEPT if value else ValidationResult.REJECT


def _call(validator: Validator, message: PubsubMessage) -> object:
    try:
        return validator(message)
    except Exception as exc:  # the application's fault or the message's: reject, keep serving
        _log.warning("pubsub validator %r raised %r: message rejected", validator, exc)
        return ValidationResult.REJECT


async def _await_outcome(value: Awaitable[object]) -> ValidationResult:
    try:
        return _outcome(await value)
    except Exception as exc:
        _log.warning("pubsub validator raised %r: message rejected", exc)
        return ValidationResult.REJECT


class ValidationRunner:
    """Validators per topic and the validations in flight (see the module docstring).

    Args:
        timeout: seconds an asynchronous validation may take.
        max_pending: asynchronous validations running at once.
        spawn: starts a task.
        done: called with each message and its outcome once decided (after the last
            validator, or at once for a topic without validators).

    Attributes:
        throttled: messages dropped because ``max_pending`` validations were running.
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_pending: int,
        spawn: Spawn,
        done: Callable[[PubsubMessage, ValidationResult], None],
    ) -> None:
        self._timeout = timeout
        self._max_pending = max_pending
        self._spawn = spawn
        self._done = done
        self._validators: dict[str, list[Validator]] = {}
        self.pending = 0
        self.throttled = 0

    def add(self, topic: str, validator: Validator) -> None:
        """Validate ``topic``'s messages with ``validator`` too (after the others)."""
        self._validators.setdefault(topic, []).append(validator)

    def remove(self, topic: str) -> None:
        """Drop ``topic``'s validators."""
        self._validators.pop(topic, None)

    def validate(self, message: PubsubMessage) -> None:
        """Run ``message`` through its topic's validators; ``done`` is called with the
        outcome now or from a task (never, when throttled)."""
        validators = self._validators.get(message.topic, [])
        for index, validator in enumerate(validators):
            value = _call(validator, message)
            if inspect.isawaitable(value):
                if self.pending >= self._max_pending:
                    self.throttled += 1
                    if inspect.iscoroutine(value):
                        value.close()  # never to be awaited: close it quietly
                    return
                self.pending += 1
                rest = validators[index + 1 :]
                self._spawn(functools.partial(self._finish, message, value, rest))
                return
            outcome = _outcome(value)
            if outcome is not ValidationResult.ACCEPT:
                self._done(message, outcome)
                return
        self._done(message, ValidationResult.ACCEPT)

    async def _finish(
        self, message: PubsubMessage, first: Awaitable[object], rest: list[Validator]
    ) -> None:
        outcome = ValidationResult.IGNORE  # unless decided within the timeout
        try:
            with anyio.move_on_after(self._timeout):
                outcome = await _await_outcome(first)
                for validator in rest:
                    if outcome is not ValidationResult.ACCEPT:
                        break
                    value = _call(validator, message)
                    if inspect.isawaitable(value):
                        outcome = await _await_outcome(value)
                    else:
                        outcome = _outcome(value)
        finally:
            self.pending -= 1
        self._done(message, outcome)
