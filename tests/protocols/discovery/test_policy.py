"""The dial policy core, driven with literal times."""

from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2pstack.errors import LocalProtocolError
from p2pstack.identity import Identity, PeerId
from protocols.discovery import DialPolicy, DialPolicyConfig

ME = Identity.generate().peer_id
PEERS = [Identity.generate().peer_id for _ in range(8)]


def policy(**kwargs: float) -> DialPolicy:
    return DialPolicy(ME, DialPolicyConfig(**kwargs))  # type: ignore[arg-type]  # the test's options pass through **kwargs


def test_dials_up_to_the_minimum_within_the_concurrency_bound() -> None:
    core = policy(min_connections=3, max_concurrent_dials=2)
    for peer in PEERS[:5]:
        core.add(peer, 0.0)
    assert core.take_dials() == PEERS[:2]  # oldest first, two at a time
    core.connected(PEERS[0], 1.0)
    core.dial_finished(PEERS[0], 1.0, ok=True)
    assert core.take_dials() == [PEERS[2]]  # 1 connected + 2 in flight = 3
    for peer in PEERS[1:3]:
        core.connected(peer, 1.0)
        core.dial_finished(peer, 1.0, ok=True)
    assert core.take_dials() == []  # three connected: enough
    core.disconnected(PEERS[1], 2.0)
    assert core.take_dials() == [PEERS[1]]  # reconnect to keep three (oldest first)


def test_never_dials_itself_connected_or_in_flight_peers() -> None:
    core = policy(min_connections=5)
    core.add(ME, 0.0)
    core.connected(PEERS[0], 0.0)
    core.add(PEERS[0], 0.0)
    core.add(PEERS[1], 0.0)
    core.add(PEERS[1], 0.0)
    assert core.take_dials() == [PEERS[1]]
    core.add(PEERS[1], 0.5)
    assert core.take_dials() == []
    with pytest.raises(LocalProtocolError):
        core.dial_finished(PEERS[2], 1.0, ok=False)


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    core = policy(min_connections=1, backoff_base=1.0, backoff_max=5.0)
    core.add(PEERS[0], 0.0)
    now = 0.0
    waits = []
    for _ in range(5):
        assert core.take_dials() == [PEERS[0]]
        core.dial_finished(PEERS[0], now, ok=False)
        deadline = core.next_deadline()
        assert deadline is not None
        waits.append(deadline - now)
        core.handle_timer(deadline - 0.01)
        assert core.take_dials() == []
        now = deadline
        core.handle_timer(now)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert core.statistics().dial_failures == 5


def test_success_or_an_inbound_connection_forgets_failures() -> None:
    core = policy(min_connections=2, backoff_base=10.0)
    core.add(PEERS[0], 0.0)
    assert core.take_dials() == [PEERS[0]]
    core.dial_finished(PEERS[0], 0.0, ok=False)
    core.connected(PEERS[0], 1.0)  # the peer dialed us
    core.disconnected(PEERS[0], 2.0)
    assert core.take_dials() == [PEERS[0]]  # no backoff left


def test_no_deadline_without_need_or_room() -> None:
    core = policy(min_connections=0)
    core.add(PEERS[0], 0.0)
    assert core.take_dials() == []
    assert core.next_deadline() is None
    full = policy(min_connections=5, max_concurrent_dials=1)
    full.add(PEERS[0], 0.0)
    full.add(PEERS[1], 0.0)
    assert full.take_dials() == [PEERS[0]]
    assert full.next_deadline() is None  # the only slot is taken


def test_eager_candidates_are_dialed_above_the_minimum() -> None:
    core = policy(min_connections=0)
    core.add(PEERS[0], 0.0, eager=True)
    assert core.take_dials() == [PEERS[0]]
    core.dial_finished(PEERS[0], 0.0, ok=False)
    assert core.next_deadline() == 1.0  # eager: retried with backoff
    core.handle_timer(1.0)
    assert core.take_dials() == [PEERS[0]]
    core.dial_finished(PEERS[0], 1.0, ok=True)
    core.connected(PEERS[0], 1.0)
    core.disconnected(PEERS[0], 2.0)
    assert core.take_dials() == []  # a success ends eagerness


def test_a_connection_closed_before_its_dial_returned_is_not_counted() -> None:
    core = policy(min_connections=1)
    core.add(PEERS[0], 0.0)
    assert core.take_dials() == [PEERS[0]]
    core.connected(PEERS[0], 1.0)
    core.disconnected(PEERS[0], 1.5)
    core.dial_finished(PEERS[0], 2.0, ok=True)
    assert core.take_dials() == [PEERS[0]]


def test_candidates_are_bounded() -> None:
    core = policy(min_connections=0, max_candidates=3)
    for peer in PEERS:
        core.add(peer, 0.0)
    stats = core.statistics()
    assert stats.candidates == 3
    assert stats.evicted == len(PEERS) - 3


def _addr(port: int) -> Multiaddr:
    return Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")


def test_announcements_are_deduplicated() -> None:
    core = policy(reannounce_interval=100.0)
    peer: PeerId = PEERS[0]
    assert core.note(peer, "mdns", [_addr(1)], 0.0)
    assert not core.note(peer, "mdns", [_addr(1)], 1.0)
    assert not core.note(peer, "mdns", [], 2.0)
    assert core.note(peer, "bootstrap", [_addr(1)], 3.0)  # another source
    assert core.note(peer, "mdns", [_addr(2)], 4.0)  # a new address
    assert not core.note(peer, "mdns", [_addr(1), _addr(2)], 5.0)
    assert core.note(peer, "mdns", [_addr(1)], 104.0)  # stale: announced again
    assert not core.note(ME, "mdns", [_addr(1)], 0.0)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        DialPolicyConfig(backoff_base=10.0, backoff_max=1.0)
    with pytest.raises(ValueError):
        DialPolicyConfig(max_concurrent_dials=0)
