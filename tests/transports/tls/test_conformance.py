"""TLS through the public security-channel conformance suite, on both anyio backends."""

from __future__ import annotations

import pytest

from p2pstack.testing import check_security_channel
from transports.tls import Tls


@pytest.mark.anyio
async def test_tls_passes_check_security_channel() -> None:
    await check_security_channel(Tls)
