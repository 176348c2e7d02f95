"""Composition roots: the only place that imports ``p2pstack``, ``transports`` and ``protocols``.

The core (every other module of ``p2pstack``), ``transports`` and ``protocols`` never import
this package; ``lint-imports`` enforces it (contracts in ``pyproject.toml``). What lives here:

- :mod:`p2pstack.roots.defaults`: the default stack (TCP + Noise + yamux/mplex) and
  ``open_default_host``;
- :mod:`p2pstack.roots.cli`: the ``p2pstack`` command line;
- :mod:`p2pstack.roots.scenarios`: simulation scenarios and their runner.

Importing this package imports none of them: each is loaded when first used.
"""

from __future__ import annotations
