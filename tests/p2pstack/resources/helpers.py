"""Helpers for resource manager tests."""

from __future__ import annotations

from typing import Any

import attrs
from multiaddr import Multiaddr

from p2pstack.identity import Identity, PeerId
from p2pstack.resources import LimitedResourceManager, Limits


def manager(**fields: Any) -> LimitedResourceManager:
    """A manager with no limits except ``fields`` (``Limits`` fields)."""
    return LimitedResourceManager(attrs.evolve(Limits.unlimited(), **fields))


def addr(ip: str, port: int = 4001) -> Multiaddr:
    proto = "ip6" if ":" in ip else "ip4"
    return Multiaddr(f"/{proto}/{ip}/tcp/{port}")


def peer() -> PeerId:
    return Identity.generate().peer_id
