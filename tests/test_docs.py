"""The documentation cannot drift from the code: the reference pages are what the code generates, the site
builds with ``mkdocs build --strict``, every command the pages show passes the harness's own checks, the
first sweep a newcomer runs prints what the page shows, and the README quotes the example report as it is."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import h5py
import pytest

from tests.conftest import (
    DOC_PAGES,
    REPO,
    doc_block,
    gpu_cell_status,
    harness_env,
    shell,
    write_doc_lab,
    write_image_folder,
)

spec = importlib.util.spec_from_file_location("generate_reference", REPO / "docs" / "generate_reference.py")
generator = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(generator)  # type: ignore[union-attr]


def test_the_reference_pages_are_what_the_code_generates():
    for name, text in generator.generate().items():
        committed = (REPO / "docs" / "reference" / name).read_text()
        assert committed == text, f"docs/reference/{name} is stale: run python docs/generate_reference.py"


def test_every_setting_result_field_and_option_has_its_entry():
    from harness import results
    from harness.config.schema import SCHEMAS, Config, TargetConfig
    from harness.report import before_after, pages
    from harness.run import server

    settings = (REPO / "docs" / "reference" / "settings.md").read_text()
    groups = [f.name for f in fields(Config) if f.type == "Any"]
    keys = [f"`{f.name}`" for f in fields(Config) if f.name not in (*groups, "target")]
    keys += [f"`target.{f.name}`" for f in fields(TargetConfig)]
    keys += [f"`{group}.{f.name}`" for group in groups for schema in SCHEMAS[group].values() for f in fields(schema)]
    assert [key for key in keys if f"| {key} |" not in settings] == []
    fields_page = (REPO / "docs" / "reference" / "results.md").read_text()
    assert [k for k in results.result_fields() if f"| `{k}` |" not in fields_page] == []
    cli = (REPO / "docs" / "reference" / "cli.md").read_text()
    options = [o for m in (pages, before_after, server) for a in m.options_parser()._actions for o in a.option_strings]
    assert [o for o in options if o not in cli] == []


@dataclass
class Toy:
    documented: int = 1
    """Says what it is."""
    commented: int = 2  # says it in a comment
    undocumented: int = 3


def test_a_setting_without_its_sentence_stops_the_generator():
    with pytest.raises(generator.UndocumentedError, match=r"Toy\.undocumented has no sentence"):
        generator.attribute_docs(Toy)


def test_the_docs_site_builds_strictly(tmp_path):
    # strict: a broken link, a page missing from the site or a missing image fails the build
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, env={**harness_env(tmp_path),
                                                                        "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "settings" / "index.html").is_file()
    assert (tmp_path / "site" / "example" / "effects.png").is_file()  # the real figure, served from reports/


def test_the_readme_is_short_and_quotes_the_example_report_as_it_is():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    quoted = [line.removeprefix("> ") for line in readme.splitlines() if line.startswith("> - ")]
    report = (REPO / "reports" / "example" / "report.md").read_text().splitlines()
    assert len(quoted) == 4 and all(line in report for line in quoted)


FIGURE = re.compile(r"[×~]?\d[\d,]*(?:\.\d+)?")
"""A quoted figure: ``×0.947``, ``2.81``, ``1,000``."""


def benchmark_rows(readme: str) -> list[tuple[str, str, Path]]:
    """The README's benchmark table: each row's script, its measured figures and the output file they come from."""
    table = readme.split("| script | what | measured | output |", 1)[1].split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.strip().splitlines()[1:]]
    return [(script.strip("`"), measured, REPO / output.strip("`")) for script, _, measured, output in rows]


def test_every_benchmark_figure_comes_from_its_scripts_output_file():
    rows = benchmark_rows((REPO / "README.md").read_text())
    scripts = {f"benchmarks/{path.name}" for path in (REPO / "benchmarks").glob("*.*")
               if path.suffix in (".py", ".sh") and path.stem not in ("transcript", "gpu_monitor")}  # not benchmarks
    assert {script.split()[0] for script, _, _ in rows} == scripts  # every benchmark script has its row
    for script, measured, output in rows:
        text = output.read_text()
        if output.name == "output.txt":  # a transcript: the script wrote it, with its machine and date
            header = text.splitlines()[:2]
            assert header[0].startswith("# ") and re.search(r"\d{4}-\d{2}-\d{2}", header[0]), output
            assert header[1].startswith(f"# python {script.split()[0]}"), (script, header)
        quoted = [figure for figure in FIGURE.findall(re.sub(r"\d{4}-\d{2}-\d{2}", "", measured))]
        assert quoted, measured
        for figure in quoted:
            assert figure.lstrip("~") in text, f"{figure} (README, {script}) is not in {output}"


def shown_commands() -> list[tuple[str, str]]:
    """Every ``python -m harness`` command in the pages' shell blocks: (page, its arguments)."""
    return [(page, code.split("python -m harness", 1)[1]) for page, code in shown_command_lines()]


