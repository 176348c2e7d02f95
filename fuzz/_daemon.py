"""Fuzz targets for the daemon's control protocol: the ``Request`` parser and the
length-prefixed request decoder of a control connection (``p2pstack.roots.daemon._wire``)."""

from __future__ import annotations

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from p2pstack.framing import encode_lp
from p2pstack.roots.daemon._wire import ControlError, RequestDecoder, parse_request

__all__ = ["fuzz_p2pd_request", "fuzz_p2pd_stream"]

#: A small message bound, so that the size check is reached with short inputs.
_MAX_SIZE = 512


def fuzz_p2pd_request(data: bytes) -> None:
    """Parse a ``Request`` body: a typed command, or ``ControlError``; never anything else."""
    try:
        parse_request(data)
    except ControlError as exc:
        check(bool(str(exc)), "an error without a message (the client would see nothing)")


def fuzz_p2pd_stream(data: bytes) -> None:
    """Feed a control connection's bytes in chunks (control bits 1-3): the requests, re-framed,
    plus what is held are the input, and nothing over the bound is ever held."""
    control, wire = split_control(data)
    decoder = RequestDecoder(max_size=_MAX_SIZE)
    bodies: list[bytes] = []
    try:
        for piece in chunks(wire, CHUNK_SIZES[(control >> 1) & 7]):
            bodies.extend(decoder.feed(piece))
            check(decoder.buffered <= _MAX_SIZE + 10, f"{decoder.buffered} bytes held")
    except ControlError:
        return
    for body in bodies:
        check(len(body) <= _MAX_SIZE, f"a {len(body)}-byte request over the bound")
        fuzz_p2pd_request(body)
    rebuilt = b"".join(encode_lp(b) for b in bodies) + decoder.take_remaining()
    check(rebuilt == wire, "requests and the rest are not the input")
