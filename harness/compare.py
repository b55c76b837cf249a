"""``python -m harness.compare BEFORE AFTER``: did it get faster? (``harness.report.before_after``)."""

from __future__ import annotations

import sys

from harness.report.before_after import main

if __name__ == "__main__":
    sys.exit(main())
