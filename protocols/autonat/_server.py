"""The AutoNAT servers' request screening, without I/O: what a v1 or v2 request may cost us
before anything is dialed (the refusal to send, or what to dial), and the v2 dial-data count.
The drivers (``_v1``, ``_v2``) add the rate limits, the concurrency cap and the dial itself.
"""

from __future__ import annotations

import attrs
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from protocols.autonat._policy import select_v1_addrs, select_v2_addr
from protocols.autonat._wire import (
    MAX_DIAL_DATA_CHUNK,
    DialDataResponse,
    DialRequest,
    DialResponse,
    ResponseStatus,
    V1Dial,
    V1DialResponse,
    V1Status,
    V2Message,
)

__all__ = ["DialDataCounter", "Requester", "V2Target", "screen_v1", "screen_v2"]


@attrs.frozen(kw_only=True)
class Requester:
    """What a server knows of the connection a request came over.

    Attributes:
        peer_id: the requester's peer ID bytes (proven by the security handshake).
        observed: its address as we see it.
        limited: the connection is relayed (its IP says nothing about the requester).
    """

    peer_id: bytes
    observed: Multiaddr
    limited: bool


@attrs.frozen(kw_only=True)
class V2Target:
    """The one address a v2 server dials: its index, and whether dial data is due first."""

    index: int
    addr: Multiaddr
    needs_data: bool


def screen_v1(
    request: V1Dial | V1DialResponse, who: Requester, *, allow_private: bool, max_addrs: int
) -> V1DialResponse | list[Multiaddr]:
    """Check a v1 request.

    Returns:
        The answer refusing it, or the addresses to dial (on the observed IP only).
    """
    if not isinstance(request, V1Dial):
        return V1DialResponse(status=V1Status.E_BAD_REQUEST, text="expected a DIAL message")
    if request.peer_id != who.peer_id:
        return V1DialResponse(status=V1Status.E_BAD_REQUEST, text="peer ID is not the requester's")
    if who.limited:
        # "implementations MUST NOT accept dial requests via relayed connections"
        return V1DialResponse(
            status=V1Status.E_DIAL_REFUSED, text="refusing requests over a relayed connection"
        )
    addrs = select_v1_addrs(
        request.addrs, who.observed, allow_private=allow_private, max_addrs=max_addrs
    )
    if not addrs:
        return V1DialResponse(
            status=V1Status.E_DIAL_REFUSED, text="no dialable address on the observed IP"
        )
    return addrs


def screen_v2(
    request: DialRequest, who: Requester, *, allow_private: bool
) -> DialResponse | V2Target:
    """Check a v2 request.

    Returns:
        The answer refusing it (``E_REQUEST_REJECTED`` over a relayed connection,
        ``E_DIAL_REFUSED`` when no address qualifies), or the address to dial.
    """
    if who.limited:
        return DialResponse(status=ResponseStatus.E_REQUEST_REJECTED)
    chosen = select_v2_addr(request.addrs, who.observed, allow_private=allow_private)
    if chosen is None:
        return DialResponse(status=ResponseStatus.E_DIAL_REFUSED)
    index, addr, needs_data = chosen
    return V2Target(index=index, addr=addr, needs_data=needs_data)


class DialDataCounter:
    """Counts the dial data a v2 client sends ("Only the size of the data field of
    DialDataResponse protobufs is counted"); the last chunk may go past the amount asked.

    Args:
        wanted: bytes asked for in the ``DialDataRequest``.
    """

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.received = 0

    @property
    def done(self) -> bool:
        """Enough data arrived: the address may be dialed."""
        return self.received >= self.wanted

    def feed(self, message: V2Message) -> bool:
        """Count one message from the client.

        Returns:
            ``done`` after it.

        Raises:
            RemoteProtocolError: not a ``DialDataResponse``, or a chunk that is empty or over
                4096 bytes (an empty chunk would let a client stall the server for free).
        """
        if not isinstance(message, DialDataResponse):
            raise RemoteProtocolError("expected DialDataResponse")
        if not 0 < len(message.data) <= MAX_DIAL_DATA_CHUNK:
            raise RemoteProtocolError(f"dial data chunk of {len(message.data)} bytes")
        self.received += len(message.data)
        return self.done
