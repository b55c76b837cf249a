"""``python -m harness.report SWEEP_DIR [--out DIR]``: rebuild a sweep's report from its result files."""

import sys

from harness.report.pages import main

sys.exit(main())
