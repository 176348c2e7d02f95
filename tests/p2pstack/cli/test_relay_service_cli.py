"""``p2pstack node --relay-service`` as a subprocess on 127.0.0.1: a peer in this process
reserves a slot, another is refused a circuit to a peer without one, and the node prints both as
JSON events; limit options without ``--relay-service`` fail with one stderr line."""

from __future__ import annotations

import anyio

from p2pstack.identity import Identity
from p2pstack.roots.defaults import open_default_host
from protocols.relay import RelayStatusError, Status
from tests.p2pstack.cli.runner import NodeProcess, assert_one_line_error, run_cli
from tests.protocols.relay.hop_client import connect, reserve


async def _use_relay(relay_addr: str) -> tuple[str, str, Status | None, str]:
    error = ""
    async with (
        open_default_host(listen=["/ip4/127.0.0.1/tcp/0"]) as listener,
        open_default_host(listen=["/ip4/127.0.0.1/tcp/0"]) as dialer,
    ):
        with anyio.fail_after(30):
            relay = (await listener.connect(relay_addr)).remote_peer
            await dialer.connect(relay_addr)
            answer = await reserve(listener, relay)
            try:
                await connect(dialer, relay, Identity.generate().peer_id)  # no reservation
            except RelayStatusError as exc:
                error = str(exc)
        return str(listener.peer_id), str(dialer.peer_id), answer.status, error


def test_node_relays_and_prints_events() -> None:
    node = NodeProcess(["--json", "--relay-service", "--relay-limit-data", "4096"])
    try:
        first = node.wait_event(lambda _: True)
        assert first["event"] == "listening", first
        addr = str(first["addrs"][0])  # type: ignore[index]  # JSON event fields are untyped
        listener, dialer, status, error = anyio.run(_use_relay, addr)
        assert status is Status.OK
        assert "NO_RESERVATION" in error
        accepted = node.wait_event(lambda e: e["event"] == "relay:reservation")
        assert accepted["peer_id"] == listener and accepted["result"] == "accepted"
        assert isinstance(accepted["expire"], int)
        refused = node.wait_event(lambda e: e["event"] == "relay:circuit")
        assert refused["result"] == "refused" and refused["source"] == dialer
        assert refused["status"] == "NO_RESERVATION"
        assert node.stop() == 0
    finally:
        node.kill()


def test_limits_need_the_relay_service() -> None:
    option = "--relay-limit-duration"
    assert_one_line_error(run_cli("node", option, "5"), f"{option} needs --relay-service")


def test_non_positive_limit_is_a_usage_error() -> None:
    result = run_cli("node", "--relay-service", "--relay-limit-data", "0")
    assert result.returncode == 2 and "must be positive" in result.stderr
    assert "Traceback" not in result.stderr
