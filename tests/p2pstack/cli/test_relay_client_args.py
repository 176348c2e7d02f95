"""The relay options of ``p2pstack node``, parsed and checked without starting a node."""

from __future__ import annotations

import pytest

from p2pstack.identity import Identity
from p2pstack.roots.cli._common import UserError
from p2pstack.roots.cli._parser import build_parser
from p2pstack.roots.cli._relay_client import auto_relay, check_relay_options, relay_listen_addr

RELAY = Identity.generate().peer_id


def test_relay_addresses_become_circuit_listen_addresses() -> None:
    for text in (
        f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY}",
        f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY}/p2p-circuit",
    ):
        assert str(relay_listen_addr(text)) == f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY}/p2p-circuit"
    for bad in ("/ip4/127.0.0.1/tcp/1", "not an address", f"/p2p/{RELAY}/p2p-circuit/p2p/{RELAY}"):
        with pytest.raises(UserError, match="--relay"):
            relay_listen_addr(bad)


def test_auto_relay_is_forced_with_the_given_relays() -> None:
    args = build_parser().parse_args(
        ["node", "--auto-relay", "2", "--relay", f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY}"]
    )
    check_relay_options(args)
    _, service = auto_relay(args)
    assert service.config.reservations == 2 and service.config.force
    assert service.config.relays == [f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY}"]


def test_negative_auto_relay_is_refused() -> None:
    args = build_parser().parse_args(["node", "--auto-relay", "-1"])
    with pytest.raises(UserError, match="negative"):
        check_relay_options(args)
