"""How an AutoNAT server dials back: from a separate, short-lived host (its own peer ID, no
listeners), so that the test connection is a fresh one and never the requester's existing
connection (the spec lets the server use "a different IP and peer ID" for dial backs, and
go-libp2p does the same). The server's own host stays untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from p2pstack.errors import NETWORK_ERRORS

if TYPE_CHECKING:
    from p2pstack.host import Host

__all__ = ["DIAL_ERRORS", "DialerFactory"]

#: Opens a fresh host to dial back from; it is closed after each dial back. Composition roots
#: build one with the same transports as the server (``p2pstack.roots.defaults``).
DialerFactory = Callable[[], AbstractAsyncContextManager["Host"]]

#: What a failed dial back raises.
DIAL_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError, OSError)
