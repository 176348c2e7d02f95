"""Fuzz targets for DCUtR (docs/nat.md, "Hole punching (DCUtR)"): the ``HolePunch`` decoder
(with re-encoding) and both sans-IO cores fed the bytes of a peer."""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from p2pstack.errors import RemoteProtocolError
from protocols.dcutr import (
    MAX_ADDRS,
    AddressPolicy,
    DialRequested,
    InitiatorCore,
    MalformedMessageError,
    ResponderCore,
    decode_message,
    encode_body,
)

__all__ = ["fuzz_dcutr_core", "fuzz_dcutr_message"]

_OURS = (Multiaddr("/ip4/1.2.3.4/tcp/4001"),)


def fuzz_dcutr_message(data: bytes) -> None:
    """Decode a ``HolePunch`` body; what decodes keeps at most ``MAX_ADDRS`` addresses and
    re-encodes to an equal message; anything else raises ``MalformedMessageError``."""
    try:
        msg = decode_message(data)
    except MalformedMessageError:
        return
    check(len(msg.addrs) <= MAX_ADDRS, f"{len(msg.addrs)} addresses kept")
    again = decode_message(encode_body(msg))
    check(again.type == msg.type and again.addrs == msg.addrs, "message changed on re-encoding")


def fuzz_dcutr_core(data: bytes) -> None:
    """The control byte picks the core (bit 7: initiator, which first sends CONNECT; each dial
    it asks for fails, so it retries), the private-address policy (bit 6) and how the rest is
    cut (bits 0-2). The core consumes the bytes until it finishes, or raises a
    ``RemoteProtocolError``; every dial it asks for passes the policy."""
    control, wire = split_control(data)
    policy = AddressPolicy(allow_private=bool(control & 0x40))
    core: InitiatorCore | ResponderCore
    if control & 0x80:
        core = InitiatorCore(policy=policy)
        core.start_attempt(0.0, _OURS)
    else:
        core = ResponderCore(_OURS, policy=policy)
    now = 0.0
    try:
        for piece in chunks(wire, CHUNK_SIZES[control & 7]):
            now += 0.01
            if isinstance(core, ResponderCore) and core.done:
                return  # idle too long: the driver closes the stream
            core.receive_data(piece, now)
            core.handle_timer(now)
            while (event := core.next_event()) is not None:
                if not isinstance(event, DialRequested):
                    return  # the initiator gave up, as the driver then does
                check(all(policy.dialable(a) for a in event.addrs), "undialable address")
                check(len(event.addrs) <= MAX_ADDRS, "too many addresses")
                if isinstance(core, InitiatorCore):  # the dial failed: next attempt
                    core.attempt_failed(now, _OURS)
            core.data_to_send()
    except RemoteProtocolError:
        return
