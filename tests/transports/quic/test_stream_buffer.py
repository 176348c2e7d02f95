"""``QuicStream``'s receive buffer on its own, with a fake connection."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.interfaces import Buffer
from transports.quic import QuicStream

pytestmark = pytest.mark.anyio


class FakeOwner:
    def __init__(self) -> None:
        self.consumed = 0

    def stream_consumed(self, stream_id: int, amount: int) -> None:
        self.consumed += amount

    def stream_send(self, stream_id: int, data: Buffer, *, end: bool) -> None:
        pass

    def stream_buffered(self, stream_id: int) -> int:
        return 0

    def stream_blocked(self, stream: QuicStream) -> None:
        pass

    def stream_abort(self, stream_id: int, *, send: bool, receive: bool) -> None:
        pass


async def test_receive_joins_packets_up_to_max_bytes() -> None:
    owner = FakeOwner()
    stream = QuicStream(owner, 0, send_limit=1024)
    for part in (b"aaaa", b"bbbb", b"cccc", b"dd"):
        stream.data_received(part, end=False)
    stream.data_received(b"", end=True)
    assert await stream.receive(6) == b"aaaa"  # the next chunk does not fit whole
    assert await stream.receive(3) == b"bbb"
    assert await stream.receive(100) == b"bcccc" + b"dd"
    with pytest.raises(anyio.EndOfStream):
        await stream.receive()
    assert owner.consumed == 14


async def test_unread_data_is_released_on_close() -> None:
    owner = FakeOwner()
    stream = QuicStream(owner, 0, send_limit=1024)
    stream.data_received(b"x" * 10, end=False)
    stream.data_received(b"y" * 5, end=False)
    assert await stream.receive(4) == b"xxxx"
    await stream.aclose()
    assert owner.consumed == 15
    stream.data_received(b"z" * 7, end=False)  # in flight before STOP_SENDING arrived
    assert owner.consumed == 22
    with pytest.raises(anyio.ClosedResourceError):
        await stream.receive()
