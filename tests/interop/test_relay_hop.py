"""js-libp2p (@libp2p/circuit-relay-v2 4.2.13) and py-libp2p 0.8.1 (libp2p.relay.circuit_v2) as
clients of a p2pstack relay: a listener reserves, a dialer connects through the relay and echoes
on a stream, for every listener/dialer pairing; before that, the dialer's dial to a peer without
a reservation is refused with NO_RESERVATION; a circuit past its data limit is reset by the
relay."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from p2pstack.identity import Identity
from protocols.relay import CircuitClosed, CircuitOpened, RelayConfig, ReservationAccepted
from tests.interop.relay_peers import relay_host, run_relay_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    # The relay's logic is tested on both backends in tests/protocols/relay; here the peers
    # are what is tested, and each run costs a Node or Python start-up.
    return "asyncio"


KINDS = ("js", "py")
#: Generous: the peers start a Node or Python runtime on a loaded machine.
TIMEOUT = 60.0


@pytest.mark.parametrize("dialer", KINDS)
@pytest.mark.parametrize("listener", KINDS)
async def test_echo_through_our_relay(listener: str, dialer: str, tmp_path: Path) -> None:
    nobody = str(Identity.generate().peer_id)
    async with relay_host() as relay:
        addr = str(relay.addrs[0])
        with relay.events.subscribe(ReservationAccepted, CircuitOpened, CircuitClosed) as events:
            async with run_relay_client(
                listener, ["--relay", addr, "--listen"], log_dir=tmp_path
            ) as lp:
                listening = await lp.wait_for("listening", TIMEOUT)
                target = str(listening["peer_id"])
                assert any("/p2p-circuit" in a and a.startswith(addr) for a in listening["addrs"])
                args = ["--relay", addr, "--dial", target, "--size", "20000"]
                # First a peer without a reservation: refused, and the error says so.
                args += ["--refused", nobody]
                async with run_relay_client(dialer, args, log_dir=tmp_path) as dp:
                    refused = await dp.wait_for("dial_failed", TIMEOUT)
                    echoed = await dp.wait_for("echoed", TIMEOUT)
            assert refused["peer_id"] == nobody
            assert "NO_RESERVATION" in refused["message"], refused
            assert echoed["bytes"] == 20000
            seen: list[object] = []
            with anyio.fail_after(TIMEOUT):  # a reservation (maybe renewed), then the circuit
                while not any(isinstance(e, CircuitOpened) for e in seen):
                    seen.append(await events.receive())
    accepted = next(e for e in seen if isinstance(e, ReservationAccepted))
    assert str(accepted.peer) == target
    opened = [e for e in seen if isinstance(e, CircuitOpened)]
    assert opened and str(opened[0].target) == target


@pytest.mark.parametrize("kind", KINDS)
async def test_data_limit_resets_the_circuit(kind: str, tmp_path: Path) -> None:
    limit = 30_000
    async with relay_host(RelayConfig(limit_data=limit)) as relay:
        addr = str(relay.addrs[0])
        with relay.events.subscribe(CircuitClosed) as events:
            async with run_relay_client(
                kind, ["--relay", addr, "--listen"], log_dir=tmp_path
            ) as lp:
                target = str((await lp.wait_for("listening", TIMEOUT))["peer_id"])
                args = ["--relay", addr, "--dial", target, "--size", "300000", "--timeout", "20"]
                async with run_relay_client(kind, args, log_dir=tmp_path) as dp:
                    failed = await dp.wait_for("echo_failed", TIMEOUT)
                with anyio.fail_after(TIMEOUT):
                    closed = await events.receive()
    assert failed["received"] < 300_000
    assert closed.reason == "data limit", closed
    assert max(closed.bytes_relayed) == limit
