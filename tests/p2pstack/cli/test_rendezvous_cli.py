"""``p2pstack node --rendezvous-point`` and ``--rendezvous MA --namespace NS`` subprocesses on
127.0.0.1: two nodes register at a point and the second prints the first as a ``peer:discovery``
event; bad options fail with one stderr line. Every wait is bounded (``runner``)."""

from __future__ import annotations

import pytest

from p2pstack.identity import Identity
from tests.p2pstack.cli.runner import NodeProcess, assert_one_line_error, run_cli


def _start(*options: str) -> tuple[NodeProcess, str, str]:
    process = NodeProcess(["--json", *options])
    try:
        first = process.wait_event(lambda _: True)
        assert first["event"] == "listening", first
        addrs = first["addrs"]
        assert isinstance(addrs, list)
        return process, str(first["peer_id"]), str(addrs[0])
    except BaseException:
        process.kill()
        raise


def test_two_nodes_find_each_other_through_a_point() -> None:
    point, _, point_addr = _start("--rendezvous-point")
    nodes: list[NodeProcess] = []
    try:
        a, a_id, a_addr = _start("--rendezvous", point_addr, "--namespace", "cli-test")
        nodes.append(a)
        b, _, _ = _start("--rendezvous", point_addr, "--namespace", "cli-test")
        nodes.append(b)
        found = b.wait_event(lambda e: e["event"] == "peer:discovery" and e["peer_id"] == a_id)
        assert found["source"] == "rendezvous"
        assert a_addr.rsplit("/p2p/", 1)[0] in found["addrs"]  # type: ignore[operator]  # JSON event fields are untyped
        # (a would print b at its next poll, 10 s later: polling again is tested in-process)
        assert not any(e.get("peer_id") == a_id for e in a.events()[1:])  # never itself
        for node in (a, b, point):
            assert node.stop() == 0
    finally:
        for node in (*nodes, point):
            node.kill()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--namespace", "x"], "--namespace needs --rendezvous"),
        (["--rendezvous", "/ip4/127.0.0.1/tcp/1"], "does not end in /p2p/<peer-id>"),
        (["--rendezvous", "not-an-addr"], "is not a multiaddr"),
        (
            ["--rendezvous", f"/ip4/127.0.0.1/tcp/1/p2p/{Identity.generate().peer_id}",
             "--namespace", "x" * 256],
            "a namespace is 1 to 255 bytes",
        ),
    ],
)  # fmt: skip
def test_bad_rendezvous_options(args: list[str], fragment: str) -> None:
    result = run_cli("node", *args)
    status = 2 if "namespace is" in fragment else 1
    detail = f"{result.returncode} {result.stderr!r}"
    if status == 2:  # argparse's own usage error: usage line plus one error line
        assert result.returncode == 2 and fragment in result.stderr, detail
        assert "Traceback" not in result.stderr, detail
    else:
        assert_one_line_error(result, fragment)
