"""``python -m harness.compare BEFORE AFTER``: did it get faster? (``harness.report.compare``)."""

from __future__ import annotations

import sys

from harness.report.compare import main

if __name__ == "__main__":
    sys.exit(main())
