"""Coverage-guided fuzz targets for every wire parser, and their runner (``python -m fuzz``).

Each target is a function ``fuzz_<name>(data: bytes) -> None`` that feeds ``data`` to a sans-IO
parser or core and returns normally when the parser either accepted the bytes or refused them
with one of its documented typed errors (``RemoteProtocolError`` and the rest of the
``P2PError`` tree). Any other exception, or a broken invariant (``AssertionError``), is a crash.
The targets do not depend on atheris: regression tests call them directly, and the runner
drives them with atheris (libFuzzer) in one subprocess per target. See ``fuzz/README.md``.

This package imports nothing heavy at import time, so that the runner can list targets and
start workers without loading the stack.
"""
