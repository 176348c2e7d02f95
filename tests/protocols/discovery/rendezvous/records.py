"""Helpers for rendezvous tests: identities and their registration records."""

from __future__ import annotations

from multiaddr import Multiaddr

from p2pstack.identity import Identity, PeerRecord
from protocols.discovery.rendezvous import Register

ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001")


def signed_record(
    identity: Identity, seq: int = 1, addrs: tuple[Multiaddr, ...] = (ADDR,)
) -> bytes:
    record = PeerRecord(identity.peer_id, seq, addrs)
    return record.seal(identity.private_key).to_bytes()


def register(identity: Identity, ns: str = "app", ttl: int | None = 7200) -> Register:
    return Register(ns=ns, record=signed_record(identity), ttl=ttl)
