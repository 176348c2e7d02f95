"""The ``nat_traversal`` workload's DCUtR driver: ``protocols.dcutr``'s cores over a relayed
channel on the virtual clock (real ``HolePunch`` bytes, the RTT measured on the simulator's
clock, the dial after RTT / 2, the attempt limit, a silent peer, a protocol violation)."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack.roots.scenarios._nat_dcutr import DirectDial, initiate, respond
from p2pstack.sim import run_virtual
from protocols.dcutr import DcutrMessage, MessageType, UnexpectedMessageError, encode_message

LATENCY = 0.1  # one way
B_ADDR, A_ADDR = "/ip4/11.0.0.2/tcp/4002", "/ip4/11.0.0.1/tcp/4002"


class _Link:
    """One direction of a relayed path: chunks arrive ``LATENCY`` later, in order."""

    def __init__(self, tg: TaskGroup, log: list[tuple[float, bytes]]) -> None:
        self.log = log
        self._wire: MemoryObjectSendStream[tuple[float, bytes]]
        self._wire_out: MemoryObjectReceiveStream[tuple[float, bytes]]
        self._wire, self._wire_out = anyio.create_memory_object_stream[tuple[float, bytes]](64)
        self._in: MemoryObjectSendStream[bytes]
        self.out: MemoryObjectReceiveStream[bytes]
        self._in, self.out = anyio.create_memory_object_stream[bytes](64)
        tg.start_soon(self._carry)

    async def _carry(self) -> None:
        async for at, data in self._wire_out:
            await anyio.sleep(at - anyio.current_time())
            await self._in.send(data)

    async def put(self, data: bytes) -> None:
        self.log.append((anyio.current_time(), data))
        await self._wire.send((anyio.current_time() + LATENCY, data))


class _End:
    def __init__(self, out: _Link, inbox: _Link) -> None:
        self._out, self._inbox = out, inbox

    async def send(self, data: bytes) -> None:
        await self._out.put(data)

    async def receive(self) -> bytes:
        return await self._inbox.out.receive()


Calls = list[tuple[float, tuple[str, ...]]]
Log = list[tuple[float, bytes]]


def _dialer(results: Sequence[bool], calls: Calls) -> DirectDial:
    async def dial(addrs: Sequence[str]) -> bool:
        calls.append((anyio.current_time(), tuple(addrs)))
        await anyio.sleep(1.0)  # the attempt's dial timeout
        return results[len(calls) - 1]

    return dial


def _run(
    a_results: Sequence[bool], b_results: Sequence[bool], *, a_silent: bool = False
) -> tuple[int, int, Log, Log, Calls, Calls]:
    b_log: list[tuple[float, bytes]] = []
    a_log: list[tuple[float, bytes]] = []
    a_calls: list[tuple[float, tuple[str, ...]]] = []
    b_calls: list[tuple[float, tuple[str, ...]]] = []
    out = [0, 0]

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            b_to_a, a_to_b = _Link(tg, b_log), _Link(tg, a_log)
            b, a = _End(b_to_a, a_to_b), _End(a_to_b, b_to_a)

            async def run_b() -> None:
                out[1] = await initiate(
                    b, [B_ADDR], _dialer(b_results, b_calls), attempts=3, timeout=5.0
                )

            async def run_a() -> None:
                out[0] = await respond(
                    a, [A_ADDR], _dialer(a_results, a_calls), attempts=3, timeout=5.0
                )

            with anyio.fail_after(60):
                async with anyio.create_task_group() as peers:
                    peers.start_soon(run_b)
                    if not a_silent:
                        peers.start_soon(run_a)
            tg.cancel_scope.cancel()

    run_virtual(main)
    return out[0], out[1], b_log, a_log, a_calls, b_calls


def _msg(kind: MessageType, *addrs: str) -> bytes:
    return encode_message(DcutrMessage(kind, tuple(Multiaddr(a) for a in addrs)))


def test_connect_sync_and_the_dial_after_half_the_round_trip() -> None:
    a, b, b_log, a_log, a_calls, b_calls = _run([True], [True])
    assert (a, b) == (1, 1)
    # The real wire bytes: B's CONNECT at 0, A's CONNECT back at 0.1, B's SYNC at 0.2.
    assert b_log == [(0.0, _msg(MessageType.CONNECT, B_ADDR)), (0.2, _msg(MessageType.SYNC))]
    assert [m for _, m in a_log] == [_msg(MessageType.CONNECT, A_ADDR)]
    assert a_log[0][0] == pytest.approx(0.1)
    # RTT 0.2 s: B dials RTT / 2 after its SYNC, when the SYNC reaches A and A dials.
    assert [c for _, c in b_calls] == [(A_ADDR,)] and [c for _, c in a_calls] == [(B_ADDR,)]
    assert b_calls[0][0] == pytest.approx(0.3) and a_calls[0][0] == pytest.approx(0.3)


def test_failed_dials_retry_until_the_attempt_limit() -> None:
    a, b, b_log, a_log, a_calls, b_calls = _run([False, False, True], [False, False, True])
    assert (a, b) == (3, 3) and len(a_calls) == len(b_calls) == 3
    a, b, b_log, a_log, a_calls, b_calls = _run([False] * 3, [False] * 3)
    assert (a, b) == (0, 0) and len(a_calls) == len(b_calls) == 3
    assert [m for _, m in b_log].count(_msg(MessageType.SYNC)) == 3 and len(a_log) == 3


def test_a_silent_peer_ends_the_exchange_after_the_response_timeout() -> None:
    a, b, b_log, _, _, b_calls = _run([], [], a_silent=True)
    assert (a, b) == (0, 0) and b_calls == [] and len(b_log) == 1


def test_a_message_out_of_turn_is_a_protocol_error() -> None:
    class _Bogus:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        async def send(self, data: bytes) -> None:
            self.sent.append(data)

        async def receive(self) -> bytes:
            await anyio.sleep(0.2)
            return _msg(MessageType.SYNC)  # a SYNC to the side that sent CONNECT

    async def main() -> None:
        async def never(addrs: Sequence[str]) -> bool:
            raise AssertionError("no dial without CONNECT")

        with pytest.raises(UnexpectedMessageError):
            await initiate(_Bogus(), [B_ADDR], never, attempts=3, timeout=5.0)

    run_virtual(main)
