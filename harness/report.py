"""The comparison report of a sweep: result files in, ``runs.csv``, ``report.md`` and ``index.html`` out.

``python -m harness.report SWEEP_DIR [--out DIR]`` rebuilds it from the stored results alone, without
training; a multirun calls the same ``write_report`` when it ends. Reads result files only: it never
imports the training code.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

import pandas as pd

from harness import stats
from harness.results import collect_results, results_frame
from harness.schema import FACTORS

RUN_TABLE_COLUMNS = (*FACTORS, "seed", "status", "reason", "epochs_run", "train_seconds",
                     "time_to_target_seconds", "best_val_accuracy", "test_accuracy")


class Section:
    """A titled part of the report: a paragraph of text and an optional table."""

    def __init__(self, title: str, text: str = "", table: pd.DataFrame | None = None) -> None:
        self.title, self.text, self.table = title, text, table


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def comet_summary(results: list[dict]) -> str | None:
    """Where the sweep's Comet experiments are, with the upload command for offline archives."""
    comets = [r["comet"] for r in results if r.get("comet")]
    if not comets:
        return None
    parts = []
    online = [c for c in comets if c.get("mode") == "online"]
    if online:
        parts.append(f"{len(online)} runs logged online to Comet")
    archives = [c["archive"] for c in comets if c.get("mode") == "offline" and c.get("archive")]
    if archives:
        folders = sorted({str(Path(a).parent) for a in archives})
        parts.append(f"{len(archives)} Comet offline archives in {', '.join(folders)}; upload them with: "
                     f"comet upload {' '.join(f'{folder}/*.zip' for folder in folders)}")
    fallbacks = sorted({c["fallback"] for c in comets if c.get("fallback")})
    if fallbacks:
        parts.append(f"offline instead of online because: {'; '.join(fallbacks)}")
    return ". ".join(parts)


def build_sections(runs: pd.DataFrame, sweep_dir: Path, problems: list[str], comet: str | None = None) -> list[Section]:
    """The report's content, independent of its format."""
    levels = stats.grid(runs)
    grid_text = "; ".join(f"{factor}: {', '.join(map(str, values))}" for factor, values in levels.items())
    sections = [
        Section("Setup", f"Sweep folder: `{sweep_dir}`. {len(runs)} runs. Grid: {grid_text}."),
        Section("Runs by status", "Failed runs first, with their reasons.", stats.status_counts(runs)),
    ]
    if problems:
        sections.append(Section("Unreadable result files", "; ".join(problems)))
    if comet:
        sections.append(Section("Comet", comet))
    for factor in FACTORS:
        sections.append(Section(f"By {factor}", "Medians over the ok runs; times in seconds.",
                                stats.factor_summary(runs, factor)))
    order = runs["status"].map({"failed": 0, "interrupted": 1, "skipped": 2, "ok": 3})
    per_run = runs.assign(_order=order).sort_values(["_order", *FACTORS, "seed"])[list(RUN_TABLE_COLUMNS)]
    sections.append(Section("Every run", "", per_run))
    sections.append(Section(
        "Re-run", f"Rebuild this report: `python -m harness.report {sweep_dir}`. Re-run a cell with the "
        "overrides in its folder's `.hydra/overrides.yaml`: `python -m harness <overrides>`."))
    return sections


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.text:
            parts.append(section.text)
        if section.table is not None:
            parts.append(markdown_table(section.table))
    return "\n\n".join(parts) + "\n"


def render_html(title: str, sections: list[Section]) -> str:
    body = []
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            body.append(f"<p>{html.escape(section.text)}</p>")
        if section.table is not None:
            body.append(section.table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3g}",
                                              classes="runs", border=0))
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:0.9em}td,th{padding:3px 8px;border-bottom:1px solid #ddd}"
             "th{text-align:left;background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>\n")


def write_report(sweep_dir: Path, out_dir: Path | None = None, reports_root: Path = Path("reports")) -> Path:
    """Write ``runs.csv``, ``report.md`` and ``index.html`` for the sweep in ``sweep_dir``.

    ``out_dir`` defaults to ``reports_root/<sweep name>``. Returns the path of ``index.html``.
    Raises ``FileNotFoundError`` if the folder holds no result files.
    """
    sweep_dir = Path(sweep_dir)
    results, problems = collect_results(sweep_dir)
    if not results:
        raise FileNotFoundError(f"no result.json files under {sweep_dir}")
    runs = results_frame(results)
    name = str(runs["sweep_name"].dropna().iloc[0]) if runs["sweep_name"].notna().any() else sweep_dir.name
    out_dir = Path(out_dir) if out_dir is not None else Path(reports_root) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out_dir / "runs.csv", index=False)
    sections = build_sections(runs, sweep_dir, problems, comet_summary(results))
    title = f"harness report: {name}"
    (out_dir / "report.md").write_text(render_markdown(title, sections))
    index = out_dir / "index.html"
    index.write_text(render_html(title, sections))
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder (e.g. multirun/<sweep>) with result.json files")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: reports/<sweep name>)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"harness.report: error: {args.sweep_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        index = write_report(args.sweep_dir, args.out)
    except FileNotFoundError as err:
        print(f"harness.report: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
