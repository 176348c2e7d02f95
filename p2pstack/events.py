"""Host events: frozen records in the past tense, unioned into ``HostEvent`` for ``match``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Connection
    from p2pstack.identity import PeerId

__all__ = [
    "ConnectionClosed",
    "ConnectionOpened",
    "HostEvent",
    "LocalProtocolsChanged",
    "PeerIdentified",
]


@attrs.frozen(kw_only=True)
class ConnectionOpened:
    """A connection finished its upgrade and was added to the host."""

    connection: Connection


@attrs.frozen(kw_only=True)
class ConnectionClosed:
    """A connection ended; ``reason`` is ``None`` for a clean close."""

    connection: Connection
    reason: BaseException | None = None


@attrs.frozen(kw_only=True)
class PeerIdentified:
    """The identify protocol learned what a peer runs (sent by the identify service)."""

    peer_id: PeerId
    protocols: Sequence[str]
    listen_addrs: Sequence[Multiaddr]
    agent_version: str
    protocol_version: str
    observed_addr: Multiaddr | None


@attrs.frozen(kw_only=True)
class LocalProtocolsChanged:
    """A stream handler was added or removed after the host started."""

    protocols: Sequence[str]


HostEvent = ConnectionOpened | ConnectionClosed | PeerIdentified | LocalProtocolsChanged
