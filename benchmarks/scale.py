"""Scale check and idle-connection memory: one host holds N connections (with S open streams
each) from another process, then everything is closed cleanly.

``python -m benchmarks.scale [--conns 1000] [--streams 10]``: a p2pstack listener, a p2pstack
dialer process opening the connections and streams (each stream proven by a one-byte echo),
the listener's own statistics and RSS while held, then a clean close and a check that the
listener is back to zero connections.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks._procs import Listener, read_until, rss_kib, spawn_dialer


def hold(listener_kind: str, conns: int, streams: int, timeout: float = 120.0) -> dict[str, Any]:
    """Hold ``conns`` connections with ``streams`` streams each on a ``listener_kind`` host
    (dialed by p2pstack); returns counts, RSS and errors."""
    listener = Listener(listener_kind, "yamux")
    try:
        time.sleep(0.5)  # let the runtime finish starting before the baseline is taken
        before = rss_kib(listener.proc.pid)
        dialer = spawn_dialer("p2pstack", listener.addr, "yamux", f"conns:{conns}:{streams}")
        try:
            holding = read_until(dialer, "holding", timeout)
            time.sleep(0.5)  # the listener handles the last upgrades and streams
            after = rss_kib(listener.proc.pid)
            stats = listener.stats() if listener_kind == "p2pstack" else None
            assert dialer.stdin is not None
            dialer.stdin.write("go\n")
            dialer.stdin.flush()
            closed = read_until(dialer, "conns", timeout)
            dialer_rc = dialer.wait(timeout)
        finally:
            if dialer.poll() is None:
                dialer.kill()
                dialer.wait()
        end_stats = None
        if listener_kind == "p2pstack":
            deadline = time.monotonic() + 15
            while True:  # the listener sees the closes shortly after the dialer sends them
                end_stats = listener.stats()
                if end_stats["connections"] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    finally:
        listener_rc = listener.close()
    return {
        "listener": listener_kind,
        "conns": conns,
        "streams_per_conn": streams,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "per_conn_kib": (after - before) / max(1, holding["connections"]),
        "holding": holding,
        "listener_stats": stats,
        "closed": closed,
        "listener_end_stats": end_stats,
        "dialer_rc": dialer_rc,
        "listener_rc": listener_rc,
    }


def scale_ok(r: dict[str, Any]) -> bool:
    """Every connection and stream opened, seen by the listener, closed without errors."""
    n, s = r["conns"], r["conns"] * r["streams_per_conn"]
    return bool(
        r["holding"]["connections"] == n
        and r["holding"]["streams"] == s
        and r["closed"]["errors"] == 0
        and r["closed"]["alive_before_close"] == n
        # + 1: the dialer's first (control) connection, made before the N new ones
        and r["listener_stats"]["connections"] == n + 1
        and r["listener_stats"]["streams"] >= s
        and r["listener_end_stats"]["connections"] == 0
        and r["dialer_rc"] == 0
        and r["listener_rc"] == 0
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--streams", type=int, default=10)
    a = p.parse_args()
    start = time.monotonic()
    r = hold("p2pstack", a.conns, a.streams)
    r["ok"] = scale_ok(r)
    r["seconds"] = time.monotonic() - start
    print(json.dumps(r, indent=2))
    raise SystemExit(0 if r["ok"] else 1)


if __name__ == "__main__":
    main()
