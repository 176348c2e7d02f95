"""AutoNAT v2 (``/libp2p/autonat/2/dial-request``, ``/libp2p/autonat/2/dial-back``) client and
server (https://github.com/libp2p/specs/blob/master/autonat/autonat-v2.md).

Server: dials exactly one address, the first it is willing to dial; for an IP other than the
requester's observed one it first asks for ``ServerLimits.dial_data_bytes`` of dial data
(amplification attack prevention) and refuses without it; the dial back carries the request's
nonce on a ``dial-back`` stream. Client: tests its addresses one request at a time, trusts an
``OK`` only if the dial back with its nonce arrived, and records each address's reachability
(``host.addresses.set_addr_reachability``) and the node's (``set_reachability``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import LocalProtocolError, P2PTimeoutError, RemoteProtocolError
from p2pstack.framing import encode_lp, read_lp
from p2pstack.multiaddrs import with_peer_id
from protocols.autonat._base import AutoNATConfig, ProbingService, local_test_addrs
from protocols.autonat._dialer import DIAL_ERRORS, DialerFactory
from protocols.autonat._policy import RateLimiter
from protocols.autonat._server import DialDataCounter, Requester, screen_v2
from protocols.autonat._wire import (
    DIAL_BACK_PROTOCOL_ID,
    DIAL_REQUEST_PROTOCOL_ID,
    MAX_DIAL_DATA_CHUNK,
    MAX_MESSAGE_SIZE,
    DialDataRequest,
    DialDataResponse,
    DialRequest,
    DialResponse,
    DialStatus,
    ResponseStatus,
    decode_dial_back,
    decode_dial_back_response,
    decode_v2,
    encode_dial_back,
    encode_dial_back_response,
    encode_v2,
)

if TYPE_CHECKING:
    from p2pstack.host import Connection, Host, Stream
    from p2pstack.identity import PeerId

__all__ = ["AutoNATv2", "DialDataRefused", "NoDialResponse", "V2Result"]

_log = logging.getLogger("protocols.autonat")

#: Most dial data a client agrees to send for one request (the spec's upper bound).
MAX_CLIENT_DIAL_DATA = 100_000
#: Most requests of ours waiting for their dial back at once.
MAX_PENDING = 64


@attrs.frozen(kw_only=True)
class V2Result:
    """What a v2 request found out.

    Attributes:
        status: the server's ``ResponseStatus`` (an int if unknown).
        addr: the address the server dialed (``None`` unless ``status`` is ``OK``).
        dial_status: the outcome of its dial back.
        verified: the dial back with our nonce reached us.
        dial_data: bytes of dial data we sent.
    """

    status: ResponseStatus | int
    addr: Multiaddr | None
    dial_status: DialStatus | int
    verified: bool
    dial_data: int = 0

    @property
    def reachable(self) -> bool | None:
        """``True``: dialed and verified; ``False``: the dial failed; ``None``: no verdict."""
        if self.status != ResponseStatus.OK:
            return None
        if self.dial_status == DialStatus.OK:
            return True if self.verified else None
        return False if self.dial_status == DialStatus.E_DIAL_ERROR else None


class NoDialResponse(RemoteProtocolError):
    """The server ended the stream without a ``DialResponse``."""


class DialDataRefused(RemoteProtocolError):
    """The server asked for more dial data than we send, or for an address we did not list."""


class AutoNATv2(ProbingService):
    """The AutoNAT v2 service (``host.service(AutoNATv2)``); same arguments as ``AutoNAT``."""

    service_name = "AutoNATv2"

    def __init__(
        self,
        config: AutoNATConfig | None = None,
        *,
        dialer: DialerFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config, dialer=dialer, rng=rng)
        limits = self.config.limits
        self._data_limiter = RateLimiter(
            window=limits.window,
            total=limits.dial_data_rate,
            per_key=limits.dial_data_rate,
            max_keys=1,
        )
        self._pending: dict[int, anyio.Event] = {}
        #: Answers served, by status.
        self.served: dict[ResponseStatus, int] = {}

    async def start(self, host: Host) -> None:
        """Serve dial requests (if ``server``); take dial backs and probe (if ``client``)."""
        self._host = host
        if self.config.server:
            host.set_stream_handler(DIAL_REQUEST_PROTOCOL_ID, self._serve, max_inbound_per_peer=2)
        if self.config.client:
            host.set_stream_handler(DIAL_BACK_PROTOCOL_ID, self._dial_back_arrived, max_inbound=8)
            self._start_client(
                host, DIAL_REQUEST_PROTOCOL_ID, source="autonat-v2", task="autonat v2"
            )

    # -- client --------------------------------------------------------------------------------

    async def probe(self, peer: PeerId, addrs: Sequence[Multiaddr]) -> V2Result:
        """Ask ``peer`` to dial one of ``addrs`` (the first it is willing to).

        Raises:
            NoDialResponse: the server closed the stream without answering.
            DialDataRefused: the server asked for more than 100 kB of dial data, or for an
                address index we did not send (the stream is reset).
            RemoteProtocolError: the server broke the protocol.
            LocalProtocolError: too many of our requests are waiting for dial backs.
            P2PError: the stream could not be opened or broke.
        """
        host = self._require_host()
        if len(self._pending) >= MAX_PENDING:
            raise LocalProtocolError("too many AutoNAT v2 requests in flight")
        nonce = self._rng.getrandbits(64)
        arrived = self._pending[nonce] = anyio.Event()
        sent = 0
        try:
            async with await host.new_stream(peer, [DIAL_REQUEST_PROTOCOL_ID]) as stream:
                request = DialRequest(addrs=tuple(addrs), nonce=nonce)
                await stream.send(encode_lp(encode_v2(request)))
                while True:
                    try:
                        body = await read_lp(stream, max_size=MAX_MESSAGE_SIZE)
                    except anyio.EndOfStream:
                        # js-libp2p's server closes without an answer when it will not dial.
                        raise NoDialResponse("the server closed without a DialResponse") from None
                    msg = decode_v2(body)
                    if isinstance(msg, DialResponse):
                        break
                    if not isinstance(msg, DialDataRequest) or sent:
                        raise RemoteProtocolError(f"unexpected AutoNAT v2 message {msg!r}")
                    sent = await _send_dial_data(stream, msg, len(addrs))
        finally:
            self._pending.pop(nonce, None)
        ok = msg.status == ResponseStatus.OK
        in_range = 0 <= msg.addr_idx < len(addrs)
        return V2Result(
            status=msg.status,
            addr=addrs[msg.addr_idx] if ok and in_range else None,
            dial_status=msg.dial_status,
            verified=arrived.is_set(),
            dial_data=sent,
        )

    async def _probe_vote(self, peer: PeerId) -> bool | None:
        host = self._require_host()
        addrs = local_test_addrs(host, allow_private=self.config.allow_private)
        if not addrs:
            return None
        result = await self.probe(peer, addrs)
        _log.debug("autonat v2 via %s: %r", peer, result)
        reachable = result.reachable
        if reachable is not None and result.addr is not None:
            host.addresses.set_addr_reachability(result.addr, "public" if reachable else "private")
        return reachable

    async def _dial_back_arrived(self, stream: Stream) -> None:
        with anyio.fail_after(self.config.request_timeout):
            nonce = decode_dial_back(await read_lp(stream, max_size=MAX_MESSAGE_SIZE))
            waiter = self._pending.get(nonce)
            if waiter is None:
                raise RemoteProtocolError("dial back with a nonce we did not send")
            waiter.set()
            await stream.send(encode_lp(encode_dial_back_response()))

    # -- server --------------------------------------------------------------------------------

    async def _serve(self, stream: Stream) -> None:
        timeout = self.config.request_timeout
        try:
            with anyio.fail_after(timeout):
                request = decode_v2(await read_lp(stream, max_size=MAX_MESSAGE_SIZE))
                if not isinstance(request, DialRequest):
                    raise RemoteProtocolError("expected a DialRequest")
                answer = await self._answer(stream, request)
                status = ResponseStatus(answer.status)
                self.served[status] = self.served.get(status, 0) + 1
                await stream.send(encode_lp(encode_v2(answer)))
        except TimeoutError:
            raise P2PTimeoutError(f"autonat v2: request not served within {timeout} s") from None

    async def _answer(self, stream: Stream, request: DialRequest) -> DialResponse:
        conn = stream.connection
        limits = self.config.limits
        who = Requester(
            peer_id=conn.remote_peer.to_bytes(),
            observed=conn.remote_multiaddr,
            limited=conn.limited,
        )
        target = screen_v2(request, who, allow_private=limits.allow_private)
        if isinstance(target, DialResponse):
            return target
        if self._dialer is None:
            return DialResponse(status=ResponseStatus.E_DIAL_REFUSED)
        if not self._limiter.allow(conn.remote_peer, anyio.current_time()):
            return DialResponse(status=ResponseStatus.E_REQUEST_REJECTED)
        if target.needs_data:
            if not self._data_limiter.allow(None, anyio.current_time()):
                return DialResponse(status=ResponseStatus.E_REQUEST_REJECTED)
            ask = DialDataRequest(addr_idx=target.index, num_bytes=limits.dial_data_bytes)
            await stream.send(encode_lp(encode_v2(ask)))
            counter = DialDataCounter(limits.dial_data_bytes)
            while not counter.feed(decode_v2(await read_lp(stream, max_size=MAX_MESSAGE_SIZE))):
                pass
        try:
            self._busy.acquire_nowait()
        except anyio.WouldBlock:
            return DialResponse(status=ResponseStatus.E_REQUEST_REJECTED)
        try:
            outcome = await self._dial_back(conn, target.addr, request.nonce)
        finally:
            self._busy.release()
        return DialResponse(status=ResponseStatus.OK, addr_idx=target.index, dial_status=outcome)

    async def _dial_back(self, conn: Connection, addr: Multiaddr, nonce: int) -> DialStatus:
        assert self._dialer is not None
        timeout = self.config.limits.dial_timeout
        async with self._dialer() as dialer:
            try:
                with anyio.fail_after(timeout):
                    back = await dialer.connect(with_peer_id(addr, conn.remote_peer))
            except DIAL_ERRORS as exc:
                _log.debug("autonat v2 dial back to %s failed: %r", addr, exc)
                return DialStatus.E_DIAL_ERROR
            try:
                with anyio.fail_after(timeout):
                    async with await back.new_stream([DIAL_BACK_PROTOCOL_ID]) as stream:
                        await stream.send(encode_lp(encode_dial_back(nonce)))
                        body = await read_lp(stream, max_size=MAX_MESSAGE_SIZE)
                        if decode_dial_back_response(body) != 0:
                            return DialStatus.E_DIAL_BACK_ERROR
            except DIAL_ERRORS as exc:
                _log.debug("autonat v2 nonce to %s failed: %r", addr, exc)
                return DialStatus.E_DIAL_BACK_ERROR
        return DialStatus.OK


async def _send_dial_data(stream: Stream, ask: DialDataRequest, n_addrs: int) -> int:
    """Pay a server's dial data, or refuse (reset) if it asks too much or for a bad index."""
    if ask.num_bytes > MAX_CLIENT_DIAL_DATA or not 0 <= ask.addr_idx < n_addrs:
        await stream.reset()
        raise DialDataRefused(f"server asked {ask.num_bytes} bytes for address {ask.addr_idx}")
    chunk = encode_lp(encode_v2(DialDataResponse(data=bytes(MAX_DIAL_DATA_CHUNK))))
    sent = 0
    while sent < ask.num_bytes:
        await stream.send(chunk)
        sent += MAX_DIAL_DATA_CHUNK
    return sent
