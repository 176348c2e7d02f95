"""Fuzz targets for AutoNAT: v1 and v2 message decoding (re-encoding what decodes) and the
server's address selection over whatever addresses a request carries."""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._common import check
from p2pstack.errors import RemoteProtocolError
from protocols.autonat import (
    DialRequest,
    V1Dial,
    decode_dial_back,
    decode_dial_back_response,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
    select_v1_addrs,
    select_v2_addr,
)

__all__ = ["autonat_seeds", "fuzz_autonat_v1", "fuzz_autonat_v2"]

_OBSERVED = Multiaddr("/ip4/127.0.0.1/tcp/50000")


def fuzz_autonat_v1(data: bytes) -> None:
    """Decode a v1 ``Message``: it decodes or raises RemoteProtocolError; what decodes
    re-encodes to an equal message; a DIAL's addresses go through the server's selection."""
    try:
        message = decode_v1(data)
    except RemoteProtocolError:
        return
    check(decode_v1(encode_v1(message)) == message, "v1 message changed on re-encoding")
    if isinstance(message, V1Dial):
        for allow in (False, True):
            chosen = select_v1_addrs(message.addrs, _OBSERVED, allow_private=allow, max_addrs=4)
            check(len(chosen) <= 4, "more than max_addrs selected")
            check(all("127.0.0.1" in str(a) for a in chosen), "a third-party IP selected")


def fuzz_autonat_v2(data: bytes) -> None:
    """Decode a v2 ``Message`` (and the same bytes as ``DialBack`` / ``DialBackResponse``):
    each decodes or raises RemoteProtocolError; a ``DialRequest``'s address selection keeps
    its index in range."""
    for decode in (decode_dial_back, decode_dial_back_response):
        try:
            decode(data)
        except RemoteProtocolError:
            pass
    try:
        message = decode_v2(data)
    except RemoteProtocolError:
        return
    check(decode_v2(encode_v2(message)) == message, "v2 message changed on re-encoding")
    if isinstance(message, DialRequest):
        chosen = select_v2_addr(message.addrs, _OBSERVED, allow_private=True)
        check(chosen is None or 0 <= chosen[0] < len(message.addrs), "index out of range")


def autonat_seeds() -> dict[str, dict[str, bytes]]:
    """Seed inputs: a DIAL, a DIAL_RESPONSE, and each v2 message."""
    from protocols.autonat import (
        DialDataRequest,
        DialDataResponse,
        DialResponse,
        V1DialResponse,
        V1Status,
    )

    tcp = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    other = Multiaddr("/ip4/10.0.0.2/udp/4001/quic-v1")
    return {
        "autonat_v1": {
            "dial": encode_v1(V1Dial(peer_id=b"\x00\x02\x08\x01", addrs=(tcp, other))),
            "response": encode_v1(
                V1DialResponse(status=V1Status.E_DIAL_REFUSED, text="no", addr=tcp)
            ),
        },
        "autonat_v2": {
            "request": encode_v2(DialRequest(addrs=(other, None, tcp), nonce=7)),
            "data_request": encode_v2(DialDataRequest(addr_idx=0, num_bytes=30_000)),
            "data": encode_v2(DialDataResponse(data=b"\x00" * 64)),
            "response": encode_v2(DialResponse(status=200, addr_idx=2, dial_status=100)),
        },
    }
