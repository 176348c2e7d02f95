# Stubs for the parts of the untyped ``noise`` package (PyPI: noiseprotocol) that p2pstack uses.
