"""``python -m p2pstack.roots.cli``: the same as the ``p2pstack`` console script."""

import sys

from p2pstack.roots.cli import main

sys.exit(main())
