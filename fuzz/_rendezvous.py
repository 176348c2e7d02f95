"""Fuzz targets for rendezvous: the message decoder (with the records it carries) and the
point's registry driven by arbitrary requests from a few peers over time.
"""

from __future__ import annotations

from fuzz import _noise
from fuzz._common import check, split_control
from p2pstack.errors import IdentityError, RemoteProtocolError
from p2pstack.framing import LpDecoder
from p2pstack.identity import PeerId
from protocols.discovery.rendezvous import (
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Registry,
    RegistryConfig,
    Unregister,
    decode_message,
    encode_message,
    open_record,
)

__all__ = ["POINT_PEERS", "POINT_TTL_STEP", "fuzz_rendezvous_message", "fuzz_rendezvous_point"]

#: Small limits, so that short inputs reach them.
_CONFIG = RegistryConfig(
    min_ttl=60, default_ttl=600, max_ttl=3600, max_per_peer=3, max_registrations=5,
    max_discover_limit=4, max_response_size=2048,
)  # fmt: skip
#: Seconds one step of a request's time byte advances the clock.
POINT_TTL_STEP = 60.0


def _peers() -> tuple[PeerId, ...]:
    signer_a, signer_b = _noise.identities()
    keyless = tuple(PeerId.from_bytes(b"\x12\x20" + bytes([i]) * 32) for i in (1, 2))
    return (signer_a.peer_id, signer_b.peer_id, *keyless)


#: The peers a point input's requests come from: two with the fixed keys of ``fuzz._noise``
#: (seeds carry records they signed), two without keys (they can register only ``PeerInfo``).
POINT_PEERS = _peers()


def fuzz_rendezvous_message(data: bytes) -> None:
    """Decode a ``Message`` (no prefix); what decodes re-encodes to an equal message, and every
    record in it opens or raises ``IdentityError``; anything else raises RemoteProtocolError."""
    try:
        message = decode_message(data)
    except RemoteProtocolError:
        return
    check(decode_message(encode_message(message)) == message, "message changed on re-encoding")
    records = (
        [message.record]
        if isinstance(message, Register)
        else [r.record for r in message.registrations]
        if isinstance(message, DiscoverResponse)
        else []
    )
    for record in records:
        try:
            open_record(record, allow_unsigned=True)
        except IdentityError:
            pass


def _check_answer(request: bytes, answer: bytes | None) -> None:
    sent = decode_message(request)
    if answer is None:
        check(isinstance(sent, Unregister), f"no answer to {type(sent).__name__}")
        return
    got = decode_message(answer)
    want = RegisterResponse if isinstance(sent, Register) else DiscoverResponse
    check(isinstance(sent, Register | Discover), f"{type(sent).__name__} was answered")
    check(isinstance(got, want), f"{type(got).__name__} answers {type(sent).__name__}")
    if isinstance(got, DiscoverResponse):
        check(len(got.registrations) <= _CONFIG.max_discover_limit, "over the discover limit")


def fuzz_rendezvous_point(data: bytes) -> None:
    """Drive a registry. The control byte is ignored (kept for future options); then
    length-prefixed frames, each a header byte (bits 0-1: which of ``POINT_PEERS`` sends it,
    bits 2-7: steps of ``POINT_TTL_STEP`` seconds that pass first) and the request. Invariants:
    each request gets the answer its type calls for, the limits hold, nothing expired is kept
    and the next deadline lies ahead."""
    _, wire = split_control(data)
    registry = Registry(_CONFIG, nonce=b"\x00" * 8)
    decoder = LpDecoder(4096)
    now = 0.0
    try:
        frames = decoder.feed(wire)
    except RemoteProtocolError:
        return
    for frame in frames:
        if not frame:
            continue
        peer = POINT_PEERS[frame[0] & 3]
        now += (frame[0] >> 2) * POINT_TTL_STEP
        try:
            answer = registry.handle_request(peer, frame[1:], now)
        except RemoteProtocolError:
            continue
        _check_answer(frame[1:], answer)
        stats = registry.statistics()
        check(stats.registrations <= _CONFIG.max_registrations, "over the total limit")
        per_peer: dict[PeerId, int] = {}
        for reg in registry.registrations():
            check(reg.expires > now, "an expired registration is kept")
            per_peer[reg.peer] = per_peer.get(reg.peer, 0) + 1
        check(max(per_peer.values(), default=0) <= _CONFIG.max_per_peer, "over the peer limit")
        deadline = registry.next_deadline()
        check(deadline is None or deadline > now, "a deadline in the past")
