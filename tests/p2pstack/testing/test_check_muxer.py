"""check_muxer can fail: each deliberately broken muxer is caught, and the same wrapper without
a defect passes (so the wrapper itself is not what fails)."""

from __future__ import annotations

import pytest

from p2pstack.testing import check_muxer
from tests.p2pstack.testing.broken import BrokenMuxer
from transports.yamux import Yamux


@pytest.mark.anyio
async def test_the_wrapper_without_a_defect_passes() -> None:
    await check_muxer(lambda: BrokenMuxer(Yamux(), "none"))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("defect", "failure"),
    [
        ("returns b'' at end of stream", r"half-close.*returned b'' instead of raising"),
        ("never signals end of stream", r"half-close.*timed out"),
        ("reports a reset as end of stream", r"reset.*reported as a clean end of stream"),
        ("drops the last chunk", r"open/accept and data both ways.*timed out"),
    ],
)
async def test_a_broken_muxer_fails(defect: str, failure: str) -> None:
    with pytest.raises(AssertionError, match=failure):
        await check_muxer(lambda: BrokenMuxer(Yamux(), defect), time_limit=2)
