"""Inputs that once made a fuzz target fail, as literal bytes: each must now run clean.

Add every new crash here (target name, the crashing input from ``<work-dir>/artifacts``) before
fixing it, so that the test fails first; say in a comment what was wrong.
"""

from __future__ import annotations

import anyio
import pytest

from fuzz._registry import load
from p2pstack.errors import HandshakeError
from p2pstack.identity import Identity
from p2pstack.streams import memory_connection_pair
from transports.noise import Noise

CRASHES = [
    # The harness, not mplex: the peer opened stream 0, wrote and reset it in one chunk; the
    # harness answered the StreamOpened event afterwards and wrote to the reset stream
    # (LocalProtocolError, our misuse). Drivers must check is_open, as the harness now does.
    # Noise: a message 1 whose ephemeral key is a low-order X25519 point (here all zeros) made
    # the responder's write of message 2 raise ValueError from the DH (cryptography refuses the
    # all-zero shared secret): an inbound handshake, and with it the host, died on 34 bytes.
    pytest.param("noise_handshake", b"\x00" + bytes(32), id="noise-low-order-ephemeral-key"),
    # DCUtR: an ObsAddrs entry /ip6zone/********* whose text form parses but whose component
    # walk (Multiaddr.items(), lazy) raises; the address policy walked it outside any guard.
    pytest.param(
        "dcutr_core",
        b"\x80\x19\x08d\x12\x08\x04\x01\x02\x03\x04\x06\x0f\xa1\x12\x0b*\t*********)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))\x02\x91\x02\x0f\xa1\xcd\x03",
        id="dcutr_core-ip6zone-lazy-parse",
    ),
    # AutoNAT v2: a DialRequest address /ip6zone/... (b"*\x05\x00\x00\x01\x0f\x11") whose
    # text form parses and re-encodes to the same bytes, but whose component walk (len(),
    # items(): lazy) raises; re-encoding the request tested its truth value. The same check
    # let it through in identify, Kademlia, the peer record and the p2pd codec. They all share
    # one strict decoder now (p2pstack.multiaddrs.decode_multiaddr) that walks the components.
    pytest.param(
        "autonat_v2",
        b'\n"\n\x0b\x84\n\x00\x00\x02\x91\x02\x0f\xa1\xcd\x03\n\x00\n\x07*\x05\x00\x00\x01'
        b"\x0f\x11\xa1\x07\x06\x00\x00\x00\x00\x00\x00@",
        id="autonat_v2-ip6zone-lazy-parse",
    ),
    pytest.param(
        "mplex_core",
        b"\xf0\xc8\x02\x00\x03\x00\x00\x010\x02\x02hi\x06\x00",
        id="mplex_core-write-to-stream-reset-in-the-same-chunk",
    ),
    # p2pd client: proto2 parsing keeps a string field that is not UTF-8 as bytes, so a
    # StreamInfo's protocol (here b"\x910") came out as bytes where the client promises text.
    # Text fields are now checked (DaemonProtocolError).
    pytest.param(
        "p2pd_reply",
        b"\x02\x02\x08\x006\n&\x00$\x08\x01\x12 \x91D\xa2\x19\xdc\xa7)\x1aD\xe2\xa0\xf9\x9b"
        b'"\xdfZsK^\x16\xf5\xf2V\xc8\xdf\xce\xd4/\xe8t\xb7v\x12\x08\x04\x7f\x00\x00\x01\x06'
        b"\x0f\xa1\x1a\x02\x910",
        id="p2pd_reply-stream-info-protocol-not-utf8",
    ),
    # p2pd daemon: the same proto2 behaviour on the daemon's side: a STREAM_OPEN protocol that
    # is not UTF-8 (b"/echo/\xb1.0.0") reached the protocol check as bytes (TypeError). The
    # request's text fields (protocols, topic, tag) are now checked (ControlError).
    pytest.param(
        "p2pd_request",
        b"\x08\x02\x1a5\n&\x00$\x08\x01\x12 \x00\x00\x00 " + bytes(28) + b"\x12\x0b/echo/\xb1.0.0",
        id="p2pd_request-stream-open-protocol-not-utf8",
    ),
]


@pytest.mark.parametrize(("target", "data"), CRASHES)
def test_crash_input_runs_clean(target: str, data: bytes) -> None:
    load(target)(data)


@pytest.mark.anyio
async def test_noise_responder_refuses_a_low_order_ephemeral_key() -> None:
    ours, theirs = memory_connection_pair()
    with anyio.fail_after(10):
        await theirs.send(b"\x00\x20" + bytes(32))
        with pytest.raises(HandshakeError):
            await Noise().secure_inbound(ours, Identity.generate())
        with pytest.raises(anyio.EndOfStream):  # the connection was closed
            await theirs.receive()
