"""Bad input on a listening QUIC socket: garbage, truncated and replayed Initials, unknown
versions and a flood of Initials from many ports. The listener stays bounded and keeps
serving legitimate peers."""

from __future__ import annotations

import os
import random
import ssl

import anyio
import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from multiaddr import Multiaddr

from p2pstack.errors import ConnectionClosedError, RemoteProtocolError
from p2pstack.identity import Identity
from tests.transports.quic.conftest import LOCAL4, connected_pair
from transports.quic import (
    QuicConfig,
    QuicListener,
    QuicMuxedConnection,
    QuicTransport,
    parse_quic_multiaddr,
)
from transports.quic._admission import MIN_INITIAL_SIZE, Accept, InitialGate, Reply

pytestmark = pytest.mark.anyio


def _client_initial() -> bytes:
    """The first datagram of a fresh client handshake (an Initial padded to 1200+ bytes)."""
    config = QuicConfiguration(is_client=True, alpn_protocols=["libp2p"], verify_mode=ssl.CERT_NONE)
    quic = QuicConnection(configuration=config)
    quic.connect(("127.0.0.1", 1), now=0.0)
    return quic.datagrams_to_send(now=0.0)[0][0]


async def _send_from_new_sockets(target: tuple[str, int], datagrams: list[bytes]) -> None:
    for data in datagrams:
        async with await anyio.create_connected_udp_socket(*target) as sock:
            await sock.send(data)


async def _legit_dial_works(listener: QuicListener, client: QuicTransport) -> None:
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.accept)
            conn = await client.dial(listener.multiaddrs[0], remote_peer=None)
        stream = await conn.muxed.open_stream()
        await stream.send(b"still served")
        await conn.muxed.aclose()


def test_gate_answers_unknown_versions_and_drops_junk() -> None:
    gate = InitialGate(max_half_open=4)
    addr = ("127.0.0.1", 4000)
    initial = _client_initial()
    assert isinstance(gate.admit(initial, addr, 0, 1.0), Accept)
    assert gate.admit(initial[:1100], addr, 0, 1.0) is None  # truncated below 1200
    assert gate.admit(b"\x40" + bytes(MIN_INITIAL_SIZE), addr, 0, 1.0) is None  # short header
    other_version = initial[:1] + b"\x1a\x2a\x3a\x4a" + initial[5:]
    answer = gate.admit(other_version, addr, 0, 1.0)
    assert isinstance(answer, Reply)
    assert answer.data[1:5] == b"\x00\x00\x00\x00"  # a Version Negotiation packet
    assert len(answer.data) < len(other_version)


def test_gate_requires_retry_under_load_and_bounds_half_open() -> None:
    gate = InitialGate(max_half_open=4)
    addr = ("127.0.0.1", 4000)
    initial = _client_initial()
    assert isinstance(gate.admit(initial, addr, 1, 1.0), Accept)
    retry = gate.admit(initial, addr, 2, 1.0)
    assert isinstance(retry, Reply)
    assert retry.data[0] & 0xF0 == 0xF0  # long header, type Retry
    assert gate.retries_sent == 1


