"""``python -m p2pstack.cli``: the same as the ``p2pstack`` console script."""

import sys

from p2pstack.cli import main

sys.exit(main())
