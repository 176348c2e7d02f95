"""The strict binary multiaddr decoder, in a module of its own so that the identity package
can use it (``p2pstack.multiaddrs``, which re-exports it, imports identity)."""

from __future__ import annotations

from multiaddr import Multiaddr

__all__ = ["decode_multiaddr"]


def decode_multiaddr(data: bytes) -> Multiaddr | None:
    """A multiaddr from its binary form as a peer sent it, or ``None`` if it is not exactly one.

    The multiaddr library decodes leniently (``b"\\x04"`` renders as ``/ip4/0.0.0.0``) and
    lazily: its text form and its component walk (``items()``, ``len()``) each parse the bytes
    on their own, and some inputs pass one and fail the other. An address is kept only if its
    text form parses, encodes back to exactly ``data``, and its components can be walked, so
    that nothing fails later in whoever uses it.
    """
    if not data:
        return None
    try:
        addr = Multiaddr(str(Multiaddr(data)))
        canonical = addr.to_bytes() == data
        list(addr.items())
    except Exception:  # the library raises many unrelated types on bad bytes
        return None
    return addr if canonical else None
