"""Fuzz targets for the SWIM membership protocol: the ``Message`` decoder (with re-encoding) and
a core fed arbitrary messages from a peer (docs/membership.md)."""

from __future__ import annotations

import hashlib
import random

from fuzz._common import check, split_control
from p2pstack.identity import PeerId
from protocols.membership import (
    MembershipError,
    SwimConfig,
    SwimCore,
    SwimProtocolError,
    WireLimits,
    decode_message,
    encode_message,
)

__all__ = ["SIGNATURE", "fuzz_peer", "fuzz_swim_core", "fuzz_swim_message"]

#: The only signature the fuzzed core accepts, so that inputs can get past verification.
SIGNATURE = b"ok"
_LIMITS = WireLimits(max_size=4096, max_metadata_size=64, max_addrs=2, max_addr_len=32)
_CONFIG = SwimConfig(
    max_members=8, max_metadata_size=64, max_addrs=2, max_addr_len=32, max_broadcasts=8
)


def fuzz_peer(i: int) -> PeerId:
    """The fuzz targets' peer ``i`` (0 is the fuzzed core itself)."""
    return PeerId.from_bytes(b"\x12\x20" + hashlib.sha256(b"swim fuzz %d" % i).digest())


def fuzz_swim_message(data: bytes) -> None:
    """Decode a SWIM ``Message``; what decodes re-encodes to an equal message within the
    bounds; anything else raises ``SwimProtocolError``."""
    try:
        message = decode_message(data, _LIMITS)
    except SwimProtocolError:
        return
    again = decode_message(encode_message(message, max_size=1 << 20), _LIMITS)
    check(again == message, "message changed on re-encoding")


def fuzz_swim_core(data: bytes) -> None:
    """A core receives the input as messages from peer 1 (the control byte's low 2 bits cut it
    into 1-4 messages, the next bits advance time between them); the table stays bounded and
    timers keep running."""
    control, wire = split_control(data)
    core = SwimCore(
        fuzz_peer(0),
        sign=lambda payload: SIGNATURE,
        verify=lambda peer, payload, sig: sig == SIGNATURE,
        rng=random.Random(0),
        now=0.0,
        config=_CONFIG,
    )
    parts = (control & 3) + 1
    size = max(1, -(-len(wire) // parts))
    now = 0.0
    for start in range(0, max(len(wire), 1), size):
        try:
            core.handle_message(now, fuzz_peer(1), wire[start : start + size])
        except SwimProtocolError:
            pass
        except MembershipError as exc:
            check(False, f"non-protocol error escaped: {exc!r}")
        now += (control >> 2) * 0.25
        core.handle_timer(now)
        deadline = core.next_deadline()
        check(deadline is not None and deadline > now - 1e-9, "a timer is overdue after running")
        check(len(core.members()) <= _CONFIG.max_members, f"{len(core.members())} members")
        queued = core.statistics().broadcasts_queued
        check(queued <= _CONFIG.max_broadcasts, f"{queued} broadcasts queued")
        for _, out in core.outgoing():
            check(len(out) <= _CONFIG.max_push_pull_size, "oversized output")
