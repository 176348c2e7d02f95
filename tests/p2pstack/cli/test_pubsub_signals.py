"""``p2pstack pubsub sub|pub`` stopped by SIGINT or SIGTERM before it has subscribed (or
published), here while its bootstrap peer never answers: one line on stderr, no traceback,
nothing on stdout, exit 128 + the signal number (130, 143)."""

from __future__ import annotations

import signal
import socket

import pytest

from p2pstack.identity import Identity
from tests.p2pstack.cli.runner import CLIENT_TIMEOUT, NodeProcess

TOPIC = "signals"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", ["sub", "pub"])
def test_signal_before_subscribed_exits_cleanly(command: str, sig: signal.Signals) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        bootstrap = f"/ip4/127.0.0.1/tcp/{port}/p2p/{Identity.generate().peer_id}"
        message = ["hello"] if command == "pub" else []
        args = [TOPIC, *message, "--bootstrap", bootstrap, "--timeout", "60"]
        client = NodeProcess(args, command=("pubsub", command))
        try:
            listener.settimeout(CLIENT_TIMEOUT)
            conn, _ = listener.accept()  # the client is dialing: well past its start-up
            with conn:
                status = client.stop(sig)
        finally:
            client.kill()
    assert status == 128 + sig, (status, client.stderr)
    assert client.lines == []
    assert "Traceback" not in client.stderr
    done = "publishing on" if command == "pub" else "subscribing to"
    assert client.stderr.splitlines() == [
        f"p2pstack: interrupted by {sig.name} before {done} {TOPIC}"
    ]
