"""``p2pstack node``'s auto-relay looks for relays in the DHT when the node runs it
(``--auto-relay N`` or ``--autonat`` with a DHT option), and only then."""

from __future__ import annotations

import pytest

from p2pstack.roots.cli._dht_args import node_wants_dht
from p2pstack.roots.cli._parser import build_parser
from p2pstack.roots.cli._relay_client import node_auto_relay
from p2pstack.roots.relay_discovery import dht_relay_candidates

BOOTSTRAP = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9yFtmbWwvJYRE"


@pytest.mark.parametrize(
    ("argv", "source", "forced"),
    [
        (["--dht", "server", "--auto-relay", "2"], dht_relay_candidates, True),
        (["--bootstrap", BOOTSTRAP, "--autonat"], dht_relay_candidates, False),
        (["--dht", "client", "--autonat"], dht_relay_candidates, False),
        (["--auto-relay", "1"], None, True),
        (["--autonat"], None, False),
        (["--pubsub", "gossipsub", "--bootstrap", BOOTSTRAP, "--auto-relay", "1"], None, True),
    ],
)
def test_auto_relay_gets_the_dht_source_with_the_dht(
    argv: list[str], source: object, forced: bool
) -> None:
    args = build_parser().parse_args(["node", *argv])
    _, auto = node_auto_relay(args, dht=node_wants_dht(args) is not None)
    assert auto.candidates is source
    assert auto.config.force is forced
