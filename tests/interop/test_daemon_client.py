"""``p2pstack.p2pd.DaemonClient`` driving real p2pd-compatible daemons (tests/interop/daemons.py:
js-libp2p behind @libp2p/daemon-server, and ``p2pstack daemon``): identify, connect, streams both
ways with a p2pstack library host and between two daemons, typed errors, DHT and pubsub."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
import pytest

from p2pstack.identity import PeerId, generate_private_key
from p2pstack.p2pd import DaemonClient, DaemonError, DaemonProtocolError, StreamInfo
from tests.interop.conftest import OurHost
from tests.interop.daemons import DaemonProcess, run_daemon, selected
from tests.interop.peers import ECHO

pytestmark = pytest.mark.anyio

KINDS = selected()
ECHO_B = "/p2pstack/daemon-echo/1.0.0"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
#: js-libp2p's daemon ends the whole relayed stream when either side half-closes (its pipe
#: closes both directions), so through it the echo is read back by count, not to the end.
HALF_CLOSE = {"js": False}


@asynccontextmanager
async def daemons(
    kind: str, count: int, flags: Sequence[str], log_dir: Path
) -> AsyncIterator[list[DaemonProcess]]:
    """``count`` daemons, started at once (node takes seconds to start on a loaded machine)."""
    async with AsyncExitStack() as stack:
        procs: list[DaemonProcess | None] = [None] * count

        async def start(i: int) -> None:
            procs[i] = await stack.enter_async_context(run_daemon(kind, flags, log_dir=log_dir))

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(start, i)
        yield [p for p in procs if p is not None]


class Duplex(Protocol):
    async def receive(self, max_bytes: int = 65536) -> bytes: ...
    async def send(self, item: bytes) -> None: ...
    async def send_eof(self) -> None: ...


async def echo_roundtrip(stream: Duplex, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data``, half-close (or not), read back as many bytes (or to the end)."""
    got = bytearray()

    async def read() -> None:
        while half_close or len(got) < len(data):
            try:
                got.extend(await stream.receive(65536))
            except anyio.EndOfStream:
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await stream.send(data)
        if half_close:
            await stream.send_eof()
    return bytes(got)


async def echo(_info: StreamInfo, stream: anyio.abc.ByteStream) -> None:
    while True:
        try:
            data = await stream.receive(65536)
        except anyio.EndOfStream:
            break
        await stream.send(data)
    await stream.send_eof()


async def connect_pair(a: DaemonClient, b: DaemonClient) -> PeerId:
    """Connect daemon ``a`` to daemon ``b``; ``b``'s peer ID."""
    b_info = await b.identify()
    await a.connect(b_info.peer_id, b_info.addrs, timeout=30)
    return b_info.peer_id


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", KINDS)
async def test_identify_connect_and_streams(kind: str, our_host: OurHost, tmp_path: Path) -> None:
    async with (
        daemons(kind, 2, [], tmp_path) as (da, db),
        our_host(["yamux"]) as host,
        DaemonClient(da.control) as a,
        DaemonClient(db.control) as b,
    ):
        half = HALF_CLOSE.get(kind, True)
        with anyio.fail_after(120):
            me = await a.identify()
            assert me.peer_id == PeerId.from_string(da.banner.peer_id)
            assert me.addrs and all("/p2p/" not in str(x) for x in me.addrs)

            # daemon -> library host: the control connection becomes the stream
            await a.connect(host.peer_id, host.listen_addrs)
            assert host.peer_id in {p.peer_id for p in await a.list_peers()}
            info, stream = await a.stream_open(host.peer_id, [ECHO])
            assert (info.peer_id, info.protocol) == (host.peer_id, ECHO)
            async with stream:
                back = await echo_roundtrip(stream, PAYLOAD, half_close=half)
                assert len(back) == len(PAYLOAD)
                assert back == PAYLOAD

            # library host -> daemon -> this client's handler
            await a.stream_handler([ECHO_B], echo)
            conn = await host.connect(f"{me.addrs[0]}/p2p/{me.peer_id}")
            s = await host.new_stream(conn.remote_peer, [ECHO_B])
            back = await echo_roundtrip(s, PAYLOAD, half_close=half)
            assert len(back) == len(PAYLOAD)
            assert back == PAYLOAD

            # daemon a -> daemon b -> b's client
            await b.stream_handler([ECHO_B], echo)
            b_id = await connect_pair(a, b)
            assert b_id in {p.peer_id for p in await a.list_peers()}
            info, stream = await a.stream_open(b_id, [ECHO_B])
            assert info.protocol == ECHO_B
            async with stream:
                back = await echo_roundtrip(stream, b"hello daemons", half_close=half)
                assert back == b"hello daemons"

            # a refused request comes back as a typed error with the daemon's message
            stranger = PeerId.from_public_key(generate_private_key().public_key)
            with pytest.raises(DaemonError) as err:
                await a.stream_open(stranger, [ECHO], timeout=5)
            assert err.value.message


