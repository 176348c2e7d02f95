"""The Kademlia keyspace of the libp2p DHT: every key and peer ID is mapped to the SHA-256 digest of
its bytes (the binary peer ID, i.e. its multihash, for peers; the raw key for records and
providers), and closeness is the XOR of two digests read as a 256-bit unsigned integer
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#kademlia-routing-table)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from p2pstack.identity import PeerId

__all__ = [
    "KEY_BITS",
    "KEY_BYTES",
    "bucket_index",
    "closest",
    "common_prefix_length",
    "distance",
    "key_of",
    "peer_key",
]

#: Width of the keyspace.
KEY_BYTES = 32
KEY_BITS = KEY_BYTES * 8

T = TypeVar("T")


def key_of(data: bytes) -> bytes:
    """The keyspace point of a record or provider key (the SHA-256 digest of ``data``)."""
    return hashlib.sha256(data).digest()


def peer_key(peer: PeerId) -> bytes:
    """The keyspace point of ``peer``: the SHA-256 digest of its binary peer ID."""
    return hashlib.sha256(peer.to_bytes()).digest()


def distance(a: bytes, b: bytes) -> int:
    """XOR distance between two keyspace points, as an integer (0 when equal).

    Raises:
        ValueError: the points are not both :data:`KEY_BYTES` long.
    """
    if len(a) != KEY_BYTES or len(b) != KEY_BYTES:
        raise ValueError("keyspace points are 32-byte SHA-256 digests")
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def common_prefix_length(a: bytes, b: bytes) -> int:
    """Number of leading bits ``a`` and ``b`` share (:data:`KEY_BITS` when they are equal)."""
    return KEY_BITS - distance(a, b).bit_length()


def bucket_index(local: bytes, other: bytes) -> int:
    """The k-bucket of ``other`` in the table of ``local``: its common prefix length with
    ``local`` (bucket 0 holds the farthest half of the keyspace)."""
    return common_prefix_length(local, other)


def closest(target: bytes, items: Iterable[T], count: int, point: Callable[[T], bytes]) -> list[T]:
    """The ``count`` items nearest to ``target``, nearest first; ``point`` maps an item to its
    keyspace point (ties keep input order)."""
    target_int = int.from_bytes(target, "big")
    ranked = sorted(items, key=lambda item: int.from_bytes(point(item), "big") ^ target_int)
    return ranked[:count]
