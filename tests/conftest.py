"""Shared pytest configuration: async tests run on both anyio backends (asyncio and trio);
tests marked ``long`` form the long lane, run only with ``--long``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--long``: also run the long lane (tests marked ``long``)."""
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="also run the long lane: tests marked 'long' (minutes each; not part of CI)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``--long``, tests marked ``long`` are deselected (reported as deselected, never
    as passed or skipped), so the CI run stays within its time budget."""
    if config.getoption("--long"):
        return
    kept = [item for item in items if item.get_closest_marker("long") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item.get_closest_marker("long") is not None]
        )
        items[:] = kept


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs once per backend."""
    backend: str = request.param
    return backend
