"""AutoNAT v1 and v2 between p2pstack hosts on loopback: real dial backs (the private-address
policy switched on), refusals with the specs' status codes, rate limits, reachability."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.addresses import AddressConfig
from p2pstack.builder import open_host
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.events import ConnectionOpened, ObservedAddrsChanged, ReachabilityChanged
from p2pstack.framing import encode_lp, read_lp
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity
from p2pstack.interfaces import Service
from protocols.autonat import (
    DIAL_REQUEST_PROTOCOL_ID,
    PROTOCOL_ID,
    AutoNAT,
    AutoNATConfig,
    AutoNATv2,
    ClientSchedule,
    DialRequest,
    DialResponse,
    DialStatus,
    ResponseStatus,
    ServerLimits,
    V1Dial,
    V1DialResponse,
    V1Status,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
)
from protocols.identify import Identify
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

LOOPBACK = ServerLimits(allow_private=True)
SERVER = AutoNATConfig(client=False, limits=LOOPBACK)
CLIENT = AutoNATConfig(server=False, allow_private=True)


class Dialer:
    """A dial-back host factory that counts its uses."""

    def __init__(self) -> None:
        self.opened = 0

    def __call__(self) -> AbstractAsyncContextManager[Host]:
        self.opened += 1
        return open_host(
            identity=Identity.generate(),
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=[Yamux()],
            services=[],
            listen=[],
        )


def _node(services: Sequence[Service], listen: Sequence[str]) -> AbstractAsyncContextManager[Host]:
    return open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Identify(), *services],
        listen=list(listen),
        config=HostConfig(addresses=AddressConfig(confirmations=2, distinct_by="peer")),
    )


@asynccontextmanager
async def pair(
    config: AutoNATConfig = SERVER, client_listen: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",)
) -> AsyncIterator[tuple[Host, Host, Dialer]]:
    dialer = Dialer()
    server_services: list[Service] = [
        AutoNAT(config, dialer=dialer),
        AutoNATv2(config, dialer=dialer),
    ]
    client_services: list[Service] = [AutoNAT(CLIENT), AutoNATv2(CLIENT)]
    async with (
        _node(server_services, ["/ip4/127.0.0.1/tcp/0"]) as server,
        _node(client_services, client_listen) as client,
    ):
        with anyio.fail_after(10):
            await client.connect(server.addrs[0])
        yield server, client, dialer


def _dead_port() -> Multiaddr:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")


@pytest.mark.anyio
async def test_dial_back_ok_and_dial_error() -> None:
    async with pair() as (server, client, dialer):
        mine = client.listen_addrs[0]
        v1, v2 = client.service(AutoNAT), client.service(AutoNATv2)
        with anyio.fail_after(30):
            answer = await v1.probe(server.peer_id)
            result = await v2.probe(server.peer_id, [mine])
            dead = _dead_port()
            failed = await v1.probe(server.peer_id, [dead])
            failed2 = await v2.probe(server.peer_id, [dead, mine])
    assert answer == V1DialResponse(status=V1Status.OK, addr=mine)
    assert (result.status, result.addr, result.dial_status) == (ResponseStatus.OK, mine, 200)
    assert result.verified and result.reachable and result.dial_data == 0
    assert failed.status == V1Status.E_DIAL_ERROR
    # v2 dials exactly one address, the first: the dead one.
    assert (failed2.addr, failed2.dial_status, failed2.reachable) == (
        dead,
        DialStatus.E_DIAL_ERROR,
        False,
    )
    assert dialer.opened == 4


@pytest.mark.anyio
async def test_third_party_ip_v1_refused_v2_needs_dial_data() -> None:
    listen = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0")
    async with pair(client_listen=listen) as (server, client, dialer):
        other = next(a for a in client.listen_addrs if "127.0.0.2" in str(a))
        with anyio.fail_after(30):
            answer = await client.service(AutoNAT).probe(server.peer_id, [other])
            assert dialer.opened == 0
            result = await client.service(AutoNATv2).probe(server.peer_id, [other])
            # A client that will not pay: the server never dials.
            stream = await client.new_stream(server.peer_id, [DIAL_REQUEST_PROTOCOL_ID])
            await stream.send(encode_lp(encode_v2(DialRequest(addrs=(other,), nonce=1))))
            asked = decode_v2(await read_lp(stream, max_size=4096))
            await stream.reset()
    assert (answer.status, answer.text) == (
        V1Status.E_DIAL_REFUSED,
        "no dialable address on the observed IP",
    )
    assert result.reachable and result.addr == other and result.dial_data >= 30_000
    assert asked.num_bytes == 30_000  # type: ignore[union-attr]  # a DialDataRequest
    assert dialer.opened == 1


@pytest.mark.anyio
async def test_private_addresses_refused_by_default() -> None:
    async with pair(AutoNATConfig(client=False)) as (server, client, dialer):
        mine = client.listen_addrs[0]
        with anyio.fail_after(30):
            answer = await client.service(AutoNAT).probe(server.peer_id, [mine])
            result = await client.service(AutoNATv2).probe(server.peer_id, [mine])
    assert answer.status == V1Status.E_DIAL_REFUSED
    assert result.status == ResponseStatus.E_DIAL_REFUSED and result.reachable is None
    assert dialer.opened == 0


@pytest.mark.anyio
async def test_flood_is_rate_limited() -> None:
    limits = attrs.evolve(LOOPBACK, per_peer_rate=2)
    async with pair(attrs.evolve(SERVER, limits=limits)) as (server, client, dialer):
        dead = [_dead_port()]
        with anyio.fail_after(30):
            v1 = [(await client.service(AutoNAT).probe(server.peer_id, dead)) for _ in range(4)]
            v2 = [
                (await client.service(AutoNATv2).probe(server.peer_id, dead)).status
                for _ in range(4)
            ]
    assert [a.status for a in v1] == [100, 100, 101, 101]
    assert v1[-1].text == "too many dial-back requests"
    assert v2 == [200, 200, ResponseStatus.E_REQUEST_REJECTED, ResponseStatus.E_REQUEST_REJECTED]
    assert dialer.opened == 4
    assert server.service(AutoNAT).served == {V1Status.E_DIAL_ERROR: 2, V1Status.E_DIAL_REFUSED: 2}


async def _raw_v1(client: Host, server: Host, body: bytes) -> V1DialResponse | V1Dial:
    async with await client.new_stream(server.peer_id, [PROTOCOL_ID]) as stream:
        await stream.send(encode_lp(body))
        return decode_v1(await read_lp(stream, max_size=4096))


@pytest.mark.anyio
async def test_bad_requests() -> None:
    async with pair() as (server, client, dialer):
        other = Identity.generate().peer_id
        forged = V1Dial(peer_id=other.to_bytes(), addrs=(client.listen_addrs[0],))
        with anyio.fail_after(30):
            garbage = await _raw_v1(client, server, b"\xff\xff")
            wrong_type = await _raw_v1(client, server, encode_v1(V1DialResponse(status=0)))
            spoofed = await _raw_v1(client, server, encode_v1(forged))
            stream = await client.new_stream(server.peer_id, [DIAL_REQUEST_PROTOCOL_ID])
            await stream.send(encode_lp(encode_v2(DialResponse(status=200))))
            with pytest.raises(NETWORK_ERRORS):  # the server reset the stream
                await read_lp(stream, max_size=4096)
        assert client.connections(server.peer_id)  # bad requests cost a stream, not the link
    # (the ignore below: DIAL_RESPONSEs here)
    assert [r.status for r in (garbage, wrong_type, spoofed)] == [200, 200, 200]  # type: ignore[union-attr]
    assert dialer.opened == 0


@pytest.mark.anyio
@pytest.mark.parametrize("version", [AutoNAT, AutoNATv2])
async def test_client_decides_public_then_private(version: type[AutoNAT | AutoNATv2]) -> None:
    schedule = ClientSchedule(boot_delay=0, retry_interval=0.2, confidence=1, timeout=10)
    config = attrs.evolve(CLIENT, schedule=schedule)
    dialer = Dialer()
    async with _node([version(SERVER, dialer=dialer)], ["/ip4/127.0.0.1/tcp/0"]) as server:
        for listen, expected in [(["/ip4/127.0.0.1/tcp/0"], "public"), ([], "private")]:
            async with _node([version(config)], listen) as client:
                if not listen:
                    client.addresses.set_external("test", [_dead_port()])
                with client.events.subscribe(ReachabilityChanged) as changes:
                    with anyio.fail_after(30):
                        await client.connect(server.addrs[0])
                        change = await changes.receive()
                assert (change.reachability, change.previous) == (expected, "unknown")
                assert client.addresses.reachability == expected
                if version is AutoNATv2:
                    assert list(client.addresses.addr_reachability().values()) == [expected]


@pytest.mark.anyio
async def test_observed_addresses_confirmed_through_identify() -> None:
    async with _node([], ["/ip4/0.0.0.0/tcp/0"]) as hub:
        assert all("0.0.0.0" not in str(a) for a in hub.addrs)
        port = str(hub.bound_addrs[0]).split("/")[-1]
        target = f"/ip4/127.0.0.1/tcp/{port}/p2p/{hub.peer_id}"
        with hub.events.subscribe(ObservedAddrsChanged) as changes:
            async with _node([], []) as one, _node([], []) as two:
                with anyio.fail_after(20):
                    await one.connect(target)
                    await two.connect(target)
                    change = await changes.receive()
                    info = await one.service(Identify).identify(hub.peer_id)
    assert [str(a) for a in change.addrs] == [f"/ip4/127.0.0.1/tcp/{port}"]
    assert info.listen_addrs and all("0.0.0.0" not in str(a) for a in info.listen_addrs)
    assert info.signed_peer_record is not None
    assert all("0.0.0.0" not in str(a) for a in info.signed_peer_record.addrs)


@pytest.mark.anyio
async def test_client_rechecks_when_its_addresses_change() -> None:
    # A retry interval longer than the test: only the address change can start round two.
    schedule = ClientSchedule(
        boot_delay=0, retry_interval=1000, refresh_interval=1000, confidence=1
    )
    dialer = Dialer()
    async with (
        _node([AutoNAT(SERVER, dialer=dialer)], ["/ip4/127.0.0.1/tcp/0"]) as server,
        _node(
            [AutoNAT(attrs.evolve(CLIENT, schedule=schedule))], ["/ip4/127.0.0.1/tcp/0"]
        ) as client,
    ):
        with client.events.subscribe(ReachabilityChanged) as changes:
            with anyio.fail_after(30):
                await client.connect(server.addrs[0])
                await changes.receive()
        with client.events.subscribe(ConnectionOpened) as opened:
            with anyio.fail_after(30):
                await client.listen(["/ip4/127.0.0.1/tcp/0"])
                back = await opened.receive()  # the dial back of the new round
    assert back.connection.remote_peer != server.peer_id
    assert dialer.opened == 2
