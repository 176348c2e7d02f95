"""The long lane: tests marked ``long`` are deselected unless ``--long`` is given."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


def test_long_tests_run_only_with_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    long: the long lane\n")
    pytester.makepyfile(
        """
        import pytest

        def test_quick():
            pass

        @pytest.mark.long
        def test_slow():
            pass
        """
    )
    default = pytester.runpytest("-q")
    default.assert_outcomes(passed=1, deselected=1)
    with_long = pytester.runpytest("-q", "--long")
    with_long.assert_outcomes(passed=2)
