"""The driver side of one p2pd request: a fresh control connection, the request written, replies
read with a size bound and a deadline (one connection per request works with go's daemon, which
serves several per connection, and js-libp2p's, which serves one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2pstack.errors import P2PTimeoutError, RemoteProtocolError
from p2pstack.p2pd._codec import (
    DaemonProtocolError,
    check_ok,
    decode_response,
    encode_request,
)
from p2pstack.p2pd._sockets import connect_control
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.varint import MAX_UVARINT_LEN, IncompleteVarint, decode_uvarint

__all__ = ["ControlChannel", "ReplyStream", "read_message"]

T = TypeVar("T")
U = TypeVar("U")


class ControlChannel:
    """Opens control connections to one daemon address.

    Args:
        addr: the daemon's control multiaddr.
        timeout: the default bound, in seconds, of connecting, writing a request and reading
            its first reply.
        max_message_size: the largest reply accepted, in bytes.
    """

    def __init__(self, addr: Multiaddr | str, timeout: float, max_message_size: int) -> None:
        self.addr = addr
        self.timeout = timeout
        self.max_message_size = max_message_size

    async def open(
        self, request: pb.Request, timeout: float | None = None
    ) -> tuple[anyio.abc.SocketStream, pb.Response]:
        """Send ``request`` on a new connection and read its first (OK) reply; the connection
        stays open for what follows and is the caller's to close.

        Raises:
            DaemonError: the daemon answered with an error.
            DaemonProtocolError: a malformed reply, or the daemon closed without one.
            P2PTimeoutError: no reply within ``timeout`` (default: the channel's).
            OSError: the daemon cannot be reached.
        """
        limit = self.timeout if timeout is None else timeout
        data = encode_request(request)
        try:
            with anyio.fail_after(limit):
                stream = await connect_control(self.addr)
        except TimeoutError:
            raise P2PTimeoutError(f"no control connection to {self.addr} in {limit} s") from None
        try:
            with anyio.fail_after(limit):
                try:
                    await stream.send(data)
                except (anyio.BrokenResourceError, OSError) as exc:
                    raise DaemonProtocolError(f"control connection lost: {exc!r}") from None
                resp = check_ok(decode_response(await self.read(stream)))
        except TimeoutError:
            await stream.aclose()
            raise P2PTimeoutError(f"no daemon reply in {limit} s") from None
        except BaseException:
            await stream.aclose()
            raise
        return stream, resp

    async def request(self, request: pb.Request, timeout: float | None = None) -> pb.Response:
        """One request, one reply, connection closed (see :meth:`open`)."""
        stream, resp = await self.open(request, timeout)
        await stream.aclose()
        return resp

    async def read(self, stream: anyio.abc.ByteStream) -> bytes:
        """One length-prefixed message (no deadline: the caller sets one).

        Raises:
            DaemonProtocolError: bad framing, too large, or the daemon closed the connection.
        """
        body = await self.read_or_eof(stream)
        if body is None:
            raise DaemonProtocolError("the daemon closed the control connection without a reply")
        return body

    async def read_or_eof(self, stream: anyio.abc.ByteStream) -> bytes | None:
        """One length-prefixed message, or ``None`` when the daemon closed between messages.

        Raises:
            DaemonProtocolError: bad framing, too large, or a connection lost mid-message.
        """
        try:
            return await read_message(stream, self.max_message_size)
        except anyio.EndOfStream:
            return None
        except (anyio.BrokenResourceError, OSError) as exc:
            raise DaemonProtocolError(f"control connection lost: {exc!r}") from None


class ReplyStream(Generic[T]):
    """The replies of a streaming request (DHT BEGIN/VALUE/END, a pubsub subscription) as an
    async iterator; also an async context manager that closes the control connection.

    The connection is opened at the first ``__anext__`` (or ``__aenter__``) and closed at the
    end of the replies, on an error, or by :meth:`aclose`.

    Args:
        channel: the daemon's channel.
        request: the request to send.
        start: checks the first reply (raising on error); returns the items it carries and
            whether more follow on the connection.
        item: reads the next item from the connection, or ``None`` at the end.
        deadline_after: seconds after opening by which every reply must have come (``None``:
            no overall bound).
        first_timeout: bound of the request up to its first reply (default: ``deadline_after``,
            else ``idle_timeout``, else the channel's).
        idle_timeout: the longest wait for any one later reply (``None``: no bound).
    """

    def __init__(
        self,
        channel: ControlChannel,
        request: pb.Request,
        start: Callable[[pb.Response], tuple[list[T], bool]],
        item: Callable[[anyio.abc.ByteStream], Awaitable[T | None]],
        *,
        deadline_after: float | None,
        first_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self._channel = channel
        self._request = request
        self._start = start
        self._item = item
        self._deadline_after = deadline_after
        self._idle = idle_timeout
        self._first = first_timeout
        self._stream: anyio.abc.SocketStream | None = None
        self._pending: list[T] = []
        self._deadline = float("inf")
        self._done = False

    async def _ensure_open(self) -> None:
        if self._stream is not None or self._done:
            return
        start = anyio.current_time()
        first = self._first
        if first is None:
            first = self._deadline_after if self._deadline_after is not None else self._idle
        self._stream, resp = await self._channel.open(self._request, first)
        if self._deadline_after is not None:
            self._deadline = start + self._deadline_after
        try:
            self._pending, more = self._start(resp)
        except BaseException:
            await self.aclose()
            raise
        if not more:
            self._done = True  # the first reply was the whole answer: no reopening
            stream, self._stream = self._stream, None
            await stream.aclose()

    async def __aenter__(self) -> ReplyStream[T]:
        await self._ensure_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        await self._ensure_open()
        if self._pending:
            return self._pending.pop(0)
        if self._stream is None:
            raise StopAsyncIteration
        wait = self._deadline - anyio.current_time()
        if self._idle is not None:
            wait = min(wait, self._idle)
        try:
            with anyio.fail_after(None if wait == float("inf") else max(wait, 0)):
                value = await self._item(self._stream)
        except TimeoutError:
            await self.aclose()
            raise P2PTimeoutError("the daemon's replies did not come in time") from None
        except BaseException:
            await self.aclose()
            raise
        if value is None:
            await self.aclose()
            raise StopAsyncIteration
        return value

    def map(self, convert: Callable[[T], U]) -> ReplyStream[U]:
        """The same request, each item passed through ``convert`` (which may raise). Call it
        before iterating: the new stream sends the request itself."""
        start, item = self._start, self._item

        def mapped_start(resp: pb.Response) -> tuple[list[U], bool]:
            items, more = start(resp)
            return [convert(x) for x in items], more

        async def mapped_item(stream: anyio.abc.ByteStream) -> U | None:
            value = await item(stream)
            return None if value is None else convert(value)

        return ReplyStream(
            self._channel,
            self._request,
            mapped_start,
            mapped_item,
            deadline_after=self._deadline_after,
            first_timeout=self._first,
            idle_timeout=self._idle,
        )

    async def collect(self, limit: int = 10_000) -> list[T]:
        """Every item (at most ``limit``; the rest closes the stream unread)."""
        out: list[T] = []
        async with self:
            async for value in self:
                out.append(value)
                if len(out) >= limit:
                    break
        return out

    async def aclose(self) -> None:
        """Close the control connection; iteration ends."""
        self._done = True
        self._pending.clear()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()


async def read_message(stream: anyio.abc.ByteReceiveStream, max_size: int) -> bytes:
    """One varint-length-prefixed message, and not a byte more (what follows a STREAM_OPEN
    reply is the stream's own data).

    Raises:
        anyio.EndOfStream: the stream ended before the first byte.
        DaemonProtocolError: a bad prefix, a length over ``max_size``, or an end mid-message.
    """
    prefix = bytearray()
    while True:
        try:
            prefix += await stream.receive(1)
        except anyio.EndOfStream:
            if not prefix:
                raise
            raise DaemonProtocolError("control connection ended inside a length") from None
        try:
            length, _ = decode_uvarint(prefix)
            break
        except IncompleteVarint:
            if len(prefix) >= MAX_UVARINT_LEN:
                raise DaemonProtocolError("length prefix longer than 10 bytes") from None
        except RemoteProtocolError as exc:
            raise DaemonProtocolError(str(exc)) from None
    if length > max_size:
        raise DaemonProtocolError(f"daemon message of {length} bytes over the {max_size} limit")
    body = bytearray()
    while len(body) < length:
        try:
            body += await stream.receive(length - len(body))
        except anyio.EndOfStream:
            raise DaemonProtocolError("control connection ended inside a message") from None
    return bytes(body)
