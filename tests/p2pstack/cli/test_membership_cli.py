"""``p2pstack node --membership --bootstrap MA`` subprocesses on 127.0.0.1: member events as
JSON lines through a join, a crash (SIGKILL: suspect, then dead) and a graceful leave; bad
options fail with one line. Every wait is bounded (``runner``)."""

from __future__ import annotations

import signal
from collections.abc import Callable

from tests.p2pstack.cli.runner import NodeProcess, assert_one_line_error, json_node, run_cli

FAST = ("--membership", "--membership-probe-interval", "0.2")


def _member(peer: object, state: str) -> Callable[[dict[str, object]], bool]:
    return lambda e: e["event"] == "member" and e["peer_id"] == peer and e["state"] == state


def test_members_join_crash_and_leave() -> None:
    with json_node(*FAST) as (seed, seed_info):
        a_peer = seed_info["peer_id"]
        addr = str(seed_info["addrs"][0])  # type: ignore[index]  # JSON event fields are untyped
        crasher = NodeProcess(["--json", *FAST, "--bootstrap", addr])
        try:
            crasher_peer = crasher.wait_event(lambda e: e["event"] == "listening")["peer_id"]
            joined = crasher.wait_event(lambda e: str(e["event"]).startswith("membership_"))
            assert joined == {"event": "membership_joined", "addr": addr}
            seen = crasher.wait_event(_member(a_peer, "alive"))
            assert seen == {
                "event": "member",
                "peer_id": a_peer,
                "state": "alive",
                "incarnation": 0,
            }
            seed.wait_event(_member(crasher_peer, "alive"))
        finally:
            crasher.stop(signal.SIGKILL)
        seed.wait_event(_member(crasher_peer, "suspect"))
        dead = seed.wait_event(_member(crasher_peer, "dead"))
        assert isinstance(dead["incarnation"], int)
        # A graceful leave: SIGTERM makes the node leave, the seed prints "left".
        leaver = NodeProcess(["--json", *FAST, "--bootstrap", addr])
        try:
            leaver_peer = leaver.wait_event(lambda e: e["event"] == "listening")["peer_id"]
            leaver.wait_event(lambda e: e["event"] == "membership_joined")  # it knows the seed
            seed.wait_event(_member(leaver_peer, "alive"))
            assert leaver.stop() == 0
        finally:
            leaver.kill()
        seed.wait_event(_member(leaver_peer, "left"))


def test_bad_membership_options_fail_with_one_line() -> None:
    result = run_cli("node", "--membership", "--bootstrap", "/ip4/127.0.0.1/tcp/1")
    assert_one_line_error(result, "/p2p/")
    result = run_cli("node", "--membership", "--membership-probe-interval", "0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "probe interval" in result.stderr
