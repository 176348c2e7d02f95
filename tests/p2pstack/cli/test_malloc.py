from __future__ import annotations

import sys

import pytest

from p2pstack.roots.cli._malloc import tune_allocator


def test_tuning_applies_on_glibc_and_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2PSTACK_MALLOC_TUNING", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("P2PSTACK_MALLOC_TUNING")
    if sys.platform.startswith("linux"):
        assert tune_allocator() is True
