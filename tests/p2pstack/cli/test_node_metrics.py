"""``p2pstack node --metrics HOST:PORT``: Prometheus metrics of the node's resource manager and
host statistics, and the one-line errors when they cannot be served."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from tests.p2pstack.cli.runner import CLIENT_TIMEOUT, assert_one_line_error, json_node, run_cli

SYSTEM_INBOUND = 'p2pstack_resource_connections{direction="inbound",scope="system"}'


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(\S+) (\S+)", line)
        if match and not line.startswith("#"):
            samples[match[1]] = float(match[2])
    return samples


def _scrape_until(
    url: str, check: Callable[[dict[str, float]], bool], timeout: float = 10.0
) -> dict[str, float]:
    # The node runs in another process and reports no event for a pending connection: scrape
    # again until the expected value shows, within a deadline.
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(url)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, f"metrics never matched: {samples}"
        time.sleep(0.05)


def test_metrics_count_an_inbound_connection() -> None:
    with json_node("--metrics", "127.0.0.1:0") as (node, first):
        url = first["metrics"]
        assert isinstance(url, str)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url), url
        before = _scrape_until(url, lambda s: s.get(SYSTEM_INBOUND) == 0.0)
        assert before["p2pstack_host_connections"] == 0.0
        addrs = first["addrs"]
        assert isinstance(addrs, list)
        port = int(str(addrs[0]).split("/")[4])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            held = _scrape_until(url, lambda s: s.get(SYSTEM_INBOUND) == 1.0)
            assert held["p2pstack_resource_pending_upgrades"] == 1.0
        _scrape_until(url, lambda s: s.get(SYSTEM_INBOUND) == 0.0)
        assert node.stop(signal.SIGTERM) == 0
        assert node.stderr == ""


def test_metrics_address_must_be_host_port() -> None:
    result = run_cli("node", "--metrics", "localhost")
    assert_one_line_error(result, "--metrics", "host:port")


def test_metrics_without_prometheus_client() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if it were not installed\n"
        "from p2pstack.roots.cli import main\n"
        "sys.exit(main(['node', '--metrics', '127.0.0.1:0']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert_one_line_error(result, "prometheus-client", "p2pstack[metrics]")
