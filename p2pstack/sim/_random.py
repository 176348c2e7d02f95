"""Seeded, labelled randomness for deterministic simulation: one root seed, independent streams
per purpose (``"node/3/identity"``), so adding a consumer never shifts another's numbers."""

from __future__ import annotations

import hashlib
import random

__all__ = ["SeededRandom", "derive_seed"]


def derive_seed(seed: int, label: str) -> int:
    """A 64-bit seed for stream ``label`` of root ``seed`` (SHA-256 of both)."""
    digest = hashlib.sha256(f"{seed}\x00{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class SeededRandom(random.Random):
    """A ``random.Random`` seeded from ``(seed, label)``, with a ``random_bytes`` method in the
    ``Callable[[int], bytes]`` shape the stack injects (keys, Noise, ping payloads).

    Args:
        seed: the root seed of the run.
        label: what this stream is for.
    """

    def __init__(self, seed: int, label: str = "") -> None:
        super().__init__(derive_seed(seed, label))
        self.root_seed = seed
        self.label = label

    def random_bytes(self, size: int) -> bytes:
        """``size`` pseudo-random bytes (never for real keys: only for simulations)."""
        return self.randbytes(size)

    def child(self, label: str) -> SeededRandom:
        """An independent stream ``<this label>/<label>`` of the same root seed."""
        return SeededRandom(self.root_seed, f"{self.label}/{label}" if self.label else label)
