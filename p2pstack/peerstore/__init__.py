"""The peerstore: what the host knows about other peers (addresses with TTLs, public keys,
protocols, metadata, signed peer records). ``PeerStore`` is the interface; ``Peerstore`` (also
``MemoryPeerstore``) keeps it in memory, ``FilePeerstore`` also saves it to a file."""

from p2pstack.peerstore._file import FilePeerstore, PeerstoreFileError
from p2pstack.peerstore._interface import (
    ADDR_TTL_CONNECTED,
    ADDR_TTL_PERMANENT,
    ADDR_TTL_RECENT,
    PeerStore,
    forget_if_anonymous,
)
from p2pstack.peerstore._memory import Peerstore, PeerstoreLimits, PeerstoreStatistics

MemoryPeerstore = Peerstore

__all__ = [
    "ADDR_TTL_CONNECTED",
    "ADDR_TTL_PERMANENT",
    "ADDR_TTL_RECENT",
    "FilePeerstore",
    "MemoryPeerstore",
    "PeerStore",
    "Peerstore",
    "PeerstoreFileError",
    "PeerstoreLimits",
    "PeerstoreStatistics",
    "forget_if_anonymous",
]