def pk_record() -> tuple[bytes, bytes]:
    """A ``/pk/`` record every daemon validates: key ``/pk/`` + the peer ID (multihash) of the
    key, value the public key protobuf."""
    public = generate_private_key().public_key
    return b"/pk/" + PeerId.from_public_key(public).to_bytes(), public.to_protobuf()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", KINDS)
async def test_dht(kind: str, tmp_path: Path) -> None:
    async with (
        daemons(kind, 2, ["-dhtServer"], tmp_path) as (da, db),
        DaemonClient(da.control) as a,
        DaemonClient(db.control) as b,
    ):
        with anyio.fail_after(90):
            b_id = await connect_pair(a, b)
            a_id = (await a.identify()).peer_id
            key, value = pk_record()
            # The daemons add each other to their routing tables after identify, a moment
            # after the connection; until then a GET finds nothing (js closes without a reply).
            got = None
            while got is None:
                await a.dht.put_value(key, value, timeout=30)
                try:
                    got = await b.dht.get_value(key, timeout=30)
                except (DaemonError, DaemonProtocolError):
                    await anyio.sleep(0.5)
            assert got == value

            cid = bytes.fromhex("01551220") + hashlib.sha256(b"daemon-client").digest()
            await a.dht.provide(cid, timeout=30)
            providers = await b.dht.find_providers(cid, count=1, timeout=30).collect()
            assert a_id in {p.peer_id for p in providers}

            found = await a.dht.find_peer(b_id, timeout=30)
            assert found.peer_id == b_id and found.addrs


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("kind", KINDS)
async def test_pubsub(kind: str, tmp_path: Path) -> None:
    topic = "daemon-client-test"
    async with (
        daemons(kind, 2, ["-pubsub"], tmp_path) as (da, db),
        DaemonClient(da.control) as a,
        DaemonClient(db.control) as b,
    ):
        with anyio.fail_after(120):
            b_id = await connect_pair(a, b)
            async with b.pubsub.subscribe(topic) as sub:
                assert topic in await b.pubsub.get_topics()
                async with a.pubsub.subscribe(topic):
                    while True:  # a daemon has no event to wait on: ask until it knows
                        if b_id in await a.pubsub.list_peers(topic):
                            break
                        await anyio.sleep(0.2)
                    await a.pubsub.publish(topic, b"hello subscribers")
                    msg = await anext(sub)
            assert msg.data == b"hello subscribers" and topic in msg.topics
            assert msg.from_peer == (await a.identify()).peer_id


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("kind", KINDS)
async def test_unix_control_socket(kind: str, tmp_path: Path) -> None:
    control = f"/unix{tmp_path / 'p2pd.sock'}"
    async with run_daemon(kind, ["-noListenAddrs"], log_dir=tmp_path, control=control) as d:
        assert d.control == control
        with anyio.fail_after(30):
            me = await DaemonClient(control).identify()
        assert me.peer_id == PeerId.from_string(d.banner.peer_id) and me.addrs == ()
