"""p2pstack: a typed Python networking stack that speaks the libp2p wire protocols.

The core package: identity, interfaces, errors, multistream-select, upgrader, host, builder,
peerstore and events. Transports live in ``transports``, protocols in ``protocols``; composition
roots (the CLI, default stacks, simulation scenarios) in :mod:`p2pstack.roots`.

The names below are loaded on first use (module ``__getattr__``, PEP 562), so that importing a
light module such as ``p2pstack.errors`` or ``p2pstack.interfaces`` does not load the host,
the protobuf runtime or the crypto libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from p2pstack.builder import open_host
    from p2pstack.connection import Connection, Stream
    from p2pstack.errors import P2PError
    from p2pstack.host import Host, HostConfig
    from p2pstack.peerstore import Peerstore

#: Public name → the module that defines it.
_EXPORTS = {
    "Connection": "p2pstack.connection",
    "Host": "p2pstack.host",
    "HostConfig": "p2pstack.host",
    "P2PError": "p2pstack.errors",
    "Peerstore": "p2pstack.peerstore",
    "Stream": "p2pstack.connection",
    "open_host": "p2pstack.builder",
}

__all__ = [
    "Connection",
    "Host",
    "HostConfig",
    "P2PError",
    "Peerstore",
    "Stream",
    "__version__",
    "open_host",
]


def __getattr__(name: str) -> object:
    """Import an exported name on first access and cache it in the package namespace.

    Args:
        name: the attribute asked for.

    Returns:
        The exported object.

    Raises:
        AttributeError: ``name`` is not exported by this package (nor a submodule).
    """
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
