"""The in-process memory transport (``/memory/<id>``) for tests and simulations."""

from transports.memory._memory import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_CHUNKS,
    DEFAULT_NETWORK,
    MemoryListener,
    MemoryNetwork,
    MemoryTransport,
)

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_CHUNKS",
    "DEFAULT_NETWORK",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryTransport",
]
