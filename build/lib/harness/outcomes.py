"""How a run ended: the statuses of a result and the reasons that readers act on.

Shared by the run process (which writes them), the sweep and the report (which read them); imports
nothing, so that the report's statistics can use it without the config or Hydra.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["ok", "failed", "skipped", "interrupted"]
STATUSES: tuple[str, ...] = get_args(Status)

DIVERGED = "nan loss"
"""The ``reason`` of a failed run whose loss became NaN (``TerminateOnNaN`` stopped it): it never reaches
the target, so the report counts it as a miss there."""
