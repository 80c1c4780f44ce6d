"""File step benchmarks: a job of a pipeline of three scripts, next to the same pipeline as
Python functions and next to plain Python running the same scripts.

    python benchmarks/filesteps.py            # 100-run jobs
    python benchmarks/filesteps.py --quick    # 20-run jobs
    python benchmarks/filesteps.py --json out.json

A project is generated under a temporary folder, with a temporary ``RUNYARD_HOME`` (SQLite,
local artifact directory) beside it; both are deleted afterwards. Its pipeline is
``extract(x) -> transform(rows, factor) -> load(rows)`` on lists of 1,000 ints (as W1 in
``run.py``), over a 10 x 10 grid of ``x`` and ``factor`` (100 runs), written twice:

F1  as three Python scripts (``runyard.script``): ``Runyard.create_job`` + ``execute_job``,
    each run in its own process, 2 runs at a time (the default: CPUs), each step a
    ``python script.py`` process of its own reading its parameters with
    ``runyard.get_step_param`` and its input with ``runyard.get_inputs``, and handing its
    output on with ``runyard.output``. Figure: runs/s (runs / (create + execute)).
F2  as three Python function steps (``@runyard.step``), the same job otherwise.

Floors, measured in the same run:

plain    the 100 computations in a plain loop, in this process.
scripts  plain Python running the same work as three scripts per run, each a
         ``python file.py`` process that reads its input from a pickle file and writes its
         output to one, no runyard imported; 2 runs at a time, as the jobs run. This is what
         running scripts as separate processes costs at the least.

No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import gc
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

import runyard
from runyard.app import service, settings
from runyard.core import states
from runyard.execution import loader

ROWS = 1_000
console = Console(highlight=False, width=140)

PIPELINES = """
import runyard

extract_script = runyard.script("steps/extract.py", params={"x": 0})
transform_script = runyard.script("steps/transform.py", params={"factor": 1})
load_script = runyard.script("steps/load.py")


@runyard.pipeline(name="etl")
def scripts():
    load_script(transform_script(extract_script()))


@runyard.step
def extract(*, x: int = 0) -> list:
    return [x + i for i in range(ROWS)]


@runyard.step
def transform(rows: list, *, factor: int = 1) -> list:
    return [r * factor for r in rows]


@runyard.step
def load(rows: list) -> int:
    return sum(rows)


@runyard.pipeline(name="etl")
def functions():
    load(transform(extract()))