def shown_command_lines() -> list[tuple[str, str]]:
    """Every ``python -m harness`` command in the pages' shell blocks: (page, the command as printed)."""
    commands = []
    for page in DOC_PAGES:
        for language, block in re.findall(r"^ *```(\w*)\n(.*?)^ *```", page.read_text(), re.S | re.M):
            if language not in ("bash", "text", ""):  # whole blocks, so a python block's end opens nothing
                continue
            for line in block.replace("\\\n", " ").splitlines():
                code = line.strip().removeprefix("$ ").split("  #")[0]
                if re.match(r"^(pip install [^&]*&& )?(\S+=\S+ )*python -m harness -m |^python -m harness$", code):
                    commands.append((page.relative_to(REPO).as_posix(), code.strip()))
    return commands


@pytest.mark.parametrize(("page", "arguments"), shown_commands(), ids=lambda text: " ".join(text.split()))
def test_every_sweep_the_docs_show_passes_the_harness_checks(page, arguments):
    # the checks a sweep makes before Hydra composes anything: grammar, groups and options, plugins, setting
    # names and types; a setting renamed or an option removed fails here, on the page that shows it
    from harness.config.presets import register_experiments
    from harness.config.schema import register_configs
    from harness.config.validate import check_arguments

    register_configs()
    check_arguments(shlex.split(arguments.replace("$HOME", "/home/user")), register_experiments())


def test_every_tutorial_command_runs_as_printed_up_to_its_plan(tmp_path):
    # Each tutorial's commands exactly as printed, with plan=true added, in a folder laid out as the pages
    # assume (their image folders, weights file and package): real Hydra multiruns that compose and check
    # every cell (about 500) and say what each would do. Training them all is what the tutorials are for;
    # in the suite each kind of sweep trains in its own tests (test_custom runs your-own-model's as printed).
    home = tmp_path / "home"
    write_image_folder(home / "data" / "flowers3")
    write_image_folder(tmp_path / "flowers3")
    # weights files as a plan checks them (there, and HDF5), not loaded: loading them is test_backbones' part; the
    # one in Keras' cache stands for its ImageNet download (no network here)
    imagenet = tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    imagenet.parent.mkdir(parents=True)
    for weights in (tmp_path / "vgg16_notop.weights.h5", imagenet):
        h5py.File(weights, "w").close()
    write_doc_lab(tmp_path)
    commands = [code for page, code in shown_command_lines() if page.startswith("docs/tutorials/")]
    assert len(commands) >= 14  # every tutorial page's sweeps
    plans = {}
    for command in commands:
        done = shell(f"{command} plan=true", tmp_path, HOME=str(home), KERAS_HOME=str(tmp_path / "keras"))
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert done.stdout.rstrip().endswith("Nothing ran (plan=true)."), f"{command}: {done.stdout}"
        counts = re.search(r"^plan: (\d+) cells: (\d+) to train, (\d+) reused from earlier sweeps, (\d+) skipped\.",
                           done.stdout, re.M)
        if counts:  # a grid (a search draws its cells as it goes): one line per cell, each counted once
            cells = [line for line in done.stdout.splitlines() if line.startswith("[")]
            assert len(cells) == int(counts[1]) == sum(map(int, counts.groups()[1:])), done.stdout
            plans[command] = tuple(map(int, counts.groups()))
    gpu_cells = 24 if gpu_cell_status() == "skipped" else 0
    assert plans["python -m harness -m experiment=seed_grid"] == (48, 48 - gpu_cells, 0, gpu_cells)
    assert not any((tmp_path / folder).exists() for folder in ("multirun", "baseline", "candidate", "results"))


@pytest.mark.slow
def test_the_first_sweep_prints_what_getting_started_shows(tmp_path):
    command = doc_block("python -m harness -m optimizer=adam,rmsprop\n").strip()
    done = shell(command, tmp_path, warm_server=False)  # a newcomer's sweep starts its own run server
    assert done.returncode == 0, done.stdout + done.stderr
    shown = doc_block("[1/2] optimizer=adam transfer=off").strip().splitlines()
    # a run longer than the live line's period (a loaded machine) adds indented epoch lines after its heading,
    # then prints the heading again with the outcome: the words shown are the same, with or without them
    printed = [line for line in done.stdout.splitlines() if not line.startswith(" ") and not line.endswith("… ")]

    def shape(line: str) -> str:  # numbers and paths vary from run to run; the words may not
        return re.sub(r"\d+(\.\d+)?", "N", re.sub(r"/\S+", "PATH", line))

    assert [shape(line) for line in printed] == [shape(line) for line in shown]
    report = Path(printed[-1].removeprefix("report: "))
    again = shell(f"python -m harness.report multirun/{report.parent.name}", tmp_path)  # Next: rebuild it
    assert again.returncode == 0 and again.stdout.strip().endswith("index.html"), again.stderr


def test_a_command_whose_setting_was_renamed_fails_that_check():
    from harness.config.presets import register_experiments
    from harness.config.schema import register_configs
    from harness.config.validate import ConfigError, check_arguments

    register_configs()
    with pytest.raises(ConfigError, match="optimizer.lr_scal is not a setting of optimizer=adam"):
        check_arguments(["-m", "optimizer=adam", "optimizer.lr_scal=0.1,1"], register_experiments())
