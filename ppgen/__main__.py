"""``python -m ppgen``: the command line (what ``torchrun -m ppgen fit ...`` starts)."""

from __future__ import annotations

import sys

from ppgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
