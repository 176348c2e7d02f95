"""p2pstack: a typed Python networking stack that speaks the libp2p wire protocols.

The core package: identity, interfaces, errors, multistream-select, upgrader, host, builder,
peerstore and events. Transports live in ``transports``, protocols in ``protocols``.
"""

__version__ = "0.1.0"

from p2pstack.builder import open_host
from p2pstack.connection import Connection, Stream
from p2pstack.errors import P2PError
from p2pstack.host import Host, HostConfig
from p2pstack.peerstore import Peerstore

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
