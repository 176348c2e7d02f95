"""plaintext/2.0.0 through the public security-channel conformance suite, on both anyio
backends."""

from __future__ import annotations

import pytest

from p2pstack.testing import check_security_channel
from transports.plaintext import Plaintext


@pytest.mark.anyio
async def test_plaintext_passes_check_security_channel() -> None:
    await check_security_channel(Plaintext)
