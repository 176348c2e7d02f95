"""mplex through the public muxer conformance suite, on both anyio backends."""

from __future__ import annotations

import pytest

from p2pstack.testing import check_muxer
from transports.mplex import Mplex, MplexConfig


@pytest.mark.anyio
async def test_check_muxer() -> None:
    # Unpaced: the suite opens 100 streams at once, which the default pacing (5 per 1.25 s,
    # for js-libp2p's sake) would spread over ~24 s; pacing has its own tests.
    await check_muxer(lambda: Mplex(config=MplexConfig(stream_open_window=0)))
