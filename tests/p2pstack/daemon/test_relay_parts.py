"""``relay_parts``: the circuit transport always, the relay service with ``-relay`` (p2pd's
default true) only."""

from __future__ import annotations

from p2pstack.roots.daemon import parse_flags
from p2pstack.roots.daemon._main import relay_parts
from protocols.relay import CircuitRelayTransport, RelayService


def test_relay_by_default() -> None:
    transports, services = relay_parts(parse_flags([]))
    assert [type(t) for t in transports] == [CircuitRelayTransport]
    assert [type(s) for s in services] == [RelayService]


def test_relay_false_keeps_the_transport_only() -> None:
    transports, services = relay_parts(parse_flags(["-relay=false"]))
    assert [type(t) for t in transports] == [CircuitRelayTransport]
    assert services == []
