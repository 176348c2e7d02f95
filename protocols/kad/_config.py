"""Configuration of the ``Kad`` service (defaults and how they compare with go/js are in the
``protocols.kad`` package docstring)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal, Protocol, cast

import attrs
from multiaddr import Multiaddr

from p2pstack.multiaddrs import parse_multiaddr
from protocols.kad._store import (
    MemoryProviderStore,
    MemoryRecordStore,
    ProviderStore,
    RecordStore,
)
from protocols.kad._types import PROTOCOL_ID
from protocols.kad._wire import MAX_MESSAGE_SIZE

__all__ = ["Closable", "KadConfig", "KadMode", "has_public_addr", "open_stores"]

#: ``server`` answers queries and enters other peers' tables; ``client`` only queries;
#: ``auto`` is a server while the host has a publicly routable listen address.
KadMode = Literal["server", "client", "auto"]

_HOUR = 3600.0


def _addrs(values: Iterable[Multiaddr | str]) -> tuple[Multiaddr, ...]:
    return tuple(parse_multiaddr(v) for v in values)


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


_positive = attrs.validators.gt(0)
_positive_float = attrs.validators.gt(0.0)


@attrs.frozen(kw_only=True)
class KadConfig:
    """Settings of one ``Kad`` service. Derive variants with ``attrs.evolve``.

    Attributes:
        mode: ``"server"`` (default), ``"client"`` or ``"auto"``.
        protocol_id: the DHT protocol (``/ipfs/kad/1.0.0`` is the public Amino DHT; a private
            network uses its own, such as ``/myapp/kad/1.0.0``).
        k: bucket size, replication factor and lookup width.
        alpha: requests in flight per lookup.
        request_timeout: seconds for one request (dial, negotiation and answer included).
        query_timeout: seconds for a whole lookup.
        quorum: valid values a ``get_value`` collects before it stops asking.
        passthrough_namespaces: record namespaces accepted without validation (tests).
        record_ttl: seconds a stored record lives.
        record_republish: seconds between republishing the records this node put; ``None``
            never republishes them (they live ``record_ttl`` on the peers that stored them).
        provider_ttl: seconds a provider record lives.
        provider_republish: seconds between republishing this node's provider records.
        provider_expiry_interval: seconds between sweeps of expired provider records.
        refresh_interval: seconds after which an untouched bucket is refreshed by a lookup.
        random_walk_interval: seconds between two lookups of a random key whose peers are
            offered on ``Kad.discovery`` (the ``"dht"`` discovery source); ``None`` (default):
            no random walk.
        liveness_timeout: seconds for the ping that decides whether a least-recently-seen peer
            of a full bucket stays.
        max_inbound_streams: inbound DHT streams served at once, all peers together.
        max_inbound_per_peer: inbound DHT streams one peer may hold at once.
        max_message_size: largest DHT message accepted, in bytes.
        idle_timeout: seconds an inbound stream may wait for its next request.
        max_concurrent_writes: PUT_VALUE / ADD_PROVIDER requests in flight per put or provide.
        storage: path of a sqlite database for records and providers (``None``: in memory).
        bootstrap: peers (``/.../p2p/<id>`` addresses) to join through when the host starts.
    """

    mode: KadMode = "server"
    protocol_id: str = PROTOCOL_ID
    k: int = attrs.field(default=20, validator=_positive)
    alpha: int = attrs.field(default=3, validator=_positive)
    request_timeout: float = attrs.field(default=10.0, validator=_positive_float)
    query_timeout: float = attrs.field(default=60.0, validator=_positive_float)
    quorum: int = attrs.field(default=16, validator=_positive)
    passthrough_namespaces: tuple[str, ...] = attrs.field(default=(), converter=_names)
    record_ttl: float = attrs.field(default=36 * _HOUR, validator=_positive_float)
    record_republish: float | None = attrs.field(
        default=cast("float | None", 22 * _HOUR),
        validator=attrs.validators.optional(attrs.validators.gt(0.0)),
    )
    provider_ttl: float = attrs.field(default=48 * _HOUR, validator=_positive_float)
    provider_republish: float = attrs.field(default=22 * _HOUR, validator=_positive_float)
    provider_expiry_interval: float = attrs.field(default=_HOUR, validator=_positive_float)
    refresh_interval: float = attrs.field(default=600.0, validator=_positive_float)
    random_walk_interval: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0))
    )
    liveness_timeout: float = attrs.field(default=10.0, validator=_positive_float)
    max_inbound_streams: int = attrs.field(default=128, validator=_positive)
    max_inbound_per_peer: int = attrs.field(default=8, validator=_positive)
    max_message_size: int = attrs.field(default=MAX_MESSAGE_SIZE, validator=_positive)
    idle_timeout: float = attrs.field(default=60.0, validator=_positive_float)
    max_concurrent_writes: int = attrs.field(default=20, validator=_positive)
    storage: str | None = None
    bootstrap: tuple[Multiaddr, ...] = attrs.field(default=(), converter=_addrs)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("server", "client", "auto"):
            raise ValueError(f"KadConfig.mode must be server, client or auto, not {self.mode!r}")
        if self.provider_republish >= self.provider_ttl:
            raise ValueError("provider_republish must be shorter than provider_ttl")
        if self.record_republish is not None and self.record_republish >= self.record_ttl:
            raise ValueError("record_republish must be shorter than record_ttl")


def has_public_addr(addrs: Iterable[Multiaddr]) -> bool:
    """Whether any of ``addrs`` has a globally routable IP address (what ``auto`` mode asks).

    Args:
        addrs: listen addresses.

    Returns:
        True if one starts with an ``/ip4`` or ``/ip6`` address that is global.
    """
    for addr in addrs:
        for proto, value in addr.items():
            if proto.name in ("ip4", "ip6") and ipaddress.ip_address(str(value)).is_global:
                return True
            break
    return False


class Closable(Protocol):
    """A resource the service opened and must close (the sqlite store)."""

    def close(self) -> None: ...


def open_stores(
    config: KadConfig, records: RecordStore | None, providers: ProviderStore | None
) -> tuple[RecordStore, ProviderStore, Closable | None]:
    """The stores a ``Kad`` service uses: the given ones, else ``config.storage`` (sqlite),
    else bounded memory stores.

    Returns:
        The record store, the provider store, and the sqlite store opened here (or ``None``).

    Raises:
        sqlite3.Error: ``config.storage`` cannot be opened.
    """
    opened: Closable | None = None
    if config.storage is not None and (records is None or providers is None):
        from protocols.kad._sqlite import SqliteStore  # sqlite3 only when it is used

        sqlite = SqliteStore(
            config.storage, record_ttl=config.record_ttl, provider_ttl=config.provider_ttl
        )
        opened = sqlite
        # (``is None``, not ``or``: an empty store is falsy.)
        records = sqlite.records if records is None else records
        providers = sqlite.providers if providers is None else providers
    if records is None:
        records = MemoryRecordStore(ttl=config.record_ttl)
    if providers is None:
        providers = MemoryProviderStore(ttl=config.provider_ttl)
    return records, providers, opened
