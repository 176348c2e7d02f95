"""The router driver's choice of the first sequence number."""

from __future__ import annotations

import random

import pytest

from p2pstack.identity import Identity
from protocols.pubsub import FloodsubConfig, GossipsubConfig, SignaturePolicy, validate_message
from protocols.pubsub._driver import RouterConfig, RouterDriver


class _ZeroRandom(random.Random):
    """A generator whose random bits are all zero (the worst case for leading zero bytes)."""

    def getrandbits(self, k: int) -> int:
        return 0


@pytest.mark.parametrize("config", [FloodsubConfig(), GossipsubConfig()])
def test_seqno_has_no_leading_zero_byte(config: RouterConfig) -> None:
    # js floodsub re-encodes the seqno from a bigint to check the signature: a leading zero
    # byte would make it reject every message we publish.
    identity = Identity.generate()
    driver = RouterDriver(
        config,
        local=identity.peer_id,
        private_key=identity.private_key,
        rng=_ZeroRandom(),
        now=0.0,
    )
    for _ in range(3):
        message, _, _ = driver.publish("t", b"x", 0.0)
        assert message.seqno is not None and len(message.seqno) == 8
        assert message.seqno[0] != 0
        validate_message(message, SignaturePolicy.STRICT_SIGN)


def test_first_seqno_is_random() -> None:
    identity = Identity.generate()
    seqnos = set()
    for seed in range(4):
        driver = RouterDriver(
            FloodsubConfig(),
            local=identity.peer_id,
            private_key=identity.private_key,
            rng=random.Random(seed),
            now=0.0,
        )
        seqnos.add(driver.publish("t", b"x", 0.0)[0].seqno)
    assert len(seqnos) == 4
