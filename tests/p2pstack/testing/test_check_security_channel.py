"""check_security_channel can fail: each deliberately broken channel is caught, and the same
wrapper without a defect passes (so the wrapper itself is not what fails)."""

from __future__ import annotations

import pytest

from p2pstack.testing import check_security_channel
from tests.p2pstack.testing.broken import BrokenChannel
from transports.plaintext import Plaintext


@pytest.mark.anyio
async def test_the_wrapper_without_a_defect_passes() -> None:
    await check_security_channel(lambda: BrokenChannel(Plaintext(), "none"))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("defect", "failure"),
    [
        ("wrong remote peer", r"handshake both ways.*remote_peer is not the peer's ID"),
        ("ignores the expected peer", r"wrong expected peer.*not PeerIdMismatch"),
        ("corrupts large writes", r"data both ways.*bulk data arrived altered"),
        ("ignores send_eof", r"half-close.*did not raise ClosedResourceError"),
        ("crashes on garbage", r"garbage.*ValueError.*not HandshakeError"),
        ("leaks the connection", r"wrong expected peer.*timed out"),
    ],
)
async def test_a_broken_channel_fails(defect: str, failure: str) -> None:
    with pytest.raises(AssertionError, match=failure):
        await check_security_channel(lambda: BrokenChannel(Plaintext(), defect), time_limit=3)