async def test_garbage_datagrams_are_dropped() -> None:
    async with (
        QuicTransport(identity=Identity.generate()) as server,
        QuicTransport(identity=Identity.generate()) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        target = parse_quic_multiaddr(listener.multiaddrs[0])
        assert target is not None
        initial = _client_initial()
        junk = [
            b"",
            b"\x00",
            os.urandom(20),
            b"\x40" + os.urandom(1300),  # short header, unknown connection ID
            b"\xc0" + os.urandom(1300),  # long header, random version and lengths
            initial[:600],  # truncated Initial
            initial[:-40] + os.urandom(40),  # Initial with a corrupted tail
            b"\xc0\x00\x00\x00\x01\xff" + os.urandom(1300),  # impossible DCID length
        ]
        await _send_from_new_sockets(target, junk)
        await _legit_dial_works(listener, client)
        endpoint = listener.endpoint
        assert endpoint.dropped >= 5
        assert endpoint.half_open <= 1  # the corrupted Initial may have started one


async def test_replayed_initial_makes_one_connection() -> None:
    async with QuicTransport(identity=Identity.generate()) as server:
        listener = await server.listen(Multiaddr(LOCAL4))
        target = parse_quic_multiaddr(listener.multiaddrs[0])
        assert target is not None
        initial = _client_initial()
        async with await anyio.create_connected_udp_socket(*target) as sock:
            for _ in range(5):
                await sock.send(initial)
            with anyio.fail_after(5):
                await sock.receive()  # the server's answer to the first copy
        assert listener.endpoint.half_open == 1


async def test_initial_flood_is_bounded_and_legit_peers_get_in() -> None:
    config = QuicConfig(max_half_open=4, handshake_timeout=5.0)
    async with (
        QuicTransport(identity=Identity.generate(), config=config) as server,
        QuicTransport(identity=Identity.generate(), config=config) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        target = parse_quic_multiaddr(listener.multiaddrs[0])
        assert target is not None
        answers = []
        for _ in range(40):
            async with await anyio.create_connected_udp_socket(*target) as sock:
                await sock.send(_client_initial())
                with anyio.fail_after(5):
                    answers.append(await sock.receive())
        retries = [a for a in answers if a[0] & 0xF0 == 0xF0]  # long header, type Retry
        assert len(retries) == 38
        endpoint = listener.endpoint
        assert endpoint.half_open == 2  # Retry is required from half of the bound
        await _legit_dial_works(listener, client)
        assert endpoint.gate.retries_sent >= 39  # the legitimate client proved its address


async def test_peer_over_its_stream_limit_is_closed_and_others_served() -> None:
    config = QuicConfig(max_streams=4)
    async with (
        QuicTransport(identity=Identity.generate(), config=config) as server,
        QuicTransport(identity=Identity.generate()) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.accept)
                bad = await client.dial(listener.multiaddrs[0], remote_peer=None)
            # Pretend the server allowed 100 streams: aioquic then opens them all at once.
            assert isinstance(bad.muxed, QuicMuxedConnection)
            bad.muxed.quic._remote_max_streams_bidi = 100
            async with anyio.create_task_group() as tg:
                tg.start_soon(bad.muxed.run)
                for _ in range(10):
                    stream = await bad.muxed.open_stream()
                    await stream.send(b"x")
                with pytest.raises(ConnectionClosedError):
                    await bad.muxed.accept_stream()  # until the server closes the connection
            assert isinstance(bad.muxed.close_reason, ConnectionClosedError)
            assert "0x4" in str(bad.muxed.close_reason)  # STREAM_LIMIT_ERROR
            await _legit_dial_works(listener, client)


async def test_mutated_initials_do_not_hurt_the_listener() -> None:
    rng = random.Random(7)
    async with (
        QuicTransport(
            identity=Identity.generate(), config=QuicConfig(handshake_timeout=2)
        ) as server,
        QuicTransport(identity=Identity.generate()) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        target = parse_quic_multiaddr(listener.multiaddrs[0])
        assert target is not None
        initial = bytearray(_client_initial())
        async with await anyio.create_connected_udp_socket(*target) as sock:
            for _ in range(300):
                mutated = bytearray(initial)
                for _ in range(rng.randint(1, 4)):
                    mutated[rng.randrange(64)] ^= rng.randrange(1, 256)  # header, first frames
                cut = rng.choice([len(mutated), rng.randrange(1, len(mutated))])
                if mutated[:cut] != initial:  # two flips of one byte may cancel out
                    await sock.send(bytes(mutated[:cut]))
        await _legit_dial_works(listener, client)
        # None of them decrypted, so none holds a handshake slot (and none needed a Retry).
        assert listener.endpoint.half_open == 0
        assert listener.endpoint.gate.retries_sent == 0


async def test_engine_failure_ends_only_that_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    async with connected_pair() as (dialed, accepted, _):
        assert isinstance(accepted.muxed, QuicMuxedConnection)

        def broken(*args: object, **kwargs: object) -> None:
            raise AssertionError("aioquic bug")

        monkeypatch.setattr(accepted.muxed.quic, "receive_datagram", broken)
        stream = await dialed.muxed.open_stream()
        await stream.send(b"trigger")
        with anyio.fail_after(10), pytest.raises(ConnectionClosedError):
            await accepted.muxed.accept_stream()
        assert isinstance(accepted.muxed.close_reason, RemoteProtocolError)
        assert "aioquic bug" in str(accepted.muxed.close_reason)
