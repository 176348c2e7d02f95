"""Scale check of issue 3 item 3: one p2pstack host holds 1,000 concurrent connections from
another process and 10,000 open streams (yamux over TCP + Noise), then everything closes
cleanly. Runs ``benchmarks.scale`` (two OS processes, about 30 s on 2 cores)."""

from __future__ import annotations

import pytest

from benchmarks.scale import hold, scale_ok

pytestmark = pytest.mark.slow

CONNECTIONS = 1000
STREAMS_PER_CONNECTION = 10


def test_thousand_connections_ten_thousand_streams_close_cleanly() -> None:
    r = hold("p2pstack", CONNECTIONS, STREAMS_PER_CONNECTION, timeout=120.0)
    assert r["holding"]["errors"] == 0, r["holding"]
    assert r["holding"]["connections"] == CONNECTIONS
    assert r["holding"]["streams"] == CONNECTIONS * STREAMS_PER_CONNECTION
    # The listener itself counts them (+1: the dialer's first connection).
    assert r["listener_stats"]["connections"] == CONNECTIONS + 1
    assert r["listener_stats"]["streams"] >= CONNECTIONS * STREAMS_PER_CONNECTION
    assert r["closed"]["alive_before_close"] == CONNECTIONS
    assert r["closed"]["errors"] == 0, r["closed"]
    assert r["listener_end_stats"]["connections"] == 0, r["listener_end_stats"]
    assert r["dialer_rc"] == 0 and r["listener_rc"] == 0
    assert scale_ok(r)
