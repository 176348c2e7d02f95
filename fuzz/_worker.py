"""One fuzzing process: ``python -m fuzz._worker TARGET [libFuzzer arguments]``.

atheris takes the process over (libFuzzer calls ``exit`` when it is done or finds a crash), so
the runner starts one worker per target. The stack is imported inside
``atheris.instrument_imports`` so that its code reports coverage to libFuzzer.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main"]

#: Packages whose code is instrumented for coverage (dnspython: the discovery target reads DNS
#: messages with it).
INSTRUMENTED = ["p2pstack", "transports", "protocols", "fuzz", "dns"]


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
    prefixes = [a.split("=", 1)[1] for a in argv if a.startswith("-artifact_prefix=")]
    atheris.Setup([argv[0], *argv[2:]], _saving_crashes(target, prefixes[-1] if prefixes else ""))
    atheris.Fuzz()


def _saving_crashes(target: Callable[[bytes], None], prefix: str) -> Callable[[bytes], None]:
    """Wrap ``target`` so that a crashing input is written before the exception reaches
    atheris: on a loaded machine libFuzzer's periodic SIGALRM can end the process while the
    traceback is printed, before libFuzzer writes the input itself."""

    def run(data: bytes) -> None:
        try:
            target(data)
        except BaseException:
            Path(f"{prefix}crash-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    return run


if __name__ == "__main__":
    main(sys.argv)
