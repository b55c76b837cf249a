"""Where a sweep's Comet experiments are: the one line the sweep's summary and the report print."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def comet_summary(results: list[dict[str, Any]]) -> str | None:
    """Where the sweep's Comet experiments are, with the upload command for offline archives."""
    comets = [r["comet"] for r in results if r.get("comet")]
    if not comets:
        return None
    parts = []
    online = [c for c in comets if c.get("mode") == "online"]
    if online:
        parts.append(f"{len(online)} run{'s' if len(online) != 1 else ''} logged online to Comet")
    offline = [c for c in comets if c.get("mode") == "offline" and c.get("archive")]
    archives = [c["archive"] for c in offline if Path(c["archive"]).is_file()]
    missing = [c for c in offline if not Path(c["archive"]).is_file()]
    if archives:
        folders = sorted({str(Path(a).parent) for a in archives})
        parts.append(f"{len(archives)} Comet offline archive{'s' if len(archives) != 1 else ''} in "
                     f"{', '.join(folders)}; upload with: "
                     f"comet upload {' '.join(f'{folder}/*.zip' for folder in folders)}")
    if missing:  # the run process was killed while Comet wrote it, or Comet failed (its error is in the result)
        why = "; ".join(sorted({c.get("error") or "its run process ended before Comet wrote it" for c in missing}))
        parts.append(f"{len(missing)} run{'s have' if len(missing) != 1 else ' has'} no Comet archive "
                     f"({', '.join(Path(c['archive']).name for c in missing)}): {why}")
    fallbacks = sorted({c["fallback"] for c in comets if c.get("fallback")})
    if fallbacks:
        parts.append(f"offline instead of online because: {'; '.join(fallbacks)}")
    return ". ".join(parts)
