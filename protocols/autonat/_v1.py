"""AutoNAT v1 (``/libp2p/autonat/1.0.0``) client and server
(https://github.com/libp2p/specs/blob/master/autonat/autonat-v1.md).

Server: one ``Dial`` request per stream; it dials back only addresses on the requester's
observed IP, never over a relayed connection, within rate limits, from a fresh dialer host, and
answers ``OK`` (with the address reached), ``E_DIAL_ERROR``, ``E_DIAL_REFUSED`` or
``E_BAD_REQUEST``. Client: asks connected servers to dial its addresses and decides
``host.addresses.reachability`` from their answers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import P2PTimeoutError, RemoteProtocolError
from p2pstack.framing import encode_lp, read_lp
from p2pstack.multiaddrs import with_peer_id
from protocols.autonat._base import AutoNATConfig, ProbingService, local_test_addrs
from protocols.autonat._dialer import DIAL_ERRORS, DialerFactory
from protocols.autonat._server import Requester, screen_v1
from protocols.autonat._wire import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    V1Dial,
    V1DialResponse,
    V1Status,
    decode_v1,
    encode_v1,
)

if TYPE_CHECKING:
    from p2pstack.host import Connection, Host, Stream
    from p2pstack.identity import PeerId

__all__ = ["AutoNAT", "AutoNATConfig", "local_test_addrs"]

_log = logging.getLogger("protocols.autonat")


class AutoNAT(ProbingService):
    """The AutoNAT v1 service (``host.service(AutoNAT)``).

    Args:
        config: roles, limits, schedule.
        dialer: opens the fresh host a server dials back from; without it the server role
            answers every request with ``E_DIAL_REFUSED``.
        rng: randomness for choosing servers.
    """

    service_name = "AutoNAT"

    def __init__(
        self,
        config: AutoNATConfig | None = None,
        *,
        dialer: DialerFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config, dialer=dialer, rng=rng)
        #: Answers served, by status (for tests and statistics).
        self.served: dict[V1Status, int] = {}

    async def start(self, host: Host) -> None:
        """Serve the protocol (if ``server``) and start probing (if ``client``)."""
        self._host = host
        if self.config.server:
            host.set_stream_handler(PROTOCOL_ID, self._serve, max_inbound_per_peer=2)
        if self.config.client:
            self._start_client(host, PROTOCOL_ID, source="autonat", task="autonat")

    # -- client --------------------------------------------------------------------------------

    async def probe(self, peer: PeerId, addrs: Sequence[Multiaddr] | None = None) -> V1DialResponse:
        """Ask ``peer`` to dial us back.

        Args:
            peer: a server (dialed if not connected; never over a relayed connection).
            addrs: the addresses to test (default: ``local_test_addrs``).

        Returns:
            The server's answer.

        Raises:
            RemoteProtocolError: the answer is not a ``DIAL_RESPONSE``.
            P2PError: the stream could not be opened or broke.
        """
        host = self._require_host()
        if addrs is None:
            addrs = local_test_addrs(host, allow_private=self.config.allow_private)
        request = V1Dial(peer_id=host.peer_id.to_bytes(), addrs=tuple(addrs))
        async with await host.new_stream(peer, [PROTOCOL_ID]) as stream:
            await stream.send(encode_lp(encode_v1(request)))
            answer = decode_v1(await read_lp(stream, max_size=MAX_MESSAGE_SIZE))
        if not isinstance(answer, V1DialResponse):
            raise RemoteProtocolError("AutoNAT server answered with a DIAL")
        return answer

    async def _probe_vote(self, peer: PeerId) -> bool | None:
        host = self._require_host()
        addrs = local_test_addrs(host, allow_private=self.config.allow_private)
        if not addrs:
            return None  # nothing a server would dial: no vote either way
        answer = await self.probe(peer, addrs)
        _log.debug("autonat v1 via %s: %s %s", peer, answer.status, answer.text)
        if answer.status == V1Status.OK:
            return True
        return False if answer.status == V1Status.E_DIAL_ERROR else None

    # -- server --------------------------------------------------------------------------------

    async def _serve(self, stream: Stream) -> None:
        timeout = self.config.request_timeout
        try:
            with anyio.fail_after(timeout):
                body = await read_lp(stream, max_size=MAX_MESSAGE_SIZE)
                try:
                    request = decode_v1(body)
                except RemoteProtocolError as exc:
                    answer = V1DialResponse(status=V1Status.E_BAD_REQUEST, text=str(exc)[:100])
                else:
                    answer = await self.answer(stream.connection, request)
                status = V1Status(answer.status)
                self.served[status] = self.served.get(status, 0) + 1
                await stream.send(encode_lp(encode_v1(answer)))
        except TimeoutError:
            raise P2PTimeoutError(f"autonat: request not served within {timeout} s") from None

    async def answer(self, conn: Connection, request: V1Dial | V1DialResponse) -> V1DialResponse:
        """The server's answer to ``request`` received over ``conn`` (dialing back if the
        request qualifies)."""
        limits = self.config.limits
        who = Requester(
            peer_id=conn.remote_peer.to_bytes(),
            observed=conn.remote_multiaddr,
            limited=conn.limited,
        )
        addrs = screen_v1(
            request, who, allow_private=limits.allow_private, max_addrs=limits.max_addrs
        )
        if isinstance(addrs, V1DialResponse):
            return addrs
        if self._dialer is None:
            return _refuse(V1Status.E_DIAL_REFUSED, "this node does not dial back")
        if not self._limiter.allow(conn.remote_peer, anyio.current_time()):
            return _refuse(V1Status.E_DIAL_REFUSED, "too many dial-back requests")
        try:
            self._busy.acquire_nowait()
        except anyio.WouldBlock:
            return _refuse(V1Status.E_DIAL_REFUSED, "too many dial backs in progress")
        try:
            reached = await self._dial_back(conn.remote_peer, addrs)
        finally:
            self._busy.release()
        if reached is None:
            return _refuse(V1Status.E_DIAL_ERROR, "dial back failed")
        return V1DialResponse(status=V1Status.OK, addr=reached)

    async def _dial_back(self, peer: PeerId, addrs: Sequence[Multiaddr]) -> Multiaddr | None:
        assert self._dialer is not None
        async with self._dialer() as dialer:
            for addr in addrs:
                try:
                    with anyio.fail_after(self.config.limits.dial_timeout):
                        await dialer.connect(with_peer_id(addr, peer))
                except DIAL_ERRORS as exc:
                    _log.debug("autonat dial back to %s failed: %r", addr, exc)
                    continue
                return addr
        return None


def _refuse(status: V1Status, text: str) -> V1DialResponse:
    return V1DialResponse(status=status, text=text)
