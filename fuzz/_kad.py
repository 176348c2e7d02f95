"""Fuzz targets for the Kademlia DHT: the ``Message`` decoder, the length-prefixed stream decoder,
and the closest-peers lookup state machine driven by arbitrary events.
"""

from __future__ import annotations

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from p2pstack.framing import encode_lp
from p2pstack.identity import PeerId
from p2pstack.varint import MAX_UVARINT_LEN
from protocols.kad._keyspace import distance, key_of, peer_key
from protocols.kad._lookup import Lookup, LookupConfig
from protocols.kad._types import KadMessage, KadPeer, KadProtocolError
from protocols.kad._wire import (
    MAX_ADDRS_PER_MESSAGE,
    MAX_ADDRS_PER_PEER,
    MAX_PEERS_PER_LIST,
    KadMessageDecoder,
    decode_message,
    encode_message,
)

__all__ = ["fuzz_kad_lookup", "fuzz_kad_message", "fuzz_kad_stream"]

#: A small message bound, so that the size checks are reached with short inputs.
_MAX_SIZE = 1024
#: Peers the lookup target's events name: 15 remote peers and the local one (index 15).
_POOL = tuple(PeerId.from_bytes(b"\x12\x20" + key_of(bytes([i]))) for i in range(16))
_LOCAL = _POOL[15]
_TARGET = key_of(b"fuzz")


def _check_message(message: KadMessage) -> None:
    again = decode_message(encode_message(message), max_size=1 << 30)
    check(again == message, "message changed on re-encoding")
    addrs = 0
    for peers in (message.closer_peers, message.provider_peers):
        check(len(peers) <= MAX_PEERS_PER_LIST, f"{len(peers)} peers in one list")
        for peer in peers:
            check(len(peer.addrs) <= MAX_ADDRS_PER_PEER, f"{len(peer.addrs)} addresses")
            addrs += len(peer.addrs)
    check(addrs <= MAX_ADDRS_PER_MESSAGE, f"{addrs} addresses in one message")


def fuzz_kad_message(data: bytes) -> None:
    """Decode a ``Message`` protobuf (no prefix); what decodes re-encodes to an equal message
    within the decoder's bounds; anything else raises ``KadProtocolError``."""
    try:
        message = decode_message(data, max_size=_MAX_SIZE)
    except KadProtocolError:
        check(len(data) > 0, "the empty message (a PUT_VALUE) was refused")
        return
    _check_message(message)


def fuzz_kad_stream(data: bytes) -> None:
    """Feed a stream decoder in chunks (control bits 1-3); the messages, re-framed, are a prefix
    of the input and at most one partial message is held."""
    control, wire = split_control(data)
    decoder = KadMessageDecoder(max_size=_MAX_SIZE)
    framed = b""
    try:
        for chunk in chunks(wire, CHUNK_SIZES[(control >> 1) & 7]):
            for message in decoder.feed(chunk):
                _check_message(message)
                framed += encode_lp(encode_message(message))
            check(decoder.buffered < _MAX_SIZE + MAX_UVARINT_LEN, f"{decoder.buffered} held")
    except KadProtocolError:
        return
    check(len(framed) + decoder.buffered <= len(wire), "more bytes out than in")


def fuzz_kad_lookup(data: bytes) -> None:
    """Drive a lookup with arbitrary events. Control byte: bits 0-2 are k - 1, bits 3-4 alpha - 1,
    bits 5-7 select seeds. Then one byte per event, top 3 bits the kind (ask, answer, fail,
    time passes, stop, ...), low 5 bits the peer or the time; an answer takes two more bytes, a
    bit mask of the pool peers it names. Invariants: at most alpha in flight, nobody asked twice,
    never the local peer, counts add up, the result is ranked, and the deadline ends it."""
    control, events = split_control(data)
    config = LookupConfig(k=1 + (control & 7), alpha=1 + ((control >> 3) & 3), query_timeout=30.0)
    seeds = [KadPeer(peer_id=_POOL[i]) for i in range(16) if (control >> 5) & (1 << (i % 3))]
    lookup = Lookup(_TARGET, seeds, local=_LOCAL, config=config, now=0.0)
    asked: set[PeerId] = set()
    now = 0.0
    pos = 0
    while pos < len(events):
        kind, arg = events[pos] >> 5, events[pos] & 31
        pos += 1
        peer = _POOL[arg % 16]
        if kind == 0:
            for request in lookup.next_requests(now):
                check(request.peer_id not in asked, "a peer was asked twice")
                check(request.peer_id != _LOCAL, "the local peer was asked")
                asked.add(request.peer_id)
        elif kind in (1, 2):
            mask = int.from_bytes(events[pos : pos + 2].ljust(2, b"\x00"), "big")
            pos += 2
            named = [KadPeer(peer_id=_POOL[i]) for i in range(16) if mask & (1 << i)]
            lookup.on_response(peer, named, now)
        elif kind == 3:
            lookup.on_failure(peer, now)
        elif kind == 4:
            now += arg / 4
            lookup.handle_timer(now)
        elif kind == 5 and arg == 31:
            lookup.stop()
        _check_lookup(lookup, config, asked)
    lookup.handle_timer(now + config.query_timeout)
    check(lookup.done, "the query deadline did not end the lookup")


def _check_lookup(lookup: Lookup, config: LookupConfig, asked: set[PeerId]) -> None:
    in_flight = lookup.in_flight
    check(len(in_flight) <= config.alpha, f"{len(in_flight)} requests in flight")
    result = lookup.result()
    check(result.messages == len(asked), "messages differ from the requests made")
    check(result.messages == result.queried + result.failed + len(in_flight), "counts")
    check(len(result.closest) <= config.k, "more than k peers in the result")
    ranks = [distance(peer_key(p.peer_id), _TARGET) for p in result.closest]
    check(ranks == sorted(ranks), "result not ranked by distance")
    check((lookup.next_deadline() is None) == lookup.done, "deadline and done disagree")
    check(not result.closest or result.hops >= 1, "hops below 1")
