"""ALPN for libp2p TLS: inlined muxer negotiation
(https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md#multiplexer-negotiation-over-tls).

"The protocol IDs of the stream multiplexers are sent, followed by the "libp2p" protocol code
[...] ordered by the client's preference. The server SHOULD respect the client's preference
and pick the first protocol from the list that it supports." If ``libp2p`` is chosen, the muxer
is negotiated with multistream-select after the handshake.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pstack.identity import ALPN_LIBP2P

__all__ = ["MAX_ALPN_PROTOCOLS", "alpn_offer", "early_muxer_of", "select_alpn"]

#: Most ALPN protocol ids we offer or look at; a ClientHello offering more is only searched
#: this far (libp2p peers offer a couple of muxers and ``libp2p``).
MAX_ALPN_PROTOCOLS = 32

_LIBP2P = ALPN_LIBP2P.encode()


def alpn_offer(muxers: Sequence[str]) -> list[bytes]:
    """The client's ALPN list: our muxer ids in preference order, then ``libp2p``.

    Args:
        muxers: our muxer protocol ids, most preferred first. Ids that do not fit an ALPN
            entry (1 to 255 bytes) are left out.

    Returns:
        The encoded protocol ids, ``libp2p`` last.
    """
    offer = [m.encode() for m in muxers[: MAX_ALPN_PROTOCOLS - 1]]
    return [p for p in offer if 0 < len(p) < 256 and p != _LIBP2P] + [_LIBP2P]


def select_alpn(offered: Sequence[bytes], muxers: Sequence[str]) -> bytes | None:
    """The server's choice: the client's first offered protocol that we support.

    Args:
        offered: the client's ALPN list, in its preference order.
        muxers: our muxer protocol ids.

    Returns:
        A muxer id or ``libp2p``; ``None`` when nothing offered is supported (the spec: "The
        server MUST abort the handshake if it doesn't support any of the application protocols
        offered by the client").
    """
    supported = {m.encode() for m in muxers}
    supported.add(_LIBP2P)
    for protocol in offered[:MAX_ALPN_PROTOCOLS]:
        if protocol in supported:
            return protocol
    return None


def early_muxer_of(selected: bytes) -> str | None:
    """The muxer an ALPN result names, or ``None`` when it is ``libp2p`` (negotiate later).

    Args:
        selected: the negotiated ALPN protocol.

    Returns:
        The muxer protocol id, or ``None``.
    """
    if selected == _LIBP2P:
        return None
    return selected.decode("utf-8", errors="replace")
