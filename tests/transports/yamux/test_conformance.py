"""The public muxer conformance suite run against yamux on both anyio backends."""

from __future__ import annotations

import pytest

from p2pstack.testing import check_muxer
from transports.yamux import Yamux


@pytest.mark.anyio
async def test_yamux_passes_check_muxer() -> None:
    await check_muxer(Yamux)