"""

SCRIPTS = {
    "steps/extract.py": """
        import runyard

        x = runyard.get_step_param("x")
        runyard.output([x + i for i in range(ROWS)])
        """,
    "steps/transform.py": """
        import runyard

        factor = runyard.get_step_param("factor")
        runyard.output([r * factor for r in runyard.get_inputs()[0]])
        """,
    "steps/load.py": """
        import runyard

        runyard.output(sum(runyard.get_inputs()[0]))
        """,
}

# The floor's scripts: the same work, arguments on the command line, data in pickle files.
PLAIN = {
    "plain/extract.py": """
        import pickle, sys

        x, out = int(sys.argv[1]), sys.argv[2]
        with open(out, "wb") as fh:
            pickle.dump([x + i for i in range(ROWS)], fh)
        """,
    "plain/transform.py": """
        import pickle, sys

        factor, source, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        with open(source, "rb") as fh:
            rows = pickle.load(fh)
        with open(out, "wb") as fh:
            pickle.dump([r * factor for r in rows], fh)
        """,
    "plain/load.py": """
        import pickle, sys

        source, out = sys.argv[1], sys.argv[2]
        with open(source, "rb") as fh:
            rows = pickle.load(fh)
        with open(out, "wb") as fh:
            pickle.dump(sum(rows), fh)
        """,
}


def generate(root: pathlib.Path) -> None:
    (root / "runyard.toml").write_text("")
    (root / "pipes.py").write_text(f"ROWS = {ROWS}\n" + PIPELINES)
    for path, text in {**SCRIPTS, **PLAIN}.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"ROWS = {ROWS}\n" + textwrap.dedent(text))


def grid_of(side: tuple[int, int]) -> dict[str, dict[str, list[int]]]:
    xs, factors = side
    return {
        "extract": {"x": list(range(xs))},
        "transform": {"factor": list(range(1, factors + 1))},
    }


@contextlib.contextmanager
def scratch() -> Iterator[pathlib.Path]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="runyard-bench-files-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def run_job(home: pathlib.Path, reference: str, grid: dict[str, Any]) -> tuple[float, int]:
    """Create and execute a job of the pipeline at ``reference``; (seconds, runs that
    succeeded). The pipeline is loaded before the clock starts, as an engine has it."""
    pipeline = loader.load_pipeline(reference).pipeline
    app = service.Runyard.open(settings.Settings.from_env({}, home=home))
    try:

        def create_and_execute() -> str:
            job = app.create_job(pipeline, grid=grid)
            app.execute_job(job.id, pipeline)
            return job.id

        seconds, job_id = timed(create_and_execute)
        ok = sum(1 for r in app.list_runs(job_id) if r.state is states.RunState.SUCCESS)
    finally:
        app.close()
    return seconds, ok


def plain_loop(side: tuple[int, int]) -> float:
    def work() -> None:
        for x in range(side[0]):
            for factor in range(1, side[1] + 1):
                rows = [x + i for i in range(ROWS)]
                rows = [r * factor for r in rows]
                sum(rows)

    return timed(work)[0]


def plain_scripts(root: pathlib.Path, side: tuple[int, int]) -> float:
    """The same runs as plain ``python file.py`` processes, 2 runs at a time."""
    work = root / "plain-work"
    work.mkdir(exist_ok=True)
    python = sys.executable

    def one(x: int, factor: int) -> None:
        base = work / f"{x}-{factor}"
        for command in (
            [python, root / "plain/extract.py", str(x), f"{base}.e"],
            [python, root / "plain/transform.py", str(factor), f"{base}.e", f"{base}.t"],
            [python, root / "plain/load.py", f"{base}.t", f"{base}.l"],
        ):
            subprocess.run(command, check=True, cwd=root)

    def all_runs() -> None:
        width = os.cpu_count() or 1
        with concurrent.futures.ThreadPoolExecutor(width) as pool:
            futures = [
                pool.submit(one, x, f) for x in range(side[0]) for f in range(1, side[1] + 1)
            ]
            for future in futures:
                future.result()

    return timed(all_runs)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20-run jobs, one repetition")
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args(argv)
    side = (4, 5) if args.quick else (10, 10)
    runs = side[0] * side[1]
    repeats = 1 if args.quick else 3
    load_before = os.getloadavg()[0]
    measured: dict[str, list[float]] = {"F1": [], "F2": [], "plain": [], "scripts": []}
    with scratch() as folder:
        project = folder / "project"
        project.mkdir()
        generate(project)
        grid = grid_of(side)
        # Warm-up: one small job of each, so imports and the first snapshot are not timed.
        for name in ("scripts", "functions"):
            run_job(folder / "warm", f"{project / 'pipes.py'}:{name}", grid_of((1, 2)))
        for repeat in range(repeats):
            # Interleaved, so a change in the machine's load touches every figure alike.
            for key, name in (("F1", "scripts"), ("F2", "functions")):
                seconds, ok = run_job(
                    folder / f"home-{key}-{repeat}", f"{project / 'pipes.py'}:{name}", grid
                )
                if ok != runs:
                    console.print(f"[red]{key}: only {ok} of {runs} runs succeeded[/]")
                    return 1
                measured[key].append(seconds)
            measured["plain"].append(plain_loop(side))
            measured["scripts"].append(plain_scripts(project, side))
    load_after = os.getloadavg()[0]
    best = {k: sorted(v)[len(v) // 2] for k, v in measured.items()}  # the median
    per_run = {k: v / runs for k, v in best.items()}

    table = Table(box=box.SIMPLE_HEAD)
    columns = ("id", "what", "runyard", "plain Python", "x plain", "scripts floor", "x scripts")
    for column in columns:
        table.add_column(column, justify="left" if column in ("id", "what") else "right")
    for key, what in (("F1", "3-script pipeline, job"), ("F2", "3-function pipeline, job")):
        table.add_row(
            key,
            f"{runs}-run {what}",
            f"{runs / best[key]:,.1f} runs/s ({per_run[key] * 1000:.1f} ms/run)",
            f"{runs / best['plain']:,.0f} runs/s",
            f"{per_run[key] / per_run['plain']:,.0f}x",
            f"{runs / best['scripts']:,.1f} runs/s",
            f"{per_run[key] / per_run['scripts']:.2f}x",
        )
    console.print(table)
    console.print(
        f"F1 / F2 (scripts against functions, both runyard): "
        f"{best['F1'] / best['F2']:.1f}x the time per run. Medians of {repeats}; "
        f"{runs} runs per job, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"runyard {runyard.__version__}; load {load_before:.1f} -> {load_after:.1f}; "
        f"{dt.date.today()}"
    )
    if args.json:
        figures = {
            "runs": runs,
            "seconds": best,
            "runs_per_s": {k: runs / v for k, v in best.items()},
            "load": [load_before, load_after],
        }
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
