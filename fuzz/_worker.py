"""One fuzzing process: ``python -m fuzz._worker TARGET [libFuzzer arguments]``.

atheris takes the process over (libFuzzer calls ``exit`` when it is done or finds a crash), so
the runner starts one worker per target. The stack is imported inside
``atheris.instrument_imports`` so that its code reports coverage to libFuzzer.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__all__ = ["main"]

#: Packages whose code is instrumented for coverage.
INSTRUMENTED = ["p2pstack", "transports", "protocols", "fuzz"]


def main(argv: list[str]) -> None:
    """Fuzz the target named by ``argv[1]``; the other arguments go to libFuzzer.

    Raises:
        SystemExit: libFuzzer ends the process (status 0 when the time or runs are used up,
            non-zero on a crash).
    """
    # Imported by name: atheris ships no type information.
    atheris = importlib.import_module("atheris")
    from fuzz._registry import load

    name = argv[1]
    with atheris.instrument_imports(include=INSTRUMENTED):
        target: Callable[[bytes], None] = load(name)
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
