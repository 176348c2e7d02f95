"""The rendezvous point's registry: a sans-IO core holding registrations by namespace, with TTL
expiry, limits and pagination cookies
(https://github.com/libp2p/specs/blob/master/rendezvous/README.md#the-protocol).

No I/O, no clock, no randomness: the driver passes ``now`` and the cookie ``nonce`` in, calls
``handle_request(peer, data, now)`` for each request read from a stream, and ``handle_timer``
at ``next_deadline()``.

Cookies are opaque to clients: ``version | nonce | namespace tag | sequence number``. Every
registration (and every refresh) gets the next sequence number, so "registrations newer than
the cookie" are exactly those the cookie's holder has not yet seen. A cookie from another point,
another run of this one, another namespace or the future is rejected with ``E_INVALID_COOKIE``.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import struct

import attrs

from p2pstack.errors import IdentityError, RemoteProtocolError
from p2pstack.identity import PeerId
from protocols.discovery.rendezvous._wire import (
    DEFAULT_TTL,
    MAX_NAMESPACE_LENGTH,
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Status,
    Unregister,
    decode_message,
    encode_message,
    encode_peer_info,
    open_record,
)

__all__ = ["Registration", "Registry", "RegistryConfig", "RegistryStatistics"]

_COOKIE = struct.Struct(">B8s8sQ")
_COOKIE_VERSION = 1
#: Bytes of a DISCOVER_RESPONSE apart from its registrations (status, cookie, text, tags).
_RESPONSE_OVERHEAD = 256


@attrs.frozen(kw_only=True)
class RegistryConfig:
    """Limits of a rendezvous point (defaults: the spec's recommendations).

    Attributes:
        min_ttl: shortest registration accepted, seconds (spec: 2 h).
        max_ttl: longest, seconds (spec: 72 h).
        default_ttl: TTL of a REGISTER without one (spec: 2 h).
        max_namespace_length: UTF-8 bytes (spec: 255).
        max_per_peer: registrations one peer may hold (spec: 1000).
        max_registrations: registrations in all; beyond, ``E_UNAVAILABLE``. With records of at
            most ``MAX_RECORD_SIZE`` bytes this bounds the registry's memory.
        max_discover_limit: registrations per DISCOVER_RESPONSE (spec: 1000).
        max_response_size: bytes of registrations per response; the cookie pages on.
        allow_unsigned: accept py-libp2p's unsigned ``PeerInfo`` records (the peer ID must
            still be the sender's).
        peer_info_responses: answer every DISCOVER in py-libp2p's ``PeerInfo`` form; otherwise
            only peers that registered in that form get it (py-libp2p cannot read envelopes).
    """

    min_ttl: int = 2 * 3600
    max_ttl: int = 72 * 3600
    default_ttl: int = DEFAULT_TTL
    max_namespace_length: int = MAX_NAMESPACE_LENGTH
    max_per_peer: int = 1000
    max_registrations: int = 8192
    max_discover_limit: int = 1000
    max_response_size: int = 1024 * 1024
    allow_unsigned: bool = True
    peer_info_responses: bool = False


@attrs.define(kw_only=True)
class Registration:
    """One stored registration (the registry's own; do not mutate)."""

    ns: str
    peer: PeerId
    record: bytes
    peer_info: bytes
    signed: bool
    expires: float
    seq: int


@attrs.frozen(kw_only=True)
class RegistryStatistics:
    registrations: int
    namespaces: int
    peers: int
    expired: int


def _ns_tag(ns: str) -> bytes:
    return hashlib.blake2b(ns.encode(), digest_size=8).digest()


class Registry:
    """Registrations by namespace and peer.

    Args:
        config: the limits.
        nonce: 8 random bytes naming this registry in its cookies.

    Raises:
        ValueError: ``nonce`` is not 8 bytes or a limit is not positive.
    """

    def __init__(self, config: RegistryConfig | None = None, *, nonce: bytes) -> None:
        self.config = config = config or RegistryConfig()
        if len(nonce) != 8:
            raise ValueError("the cookie nonce must be 8 bytes")
        if min(config.max_per_peer, config.max_registrations, config.max_discover_limit) < 1:
            raise ValueError("registry limits must be positive")
        if not 0 < config.min_ttl <= config.default_ttl <= config.max_ttl:
            raise ValueError("need 0 < min_ttl <= default_ttl <= max_ttl")
        self._nonce = nonce
        # Both dicts are kept in sequence order: a refresh removes and re-inserts.
        self._all: dict[tuple[str, PeerId], Registration] = {}
        self._by_ns: dict[str, dict[PeerId, Registration]] = {}
        self._per_peer: dict[PeerId, int] = {}
        self._unsigned_per_peer: dict[PeerId, int] = {}
        self._expiry: list[tuple[float, int, str, PeerId]] = []
        self._seq = 0
        self._expired = 0

    # -- queries -------------------------------------------------------------------------------

    def statistics(self) -> RegistryStatistics:
        return RegistryStatistics(
            registrations=len(self._all),
            namespaces=len(self._by_ns),
            peers=len(self._per_peer),
            expired=self._expired,
        )

    def registrations(self, ns: str = "") -> list[Registration]:
        """Live registrations of ``ns`` (all namespaces for ``""``), oldest first."""
        source = self._all.values() if not ns else self._by_ns.get(ns, {}).values()
        return list(source)

    # -- timers --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the next registration expires, or None."""
        self._drop_stale_heads()
        return self._expiry[0][0] if self._expiry else None

    def handle_timer(self, now: float) -> None:
        """Remove registrations expired at ``now``."""
        while self._expiry and self._expiry[0][0] <= now:
            _, seq, ns, peer = heapq.heappop(self._expiry)
            reg = self._all.get((ns, peer))
            if reg is not None and reg.seq == seq:
                self._remove(reg)
                self._expired += 1

    def _drop_stale_heads(self) -> None:
        while self._expiry:
            _, seq, ns, peer = self._expiry[0]
            reg = self._all.get((ns, peer))
            if reg is not None and reg.seq == seq:
                return
            heapq.heappop(self._expiry)

    # -- requests ------------------------------------------------------------------------------

    def handle_request(self, peer: PeerId, data: bytes, now: float) -> bytes | None:
        """Answer one request from ``peer``.

        Returns:
            The encoded response, or None (UNREGISTER has none).

        Raises:
            RemoteProtocolError: undecodable, or not a request (the driver closes the stream).
        """
        self.handle_timer(now)
        msg = decode_message(data)
        match msg:
            case Register():
                return encode_message(self.register(peer, msg, now))
            case Unregister():
                self.unregister(peer, msg.ns)
                return None
            case Discover():
                return encode_message(self.discover(peer, msg, now))
            case _:
                raise RemoteProtocolError(f"{type(msg).__name__} is not a rendezvous request")

    def _check_ns(self, ns: str) -> bool:
        return 0 < len(ns.encode()) <= self.config.max_namespace_length

    def register(self, peer: PeerId, msg: Register, now: float) -> RegisterResponse:
        """Add or refresh ``peer``'s registration in ``msg.ns``."""
        cfg = self.config
        if not self._check_ns(msg.ns):
            return RegisterResponse(status=Status.E_INVALID_NAMESPACE, text="bad namespace")
        ttl = cfg.default_ttl if msg.ttl is None else msg.ttl
        if not cfg.min_ttl <= ttl <= cfg.max_ttl:
            text = f"ttl must be within [{cfg.min_ttl}, {cfg.max_ttl}] s"
            return RegisterResponse(status=Status.E_INVALID_TTL, text=text)
        try:
            opened = open_record(msg.record, allow_unsigned=cfg.allow_unsigned)
        except IdentityError as exc:
            text = str(exc)[:200]
            return RegisterResponse(status=Status.E_INVALID_SIGNED_PEER_RECORD, text=text)
        if opened.peer_id != peer:
            text = "a peer may register only itself"
            return RegisterResponse(status=Status.E_NOT_AUTHORIZED, text=text)
        old = self._all.get((msg.ns, peer))
        if old is None:
            if self._per_peer.get(peer, 0) >= cfg.max_per_peer:
                text = f"at most {cfg.max_per_peer} registrations per peer"
                return RegisterResponse(status=Status.E_UNAVAILABLE, text=text)
            if len(self._all) >= cfg.max_registrations:
                return RegisterResponse(status=Status.E_UNAVAILABLE, text="registry full")
        else:
            self._remove(old)
        self._seq += 1
        reg = Registration(
            ns=msg.ns,
            peer=peer,
            record=msg.record,
            peer_info=msg.record if not opened.signed else encode_peer_info(peer, opened.addrs),
            signed=opened.signed,
            expires=now + ttl,
            seq=self._seq,
        )
        self._add(reg)
        heapq.heappush(self._expiry, (reg.expires, reg.seq, reg.ns, peer))
        if len(self._expiry) > 2 * len(self._all) + 64:
            self._compact_expiry()
        return RegisterResponse(status=Status.OK, ttl=ttl)

    def unregister(self, peer: PeerId, ns: str) -> None:
        """Remove ``peer``'s registration in ``ns`` (a no-op if there is none)."""
        reg = self._all.get((ns, peer))
        if reg is not None:
            self._remove(reg)

    def discover(self, peer: PeerId, msg: Discover, now: float) -> DiscoverResponse:
        """Registrations of ``msg.ns`` newer than ``msg.cookie``, oldest first."""
        cfg = self.config
        if msg.ns and not self._check_ns(msg.ns):
            return DiscoverResponse(status=Status.E_INVALID_NAMESPACE, text="bad namespace")
        after = 0
        if msg.cookie:
            parsed = self._parse_cookie(msg.cookie, msg.ns)
            if parsed is None:
                return DiscoverResponse(status=Status.E_INVALID_COOKIE, text="bad cookie")
            after = parsed
        limit = cfg.max_discover_limit if msg.limit == 0 else min(msg.limit, cfg.max_discover_limit)
        legacy = cfg.peer_info_responses or peer in self._unsigned_per_peer
        out: list[Register] = []
        size = _RESPONSE_OVERHEAD
        last = after
        for reg in self.registrations(msg.ns):
            if reg.seq <= after:
                continue
            record = reg.peer_info if legacy else reg.record
            size += len(record) + len(reg.ns) + 32
            if len(out) >= limit or (out and size > cfg.max_response_size):
                break
            ttl = max(1, math.ceil(reg.expires - now))
            out.append(Register(ns=reg.ns, record=record, ttl=ttl))
            last = reg.seq
        cookie = _COOKIE.pack(_COOKIE_VERSION, self._nonce, _ns_tag(msg.ns), last)
        return DiscoverResponse(status=Status.OK, registrations=tuple(out), cookie=cookie)

    def _parse_cookie(self, cookie: bytes, ns: str) -> int | None:
        if len(cookie) != _COOKIE.size:
            return None
        version, nonce, tag, seq = _COOKIE.unpack(cookie)
        if version != _COOKIE_VERSION or nonce != self._nonce or tag != _ns_tag(ns):
            return None
        return seq if seq <= self._seq else None

    # -- bookkeeping ---------------------------------------------------------------------------

    def _add(self, reg: Registration) -> None:
        self._all[(reg.ns, reg.peer)] = reg
        self._by_ns.setdefault(reg.ns, {})[reg.peer] = reg
        self._per_peer[reg.peer] = self._per_peer.get(reg.peer, 0) + 1
        if not reg.signed:
            self._unsigned_per_peer[reg.peer] = self._unsigned_per_peer.get(reg.peer, 0) + 1

    def _remove(self, reg: Registration) -> None:
        del self._all[(reg.ns, reg.peer)]
        ns_regs = self._by_ns[reg.ns]
        del ns_regs[reg.peer]
        if not ns_regs:
            del self._by_ns[reg.ns]
        _decrement(self._per_peer, reg.peer)
        if not reg.signed:
            _decrement(self._unsigned_per_peer, reg.peer)

    def _compact_expiry(self) -> None:
        self._expiry = [(r.expires, r.seq, r.ns, r.peer) for r in self._all.values()]
        heapq.heapify(self._expiry)


def _decrement(counts: dict[PeerId, int], peer: PeerId) -> None:
    left = counts[peer] - 1
    if left:
        counts[peer] = left
    else:
        del counts[peer]
