"""Multiaddr helpers: parsing user input with clear errors and handling the ``/p2p/<id>`` suffix
(https://github.com/libp2p/specs/blob/master/addressing/README.md)."""

from __future__ import annotations

from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrLibError
from multiaddr.protocols import P_MEMORY, P_P2P

from p2pstack._decode_multiaddr import decode_multiaddr
from p2pstack.errors import InvalidPeerIdError
from p2pstack.identity import PeerId

__all__ = ["decode_multiaddr", "memory_id", "parse_multiaddr", "split_peer_id", "with_peer_id"]


def parse_multiaddr(addr: Multiaddr | str) -> Multiaddr:
    """Parse text into a ``Multiaddr``.

    Raises:
        ValueError: ``addr`` is not a valid multiaddr (the message names it and says why).
    """
    if isinstance(addr, Multiaddr):
        return addr
    try:
        return Multiaddr(addr)
    except (MultiaddrLibError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid multiaddr {addr!r}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # The library repeats the input ("Invalid MultiAddr 'x': reason (string: x)"); keep the reason.
    if ": " in text:
        text = text.split(": ", 1)[1]
    return text.split(" (string:", 1)[0] or type(exc).__name__


def split_peer_id(addr: Multiaddr) -> tuple[Multiaddr | None, PeerId | None]:
    """Split ``/ip4/../tcp/../p2p/<id>`` into the transport address and the peer ID.

    Returns:
        ``(transport_addr, peer_id)``; either is ``None`` when absent (``/p2p/<id>`` alone has
        no transport address).

    Raises:
        ValueError: the ``/p2p/`` value is not a valid peer ID.
    """
    text = addr.get_peer_id()
    if text is None:
        return addr, None
    try:
        peer = PeerId.from_string(text)
    except InvalidPeerIdError as exc:
        raise ValueError(f"invalid peer ID in {addr}: {exc}") from None
    rest = addr.decapsulate_code(P_P2P)
    return (rest if str(rest) not in ("", "/") else None), peer


def with_peer_id(addr: Multiaddr, peer: PeerId) -> Multiaddr:
    """``addr`` with ``/p2p/<peer>`` appended (unless it already ends with it)."""
    if addr.get_peer_id() is not None:
        return addr
    return addr.encapsulate(f"/p2p/{peer.to_base58()}")


def memory_id(addr: Multiaddr) -> int | None:
    """The number of an in-process address ``/memory/<n>`` (a trailing ``/p2p/<id>`` is
    ignored), or ``None`` for any other address."""
    items = addr.items()
    if len(items) == 2 and items[1][0].code == P_P2P:
        items = items[:1]
    if len(items) != 1 or items[0][0].code != P_MEMORY or items[0][1] is None:
        return None
    return int(items[0][1])
