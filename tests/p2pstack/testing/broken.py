"""Deliberately broken security channels and muxers: each wraps a working one and adds one
defect, so that the conformance suites can be shown to catch it."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import HandshakeError, StreamReset
from p2pstack.identity import Identity, PeerId, PublicKey
from p2pstack.interfaces import (
    Buffer,
    MuxedConnection,
    MuxedStream,
    Muxer,
    RawConnection,
    SecureConnection,
    SecurityChannel,
)


class _NeverClosed:
    """A raw connection whose ``aclose`` does nothing (a channel that leaks its connection)."""

    def __init__(self, inner: RawConnection) -> None:
        self._inner = inner

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._inner.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._inner.remote_multiaddr

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class BrokenSecureConnection:
    """A secure connection with the defect named by ``defect``."""

    def __init__(self, inner: SecureConnection, defect: str) -> None:
        self._inner = inner
        self._defect = defect

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._inner.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._inner.remote_multiaddr

    @property
    def local_peer(self) -> PeerId:
        return self._inner.local_peer

    @property
    def remote_peer(self) -> PeerId:
        if self._defect == "wrong remote peer":
            return self._inner.local_peer
        return self._inner.remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self._inner.remote_public_key

    @property
    def security_protocol(self) -> str:
        return self._inner.security_protocol

    @property
    def early_muxer(self) -> str | None:
        return self._inner.early_muxer

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        if self._defect == "corrupts large writes" and len(item) > 65536:
            item = bytes([item[0] ^ 1]) + bytes(item[1:])
        await self._inner.send(item)

    async def send_eof(self) -> None:
        if self._defect != "ignores send_eof":
            await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


class BrokenChannel:
    """A ``SecurityChannel`` that runs ``inner`` and adds one defect.

    Defects: ``"none"``, ``"wrong remote peer"``, ``"ignores the expected peer"``,
    ``"crashes on garbage"``, ``"leaks the connection"``, ``"corrupts large writes"``,
    ``"ignores send_eof"``.
    """

    def __init__(self, inner: SecurityChannel, defect: str) -> None:
        self._inner = inner
        self._defect = defect

    @property
    def protocol_id(self) -> str:
        return self._inner.protocol_id

    async def secure_outbound(
        self,
        conn: RawConnection,
        identity: Identity,
        *,
        remote_peer: PeerId | None,
        muxers: Sequence[str] = (),
    ) -> SecureConnection:
        if self._defect == "ignores the expected peer":
            remote_peer = None
        return await self._run(
            self._inner.secure_outbound(
                self._raw(conn), identity, remote_peer=remote_peer, muxers=muxers
            )
        )

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> SecureConnection:
        return await self._run(self._inner.secure_inbound(self._raw(conn), identity, muxers=muxers))

    def _raw(self, conn: RawConnection) -> RawConnection:
        return _NeverClosed(conn) if self._defect == "leaks the connection" else conn

    async def _run(self, handshake: Awaitable[SecureConnection]) -> SecureConnection:
        try:
            conn = await handshake
        except HandshakeError as exc:
            if self._defect == "crashes on garbage":
                raise ValueError("unexpected input") from exc
            raise
        return BrokenSecureConnection(conn, self._defect)


class BrokenStream:
    """A muxed stream with the defect named by ``defect``."""

    def __init__(self, inner: MuxedStream, defect: str) -> None:
        self._inner = inner
        self._defect = defect
        self._held: Buffer | None = None

    @property
    def stream_id(self) -> int:
        return self._inner.stream_id

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._inner.receive(max_bytes)
        except anyio.EndOfStream:
            if self._defect == "never signals end of stream":
                await anyio.sleep_forever()
            if self._defect == "returns b'' at end of stream":
                return b""
            raise
        except StreamReset:
            if self._defect == "reports a reset as end of stream":
                raise anyio.EndOfStream from None
            raise

    async def send(self, item: Buffer) -> None:
        if self._defect == "drops the last chunk":
            # Each write goes out when the next one comes; the last is never sent.
            held, self._held = self._held, item
            if held is not None:
                await self._inner.send(held)
            return
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def reset(self) -> None:
        await self._inner.reset()


class BrokenConnection:
    """A muxed connection whose streams have the defect named by ``defect``."""

    def __init__(self, inner: MuxedConnection, defect: str) -> None:
        self._inner = inner
        self._defect = defect

    @property
    def is_closed(self) -> bool:
        return self._inner.is_closed

    @property
    def close_reason(self) -> BaseException | None:
        return self._inner.close_reason

    async def run(self) -> None:
        await self._inner.run()

    async def open_stream(self) -> MuxedStream:
        return BrokenStream(await self._inner.open_stream(), self._defect)

    async def accept_stream(self) -> MuxedStream:
        return BrokenStream(await self._inner.accept_stream(), self._defect)

    async def aclose(self) -> None:
        await self._inner.aclose()


class BrokenMuxer:
    """A ``Muxer`` that runs ``inner`` and adds one defect to every stream.

    Defects: ``"none"``, ``"never signals end of stream"``, ``"returns b'' at end of stream"``,
    ``"reports a reset as end of stream"``, ``"drops the last chunk"``.
    """

    def __init__(self, inner: Muxer, defect: str) -> None:
        self._inner = inner
        self._defect = defect

    @property
    def protocol_id(self) -> str:
        return self._inner.protocol_id

    def new_connection(self, conn: SecureConnection, *, is_initiator: bool) -> MuxedConnection:
        return BrokenConnection(
            self._inner.new_connection(conn, is_initiator=is_initiator), self._defect
        )
