from typing import Self

class KeyPair:
    public_bytes: bytes
    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> Self: ...
    @classmethod
    def from_public_bytes(cls, public_bytes: bytes) -> Self: ...
