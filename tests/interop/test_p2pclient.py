"""p2pclient 0.3.0 (Python's daemon bindings, in its own venv) drives each daemon of
tests/interop/daemons.py through identify, connect, stream handler/open, DHT and pubsub
(tests/interop/p2pclient/drive.py prints one JSON line per step)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from p2pstack.identity import PeerId, generate_private_key
from tests.interop.daemons import command, selected, spawn_sync, stop_sync, wait_banner_sync

HERE = Path(__file__).resolve().parent
P2PCLIENT_PYTHON = HERE.parent.parent / ".interop" / "p2pclient-venv" / "bin" / "python"
DRIVE = HERE / "p2pclient" / "drive.py"
#: Steps a daemon may refuse: js-libp2p's daemon has no DISCONNECT (ERR_INVALID_REQUEST_TYPE).
MAY_FAIL = {"js": {"disconnect"}}


def drive(controls: list[str], backend: str) -> dict[str, list[dict[str, Any]]]:
    """Run every scenario against the two daemons; the steps, by scenario."""
    public = generate_private_key().public_key
    key = b"/pk/" + PeerId.from_public_key(public).to_bytes()
    proc = subprocess.run(
        [str(P2PCLIENT_PYTHON), str(DRIVE), "streams,dht,pubsub", *controls,
         "--backend", backend, "--key", key.hex(), "--value", public.to_protobuf().hex()],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    steps: dict[str, list[dict[str, Any]]] = {}
    scenario = ""
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        if event["step"] == "scenario":
            scenario = event["name"]
        steps.setdefault(scenario, []).append(event)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return steps


@pytest.mark.parametrize("kind", selected())
def test_p2pclient_drives_the_daemon(kind: str) -> None:
    if not P2PCLIENT_PYTHON.exists():
        raise AssertionError(f"{P2PCLIENT_PYTHON} missing: run `make interop-setup`")
    procs = [spawn_sync(command(kind, ["-dhtServer", "-pubsub"])) for _ in range(2)]
    try:
        banners = [wait_banner_sync(p) for p in procs]
        steps = drive([b.control for b in banners], "trio")
    finally:
        for p in procs:
            stop_sync(p)
    by_name = {(s, e["step"]): e for s, events in steps.items() for e in events}
    failed = {name for (_, name), e in by_name.items() if "error" in e}
    assert failed <= MAY_FAIL.get(kind, set()), by_name

    a, b = (b.peer_id for b in banners)
    assert by_name["streams", "identify"]["peer_id"] == a
    assert by_name["streams", "connect"]["peer_id"] == b
    assert b in by_name["streams", "list_peers"]["peers"]
    opened = by_name["streams", "stream_open"]
    assert (opened["proto"], opened["peer_id"], opened["echoed"]) == (
        "/p2pstack/p2pclient-echo/1.0.0", b, True,
    )  # fmt: skip

    assert by_name["dht", "put_get_value"]["equal"] is True
    assert a in by_name["dht", "provide_find_providers"]["providers"]
    assert by_name["dht", "find_peer"]["peer_id"] == b and by_name["dht", "find_peer"]["addrs"]

    assert "p2pclient-test" in by_name["pubsub", "get_topics"]["topics"]
    assert b in by_name["pubsub", "list_peers"]["peers"]
    received = by_name["pubsub", "publish_receive"]
    assert (received["data"], received["topics"]) == ("hello from p2pclient", ["p2pclient-test"])
