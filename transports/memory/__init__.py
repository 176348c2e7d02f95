"""The in-process memory transport (``/memory/<id>``) for tests and simulations."""

from transports.memory._memory import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_CHUNKS,
    DEFAULT_NETWORK,
    MemoryListener,
    MemoryNetwork,
    MemoryTransport,
)
from transports.memory._upgraded import UpgradedMemoryListener, UpgradedMemoryTransport

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_CHUNKS",
    "DEFAULT_NETWORK",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryTransport",
    "UpgradedMemoryListener",
    "UpgradedMemoryTransport",
]
