"""Public conformance suites a transport, muxer or other plug-in runs in its own tests."""

from p2pstack.testing._budget import CountingBudget
from p2pstack.testing._muxer import FakeSecureConnection, check_muxer, fake_secure_pair
from p2pstack.testing._security import check_security_channel
from p2pstack.testing._transport import check_transport
from p2pstack.testing._upgraded import check_upgraded_transport

__all__ = [
    "CountingBudget",
    "FakeSecureConnection",
    "check_muxer",
    "check_security_channel",
    "check_transport",
    "check_upgraded_transport",
    "fake_secure_pair",
]
