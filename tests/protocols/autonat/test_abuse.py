"""AutoNAT under abuse: floods from many peers, too many dial backs at once, bad dial data,
servers that ask too much or lie about a dial back. Each gets the spec's status code or a reset
stream, and nothing is dialed that should not be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import attrs
import pytest

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import encode_lp, read_lp
from p2pstack.host import Host, Stream
from protocols.autonat import (
    DIAL_REQUEST_PROTOCOL_ID,
    AutoNAT,
    AutoNATv2,
    DialDataRefused,
    DialDataRequest,
    DialDataResponse,
    DialRequest,
    DialResponse,
    DialStatus,
    ResponseStatus,
    V1Status,
    decode_v2,
    encode_v2,
)
from tests.protocols.autonat.test_autonat_hosts import (
    CLIENT,
    LOOPBACK,
    SERVER,
    Dialer,
    _dead_port,
    _node,
)

pytestmark = pytest.mark.anyio

LISTEN = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0"]


class SlowDialer(Dialer):
    """Dial-back hosts that open only once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()
        self.entered = anyio.Event()

    def __call__(self) -> AbstractAsyncContextManager[Host]:
        inner = super().__call__()

        @asynccontextmanager
        async def slow() -> AsyncIterator[Host]:
            self.entered.set()
            await self.release.wait()
            async with inner as host:
                yield host

        return slow()


async def test_global_rate_across_peers() -> None:
    config = attrs.evolve(SERVER, limits=attrs.evolve(LOOPBACK, global_rate=3, per_peer_rate=9))
    dialer = Dialer()
    async with _node([AutoNAT(config, dialer=dialer)], LISTEN[:1]) as server:
        statuses = []
        for _ in range(3):
            async with _node([AutoNAT(CLIENT)], []) as client:
                with anyio.fail_after(30):
                    await client.connect(server.addrs[0])
                    for _ in range(2):
                        answer = await client.service(AutoNAT).probe(server.peer_id, [_dead_port()])
                        statuses.append(answer.status)
    assert statuses == [100, 100, 100, 101, 101, 101]
    assert dialer.opened == 3


async def test_concurrent_dial_backs_are_capped() -> None:
    dialer = SlowDialer()
    limits = attrs.evolve(LOOPBACK, max_concurrent=1)
    config = attrs.evolve(SERVER, limits=limits)
    async with (
        _node([AutoNAT(config, dialer=dialer)], LISTEN[:1]) as server,
        _node([AutoNAT(CLIENT)], []) as client,
    ):
        with anyio.fail_after(30):
            await client.connect(server.addrs[0])
            answers = []

            async def ask() -> None:
                answers.append(await client.service(AutoNAT).probe(server.peer_id, [_dead_port()]))

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await dialer.entered.wait()
                second = await client.service(AutoNAT).probe(server.peer_id, [_dead_port()])
                dialer.release.set()
    assert (second.status, second.text) == (
        V1Status.E_DIAL_REFUSED,
        "too many dial backs in progress",
    )
    assert [a.status for a in answers] == [V1Status.E_DIAL_ERROR]


async def _raw_v2(client: Host, server: Host, *messages: bytes) -> object:
    """Send a DialRequest for a 127.0.0.2 address, then ``messages``; the server's reply."""
    other = next(a for a in client.listen_addrs if "127.0.0.2" in str(a))
    stream = await client.new_stream(server.peer_id, [DIAL_REQUEST_PROTOCOL_ID])
    await stream.send(encode_lp(encode_v2(DialRequest(addrs=(other,), nonce=5))))
    asked = decode_v2(await read_lp(stream, max_size=8192))
    assert isinstance(asked, DialDataRequest)
    for message in messages:
        await stream.send(encode_lp(message))
    try:
        return decode_v2(await read_lp(stream, max_size=8192))
    except NETWORK_ERRORS as exc:
        return exc
    finally:
        await stream.reset()


async def test_bad_dial_data_is_reset_and_never_dialed() -> None:
    dialer = Dialer()
    limits = attrs.evolve(LOOPBACK, per_peer_rate=10)
    config = attrs.evolve(SERVER, limits=limits, request_timeout=2.0)
    async with (
        _node([AutoNATv2(config, dialer=dialer)], LISTEN[:1]) as server,
        _node([AutoNATv2(CLIENT)], LISTEN) as client,
    ):
        with anyio.fail_after(30):
            await client.connect(server.addrs[0])
            big = encode_v2(DialDataResponse(data=bytes(4097)))
            empty = encode_v2(DialDataResponse(data=b""))
            wrong = encode_v2(DialResponse(status=200))
            results = [await _raw_v2(client, server, m) for m in (big, empty, wrong)]
            # Part of the data, then silence: the request times out, nothing is dialed.
            part = encode_v2(DialDataResponse(data=bytes(4096)))
            partial = await _raw_v2(client, server, *[part] * 3)
    assert all(isinstance(r, Exception) for r in results), results
    assert isinstance(partial, Exception)
    assert dialer.opened == 0


async def test_dial_data_rate() -> None:
    limits = attrs.evolve(LOOPBACK, dial_data_rate=1)
    dialer = Dialer()
    async with (
        _node(
            [AutoNATv2(attrs.evolve(SERVER, limits=limits), dialer=dialer)], LISTEN[:1]
        ) as server,
        _node([AutoNATv2(CLIENT)], LISTEN) as client,
    ):
        other = next(a for a in client.listen_addrs if "127.0.0.2" in str(a))
        with anyio.fail_after(30):
            await client.connect(server.addrs[0])
            first = await client.service(AutoNATv2).probe(server.peer_id, [other])
            second = await client.service(AutoNATv2).probe(server.peer_id, [other])
    assert first.reachable and first.dial_data >= 30_000
    assert second.status == ResponseStatus.E_REQUEST_REJECTED and second.dial_data == 0
    assert dialer.opened == 1


async def _greedy(stream: Stream) -> None:
    await read_lp(stream, max_size=8192)
    await stream.send(encode_lp(encode_v2(DialDataRequest(addr_idx=0, num_bytes=200_000))))
    with anyio.fail_after(10):
        await stream.receive()  # the client resets instead of paying


async def _liar(stream: Stream) -> None:
    await read_lp(stream, max_size=8192)
    lie = DialResponse(status=ResponseStatus.OK, addr_idx=0, dial_status=DialStatus.OK)
    await stream.send(encode_lp(encode_v2(lie)))


async def test_client_refuses_greedy_servers_and_distrusts_liars() -> None:
    async with _node([], LISTEN[:1]) as server, _node([AutoNATv2(CLIENT)], LISTEN[:1]) as client:
        with anyio.fail_after(30):
            await client.connect(server.addrs[0])
            mine = client.listen_addrs[0]
            server.set_stream_handler(DIAL_REQUEST_PROTOCOL_ID, _greedy)
            with pytest.raises(DialDataRefused):
                await client.service(AutoNATv2).probe(server.peer_id, [mine])
            server.set_stream_handler(DIAL_REQUEST_PROTOCOL_ID, _liar, replace=True)
            result = await client.service(AutoNATv2).probe(server.peer_id, [mine])
    # "OK" without the dial back carrying our nonce: not evidence of anything.
    assert (result.status, result.dial_status, result.verified) == (200, 200, False)
    assert result.reachable is None
