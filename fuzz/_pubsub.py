"""Fuzz target for the pubsub RPC: the length-prefixed stream decoder, the signing policies, the
floodsub and gossipsub router cores and the outbound queue, fed what a peer sends.

Input layout: byte 0 is a control byte (bits 0-2: how the rest is cut into ``feed`` calls, as
``CHUNK_SIZES``; bit 3: the router's policy is StrictNoSign); the rest is the peer's stream.
"""

from __future__ import annotations

import functools
import random

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from fuzz._noise import identities
from protocols.pubsub import (
    GOSSIPSUB_V12_PROTOCOL_ID,
    FloodsubConfig,
    FloodsubRouter,
    GossipsubConfig,
    GossipsubRouter,
    OutboundQueue,
    PubsubProtocolError,
    RpcDecoder,
    SignaturePolicy,
    ValidationError,
    decode_rpc,
    encode_rpc,
    validate_message,
)

__all__ = ["fuzz_pubsub_rpc"]

#: A small RPC bound, so that the size checks are reached with short inputs.
_MAX_RPC = 2048


_identities = functools.cache(identities)


def _routers(policy: SignaturePolicy) -> tuple[FloodsubRouter, GossipsubRouter]:
    local, peer = _identities()
    flood = FloodsubRouter(
        local.peer_id, config=FloodsubConfig(policy=policy), private_key=local.private_key
    )
    flood.subscribe("t")
    gossip = GossipsubRouter(
        local.peer_id,
        rng=random.Random(0),
        config=GossipsubConfig(policy=policy, do_px=True, idontwant_threshold=4),
        private_key=local.private_key,
    )
    gossip.subscribe("t", 0.0)
    gossip.add_peer(peer.peer_id, GOSSIPSUB_V12_PROTOCOL_ID)
    return flood, gossip


def fuzz_pubsub_rpc(data: bytes) -> None:
    """Decode a pubsub stream; every RPC re-encodes to an equal RPC, its messages pass or fail
    both policies with ``ValidationError``, the floodsub and gossipsub routers take it (with a
    heartbeat after each) or raise ``PubsubProtocolError``, and an outbound queue holding it
    builds RPCs within the size bound."""
    control, wire = split_control(data)
    peer = _identities()[1]
    policy = SignaturePolicy.STRICT_NO_SIGN if control & 8 else SignaturePolicy.STRICT_SIGN
    router, gossip = _routers(policy)
    decoder = RpcDecoder(_MAX_RPC)
    queue = OutboundQueue(max_bytes=4 * _MAX_RPC, max_control=64, max_rpc_size=_MAX_RPC)
    try:
        for chunk in chunks(wire, CHUNK_SIZES[control & 7]):
            for rpc in decoder.feed(chunk):
                check(decode_rpc(encode_rpc(rpc)) == rpc, "RPC changed on re-encoding")
                for message in rpc.publish:
                    for each in SignaturePolicy:
                        try:
                            validate_message(message, each)
                        except ValidationError:
                            pass
                result = router.handle_rpc(peer.peer_id, rpc, 0.0)
                for received in result.received:
                    router.forward(received)
                now = float(gossip.heartbeats)
                for received in gossip.handle_rpc(peer.peer_id, rpc, now).rpc.received:
                    gossip.forward(received, now)
                gossip.heartbeat(now + 1.0)
                queue.push(rpc)
                check(decoder.buffered <= _MAX_RPC + 10, "decoder holds too much")
    except PubsubProtocolError:
        pass
    while (out := queue.take()) is not None:
        check(len(encode_rpc(out)) <= _MAX_RPC, "queued RPC over the size bound")
