"""Bad input from relays and through them: each refused with the spec's status or a typed error,
within bounded time, and the node keeps working."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.connection import Stream
from p2pstack.errors import NETWORK_ERRORS, DialError, TransportError
from p2pstack.framing import encode_lp, read_lp_message, write_lp_message
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity, PeerId
from protocols.relay import HOP_PROTOCOL_ID, STOP_PROTOCOL_ID, CircuitConfig
from protocols.relay.pb import circuit_pb2 as pb
from tests.protocols.relay.mini_relay import MiniRelay, stop_connect
from tests.protocols.relay.test_client import node, relay_circuit

pytestmark = pytest.mark.anyio

LISTEN = ("/ip4/127.0.0.1/tcp/0",)
SHORT = CircuitConfig(hop_timeout=1.0, stop_timeout=1.0, min_refresh=0.2, retry_min=0.1)


async def stop_answer(relay: Host, target: Host, request: pb.StopMessage) -> int:
    stream = await relay.new_stream(target.peer_id, STOP_PROTOCOL_ID)
    await write_lp_message(stream, request)
    answer = await read_lp_message(stream, pb.StopMessage, max_size=4096)
    await stream.aclose()
    return answer.status


async def test_stop_requests_that_break_the_spec_get_its_status_codes() -> None:
    async with node(MiniRelay(), listen=LISTEN) as relay, node() as listener:
        with anyio.fail_after(20):
            await listener.listen([relay_circuit(relay)])
            bad_id = pb.StopMessage(type=pb.StopMessage.CONNECT, peer=pb.Peer(id=b"\x00\x01"))
            assert await stop_answer(relay, listener, bad_id) == pb.MALFORMED_MESSAGE
            no_peer = pb.StopMessage(type=pb.StopMessage.CONNECT)
            assert await stop_answer(relay, listener, no_peer) == pb.MALFORMED_MESSAGE
            status = pb.StopMessage(type=pb.StopMessage.STATUS, status=pb.OK)
            assert await stop_answer(relay, listener, status) == pb.UNEXPECTED_MESSAGE
            itself = pb.StopMessage(
                type=pb.StopMessage.CONNECT, peer=pb.Peer(id=relay.peer_id.to_bytes())
            )
            assert await stop_answer(relay, listener, itself) == pb.MALFORMED_MESSAGE
        assert listener.connections(relay.peer_id)[0].limited is False


async def test_oversized_or_garbage_stop_streams_are_closed() -> None:
    async with node(MiniRelay(), listen=LISTEN) as relay, node() as listener:
        with anyio.fail_after(20):
            await listener.listen([relay_circuit(relay)])
            for payload in (encode_lp(b"\x00" * 5000), b"\xff" * 16):
                stream = await relay.new_stream(listener.peer_id, STOP_PROTOCOL_ID)
                await stream.send(payload)
                with pytest.raises((anyio.EndOfStream, *NETWORK_ERRORS)):
                    await stream.receive()
                await stream.aclose()
            # A well-framed body that is no StopMessage: the spec's status, then the end.
            stream = await relay.new_stream(listener.peer_id, STOP_PROTOCOL_ID)
            await stream.send(encode_lp(b"\xff\xff\xff"))
            answer = await read_lp_message(stream, pb.StopMessage, max_size=4096)
            assert answer.status == pb.MALFORMED_MESSAGE
            with pytest.raises((anyio.EndOfStream, *NETWORK_ERRORS)):
                await stream.receive()
            await stream.aclose()
            # Still listening through the relay.
            assert await stop_connect(relay, listener.peer_id, Identity.generate().peer_id) in (
                pb.OK,
                pb.MALFORMED_MESSAGE,
            )


async def test_silent_stop_stream_is_closed_after_the_timeout() -> None:
    async with node(MiniRelay(), listen=LISTEN) as relay, node(config=SHORT) as listener:
        with anyio.fail_after(20):
            await listener.listen([relay_circuit(relay)])
            stream = await relay.new_stream(listener.peer_id, STOP_PROTOCOL_ID)
            await stream.send(b"")  # the protocol proposal only; then nothing
            with pytest.raises((anyio.EndOfStream, *NETWORK_ERRORS)):
                await stream.receive()


async def test_stop_accepted_but_no_handshake_adds_no_connection() -> None:
    quick = HostConfig(upgrade_timeout=1.0)
    async with (
        node(MiniRelay(), listen=LISTEN) as relay,
        node(config=SHORT, host_config=quick) as listener,
    ):
        source = Identity.generate().peer_id
        with anyio.fail_after(30):
            await listener.listen([relay_circuit(relay)])
            stream = await relay.new_stream(listener.peer_id, STOP_PROTOCOL_ID)
            request = pb.StopMessage(
                type=pb.StopMessage.CONNECT, peer=pb.Peer(id=source.to_bytes())
            )
            await write_lp_message(stream, request)
            answer = await read_lp_message(stream, pb.StopMessage, max_size=4096)
            assert answer.status == pb.OK
            await stream.send(b"not a multistream header\n" * 4)
            with pytest.raises((anyio.EndOfStream, *NETWORK_ERRORS)):
                while True:
                    await stream.receive()
        assert listener.connections(source) == []


class EvilHop:
    """A relay whose hop answers are wrong: ``mode`` picks how."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def start(self, host: Host) -> None:
        host.set_stream_handler(HOP_PROTOCOL_ID, self._hop)

    async def stop(self) -> None:
        pass

    async def _hop(self, stream: Stream) -> None:
        await read_lp_message(stream, pb.HopMessage, max_size=4096)
        if self.mode == "silent":
            await anyio.sleep(30)
        elif self.mode == "wrong-type":
            await write_lp_message(stream, pb.HopMessage(type=pb.HopMessage.RESERVE))
        elif self.mode == "garbage":
            await stream.send(b"\xff" * 32)


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [("silent", "no answer"), ("wrong-type", "other than STATUS"), ("garbage", "uvarint")],
)
async def test_bad_hop_answers_fail_the_dial(mode: str, fragment: str) -> None:
    async with node(EvilHop(mode), listen=LISTEN) as relay, node(config=SHORT) as dialer:
        target = Identity.generate().peer_id
        with anyio.fail_after(20), pytest.raises(DialError, match=fragment):
            await dialer.connect(f"{relay_circuit(relay)}/p2p/{target}")
        with anyio.fail_after(20), pytest.raises(TransportError, match=fragment):
            await dialer.listen([relay_circuit(relay)])
        assert dialer.addrs == []


async def test_inbound_circuits_are_bounded() -> None:
    bounded = CircuitConfig(max_inbound_circuits=2, stop_timeout=5.0)
    async with node(MiniRelay(), listen=LISTEN) as relay, node(config=bounded) as listener:
        with anyio.fail_after(20):
            await listener.listen([relay_circuit(relay)])
            for _ in range(2):  # accepted, then held by their (never starting) handshakes
                held = await relay.new_stream(listener.peer_id, STOP_PROTOCOL_ID)
                await write_lp_message(held, connect_from(Identity.generate().peer_id))
                answer = await read_lp_message(held, pb.StopMessage, max_size=4096)
                assert answer.status == pb.OK
            third = await relay.new_stream(listener.peer_id, STOP_PROTOCOL_ID)
            await write_lp_message(third, connect_from(Identity.generate().peer_id))
            with pytest.raises((anyio.EndOfStream, *NETWORK_ERRORS)):
                await third.receive()


def connect_from(source: PeerId) -> pb.StopMessage:
    return pb.StopMessage(type=pb.StopMessage.CONNECT, peer=pb.Peer(id=source.to_bytes()))
