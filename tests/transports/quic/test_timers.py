"""The driver's timers on a clock that stands still while tasks run (the simulator's), and the
``DatagramSocket`` seam the endpoint reads and writes through."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.sim import run_virtual
from transports.quic import QuicConfig, UdpSocket, open_udp_socket
from transports.quic._connection import QuicMuxedConnection

DUE = 0.353123925


class StuckLossTimer:
    """The part of aioquic's connection that ``_on_deadline`` uses, with a loss timer as
    rounding can leave it: due at ``at`` but fired only by a time past ``at``."""

    def __init__(self, at: float) -> None:
        self.at: float | None = at
        self.calls: list[float] = []

    def get_timer(self) -> float | None:
        return self.at

    def handle_timer(self, now: float) -> None:
        self.calls.append(now)
        if self.at is not None and now > self.at:
            self.at = None

    def next_event(self) -> None:
        return None


def test_a_timer_left_due_by_rounding_is_fired_again_just_after() -> None:
    async def main() -> StuckLossTimer:
        quic = StuckLossTimer(DUE)
        conn = QuicMuxedConnection(quic, None, QuicConfig(), is_client=True)  # type: ignore[arg-type]  # no endpoint: the timers under test never use it
        conn._on_deadline(DUE)
        return quic

    quic = run_virtual(main)
    assert quic.calls == [DUE, DUE + 1e-6]
    assert quic.get_timer() is None  # no longer due: the driver's loop can move on


@pytest.mark.anyio
async def test_udp_socket_batches_and_reports_sources() -> None:
    a, b = await open_udp_socket("127.0.0.1", 0), await open_udp_socket("127.0.0.1", 0)
    assert isinstance(a, UdpSocket) and a.local_address[1] != 0
    try:
        await a.send([(b"one", b.local_address), (b"two", b.local_address)])
        got: list[tuple[bytes, tuple[str, int]]] = []
        with anyio.fail_after(5):
            while len(got) < 2:
                got += await b.receive(64)
        assert got == [(b"one", a.local_address), (b"two", a.local_address)]
    finally:
        a.close()
        b.close()
    with pytest.raises(anyio.ClosedResourceError):
        await b.receive(64)
