"""One rendezvous exchange each: REGISTER, DISCOVER (one request, one answer on a fresh stream)
and UNREGISTER (one message, no answer), as the client sends them
(https://github.com/libp2p/specs/blob/master/rendezvous/README.md#interaction).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import IdentityError, RemoteProtocolError
from p2pstack.framing import write_lp
from p2pstack.reqresp import StreamHost, request
from protocols.discovery.rendezvous._wire import (
    MAX_RESPONSE_SIZE,
    PROTOCOL_ID,
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    RendezvousRefused,
    Status,
    Unregister,
    decode_message,
    encode_message,
    open_record,
)

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = ["RendezvousRegistration", "send_discover", "send_register", "send_unregister"]

_log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class RendezvousRegistration:
    """A registration as discovered.

    Attributes:
        ns: its namespace.
        peer_id: the registered peer.
        addrs: its addresses (without ``/p2p/``).
        ttl: seconds it has left at the point.
        signed: True if it came as a verified signed peer record.
    """

    ns: str
    peer_id: PeerId
    addrs: tuple[Multiaddr, ...]
    ttl: int
    signed: bool


async def send_register(
    host: StreamHost, point: PeerId, msg: Register, *, timeout: float
) -> RegisterResponse:
    """Send REGISTER; return the point's answer, whatever its status.

    Raises:
        RemoteProtocolError: the answer is not a REGISTER_RESPONSE.
        DialError, RequestTimeout, ...: from the request.
    """
    raw = await request(host, point, [PROTOCOL_ID], encode_message(msg), timeout=timeout)
    response = decode_message(raw)
    if not isinstance(response, RegisterResponse):
        raise RemoteProtocolError(f"{point} answered REGISTER with {type(response).__name__}")
    return response


async def send_unregister(
    host: StreamHost, point: PeerId, msg: Unregister, *, timeout: float
) -> None:
    """Send UNREGISTER (the spec gives it no answer).

    Raises:
        TimeoutError: not sent within ``timeout``.
        DialError, ...: from opening the stream.
    """
    with anyio.fail_after(timeout):
        stream = await host.new_stream(point, [PROTOCOL_ID])
        try:
            await write_lp(stream, encode_message(msg))
            await stream.send_eof()
        finally:
            await stream.aclose()


async def send_discover(
    host: StreamHost, point: PeerId, msg: Discover, *, timeout: float, allow_unsigned: bool
) -> tuple[list[RendezvousRegistration], bytes]:
    """Send DISCOVER; return the registrations whose records open (others are skipped) and the
    point's cookie.

    Raises:
        RendezvousRefused: the point answered with an error status.
        RemoteProtocolError: the answer is not a DISCOVER_RESPONSE.
        DialError, RequestTimeout, ...: from the request.
    """
    raw = await request(
        host,
        point,
        [PROTOCOL_ID],
        encode_message(msg),
        timeout=timeout,
        max_response_size=MAX_RESPONSE_SIZE,
    )
    response = decode_message(raw)
    if not isinstance(response, DiscoverResponse):
        raise RemoteProtocolError(f"{point} answered DISCOVER with {type(response).__name__}")
    if response.status != Status.OK:
        raise RendezvousRefused(response.status, response.text)
    found = []
    for reg in response.registrations:
        try:
            opened = open_record(reg.record, allow_unsigned=allow_unsigned)
        except IdentityError as exc:
            _log.debug("skipping a registration from %s: %s", point, exc)
            continue
        found.append(
            RendezvousRegistration(
                ns=reg.ns,
                peer_id=opened.peer_id,
                addrs=opened.addrs,
                ttl=reg.ttl or 0,
                signed=opened.signed,
            )
        )
    return found, response.cookie
