"""runyard benchmarks: each workload against a plain-Python floor measured in the same run.

    python benchmarks/run.py                  # SQLite (+ PostgreSQL if RUNYARD_BENCH_DATABASE_URL)
    python benchmarks/run.py --quick          # a fast smoke run (fewer repetitions)
    python benchmarks/run.py --postgres URL   # add PostgreSQL rows, in a scratch database
    python benchmarks/run.py --json out.json  # also write the figures as JSON

Workloads (see benchmarks/README.md):

W1      a job of 100 runs (10 x 10 grid) of extract -> transform -> load on 1,000 ints,
        persisted and process-isolated: runs/s. Floors: a plain loop; a fork per run.
W2      source -> 200 independent steps -> sink: ms per step, in process and as a job of
        one persisted, process-isolated run. Floor: calling 202 plain functions.
W3      a 50-step chain of no-op steps in process: overhead per step in microseconds.
CREATE  creating a job of 10,000 runs (no execution): seconds. Floor: building the 10,000
        parameter dicts.

Times are ``time.perf_counter`` wall clock; every workload is warmed up once and the
median of its repetitions is reported. The engine benchmarks (E1-E3: `runyard serve` /
`runyard worker` processes) are in benchmarks/engine.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import gc
import json
import os
import pathlib
import platform
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pipelines  # noqa: E402  (a real module file, so runyard can reference it)
import sqlalchemy as sa  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import runyard  # noqa: E402
from runyard.app import settings  # noqa: E402

ENV_URL = "RUNYARD_BENCH_DATABASE_URL"

W1_GRID = (10, 10)  # 100 runs
CREATE_GRID = (100, 100)  # 10,000 runs

# Targets from the issue.
W1_TARGET_RUNS_PER_S = 50.0
W3_TARGET_US_PER_STEP = 50.0
CREATE_TARGET_S = 1.0

# Reported (not measured here) by the issue, on this machine, for Dagster 1.13.
DAGSTER_REFERENCE = [
    ("W1", "357 ms per run, SQLite storage, in-process executor"),
    ("W1", "5.7 s per run, default multiprocess executor"),
    ("W2", "7.6 ms per step, in process"),
]


@dataclasses.dataclass
class Repeats:
    w1: int
    fork: int
    plain: int
    w2_inproc: int
    w2_job: int
    w3: int
    create: int


DEFAULT = Repeats(w1=7, fork=5, plain=9, w2_inproc=25, w2_job=9, w3=1000, create=5)
QUICK = Repeats(w1=1, fork=1, plain=3, w2_inproc=3, w2_job=1, w3=60, create=1)


@dataclasses.dataclass
class Row:
    """One line of the table. Times are seconds per ``unit`` (run, step, job)."""

    workload: str
    store: str
    unit: str
    runyard: float | None  # seconds per unit
    floor: float | None  # plain Python, seconds per unit
    fork_floor: float | None = None  # a forked process per run, seconds per unit
    figure: str = ""  # runyard's figure as reported (e.g. "122 runs/s")
    floor_text: str = ""
    fork_text: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.runyard is None or not self.floor:
            return None
        return self.runyard / self.floor

    @property
    def fork_ratio(self) -> float | None:
        if self.runyard is None or not self.fork_floor:
            return None
        return self.runyard / self.fork_floor


# -- timing helpers ----------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], Any], repeats: int, *, warm_up: bool = True) -> float:
    if warm_up:
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def per_s(seconds: float) -> str:
    return f"{1 / seconds:,.0f}" if seconds > 0 else "inf"


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e9:.0f} ns"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:,.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


# -- stores --------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_app() -> Iterator[runyard.Runyard]:
    """runyard on SQLite in a fresh temporary RUNYARD_HOME."""
    home = tempfile.mkdtemp(prefix="runyard-bench-")
    app = runyard.Runyard.open(settings.Settings.from_env({"RUNYARD_HOME": home}))
    try:
        yield app
    finally:
        app.close()
        shutil.rmtree(home, ignore_errors=True)


class ScratchDatabaseError(Exception):
    """No scratch database could be made on the PostgreSQL server."""


@contextlib.contextmanager
def scratch_postgres(url: str) -> Iterator[str]:
    """The URL of a scratch database made on the server of ``url``, dropped afterwards.

    The database named in ``url`` is only connected to, never written. Raises
    ``ScratchDatabaseError`` when the user may not create databases.
    """
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = f"runyard_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.ProgrammingError as exc:
        admin.dispose()
        raise ScratchDatabaseError(
            f"cannot create a scratch database ({str(exc.orig).strip()}); give a URL whose "
            "user may CREATE DATABASE"
        ) from exc
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            try:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except sa.exc.ProgrammingError:  # before PostgreSQL 13
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@contextlib.contextmanager
def postgres_app(url: str) -> Iterator[runyard.Runyard]:
    home = tempfile.mkdtemp(prefix="runyard-bench-")
    env = {"RUNYARD_HOME": home, "RUNYARD_DATABASE_URL": url}
    app = runyard.Runyard.open(settings.Settings.from_env(env))
    try:
        yield app
    finally:
        app.close()
        shutil.rmtree(home, ignore_errors=True)


def postgres_version(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar()).split()[0]
    finally:
        engine.dispose()


# -- floors --------------------------------------------------------------------------------


def plain_w1() -> None:
    xs, factors = W1_GRID
    for x in range(xs):
        for factor in range(1, factors + 1):
            pipelines.plain_etl(x, factor)


def forked(tasks: list[Callable[[], Any]], width: int) -> None:
    """Each task in a freshly forked process, ``width`` at a time (os.fork / os.waitpid)."""
    running = 0
    for task in tasks:
        if running == width:
            os.waitpid(-1, 0)
            running -= 1
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                task()
                code = 0
            finally:
                os._exit(code)
        running += 1
    while running:
        os.waitpid(-1, 0)
        running -= 1


def fork_w1(width: int) -> None:
    xs, factors = W1_GRID
    tasks = [
        (lambda x=x, f=f: pipelines.plain_etl(x, f))
        for x in range(xs)
        for f in range(1, factors + 1)
    ]
    forked(tasks, width)


# -- workloads -----------------------------------------------------------------------------


def w1_job(
    app: runyard.Runyard, grid: tuple[int, int], *, collect: bool = True
) -> tuple[float, float]:
    """Create and execute one job over ``grid``; returns (create seconds, execute seconds)."""
    if collect:
        gc.collect()
    start = time.perf_counter()
    summary = app.create_job(pipelines.etl, grid=pipelines.etl_grid(*grid))
    created = time.perf_counter()
    summary = app.execute_job(summary.job.id)  # loads the pipeline by its reference
    done = time.perf_counter()
    if summary.state is not runyard.JobState.SUCCESS:
        raise SystemExit(f"W1 job {summary.job.id} ended {summary.state}: {summary.counts}")
    return created - start, done - created


def bench_w1(
    app: runyard.Runyard, store: str, repeats: Repeats, floor: float, fork_floor: float
) -> Row:
    runs = W1_GRID[0] * W1_GRID[1]
    w1_job(app, (2, 2))  # warm up: imports, statement caches, connection pool
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    times = [w1_job(app, W1_GRID) for _ in range(repeats.w1)]
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    n = runs * repeats.w1
    cpu_parent, cpu_children = (
        ((a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime)) / n
        for a, b in zip(after, before, strict=True)
    )
    total = statistics.median(c + e for c, e in times)
    create = statistics.median(c for c, _ in times)
    execute = statistics.median(e for _, e in times)
    per_run = total / runs
    return Row(
        "W1",
        store,
        "run",
        per_run,
        floor / runs,
        fork_floor / runs,
        figure=f"{runs / total:,.0f} runs/s",
        floor_text=f"{per_s(floor / runs)} runs/s",
        fork_text=f"{per_s(fork_floor / runs)} runs/s",
        target=f">= {W1_TARGET_RUNS_PER_S:.0f} runs/s",
        met=runs / total >= W1_TARGET_RUNS_PER_S,
        note=f"{per_run * 1e3:.1f} ms/run: create {create * 1e3:.0f} ms + execute "
        f"{execute * 1e3:.0f} ms for {runs} runs; CPU per run: engine process "
        f"{cpu_parent * 1e3:.1f} ms, run processes {cpu_children * 1e3:.1f} ms",
        extra={
            "runs_per_s": runs / total,
            "create_s": create,
            "execute_s": execute,
            "parent_cpu_s_per_run": cpu_parent,
            "children_cpu_s_per_run": cpu_children,
        },
    )


def w2_steps() -> int:
    return len(pipelines.fan.nodes)


def bench_w2_inproc(repeats: Repeats, floor: float) -> Row:
    steps = w2_steps()

    def run() -> None:
        if not pipelines.fan.run().success:
            raise SystemExit("W2 in-process run failed")

    seconds = median_time(run, repeats.w2_inproc)
    return Row(
        "W2",
        "in process",
        "step",
        seconds / steps,
        floor / steps,
        figure=f"{seconds / steps * 1e3:.3f} ms/step",
        floor_text=f"{fmt_time(floor / steps)}/call",
        note=f"{fmt_time(seconds)} per run",
    )


def w2_job(app: runyard.Runyard) -> float:
    gc.collect()
    start = time.perf_counter()
    summary = app.create_job(pipelines.fan)
    summary = app.execute_job(summary.job.id)
    seconds = time.perf_counter() - start
    if summary.state is not runyard.JobState.SUCCESS:
        raise SystemExit(f"W2 job {summary.job.id} ended {summary.state}")
    return seconds


def bench_w2_job(
    app: runyard.Runyard, store: str, repeats: Repeats, floor: float, fork_floor: float
) -> Row:
    steps = w2_steps()
    w2_job(app)
    seconds = statistics.median(w2_job(app) for _ in range(repeats.w2_job))
    return Row(
        "W2 job",
        store,
        "step",
        seconds / steps,
        floor / steps,
        fork_floor / steps,
        figure=f"{seconds / steps * 1e3:.3f} ms/step",
        floor_text=f"{fmt_time(floor / steps)}/call",
        fork_text=f"{fmt_time(fork_floor / steps)}/call",
        note=f"{fmt_time(seconds)} per job of 1 run (create + execute), a process per run",
    )


def bench_w3(repeats: Repeats) -> Row:
    steps = len(pipelines.chain.nodes)
    chain = pipelines.chain

    def run() -> None:
        chain.run()

    if not chain.run().success:
        raise SystemExit("W3 run failed")
    pipelines.plain_chain()
    ours: list[float] = []
    plain: list[float] = []
    gc.collect()
    clock = time.perf_counter
    for _ in range(repeats.w3):  # interleaved, so drift hits both alike
        start = clock()
        chain.run()
        ours.append(clock() - start)
        start = clock()
        pipelines.plain_chain()
        plain.append(clock() - start)
    t_ours = statistics.median(ours)
    t_plain = statistics.median(plain)
    overhead = (t_ours - t_plain) / steps
    return Row(
        "W3",
        "in process",
        "step",
        t_ours / steps,
        t_plain / steps,
        figure=f"{overhead * 1e6:.1f} us/step overhead",
        floor_text=f"{fmt_time(t_plain / steps)}/call",
        target=f"<= {W3_TARGET_US_PER_STEP:.0f} us/step",
        met=overhead * 1e6 <= W3_TARGET_US_PER_STEP,
        note=f"{fmt_time(t_ours)} per run, median of {repeats.w3}",
        extra={"overhead_us_per_step": overhead * 1e6},
    )


def bench_create(app: runyard.Runyard, store: str, repeats: Repeats, floor: float) -> Row:
    grid = pipelines.etl_grid(*CREATE_GRID)
    runs = CREATE_GRID[0] * CREATE_GRID[1]

    def create() -> None:
        summary = app.create_job(pipelines.etl, grid=grid)
        if summary.job.run_count != runs:
            raise SystemExit(f"CREATE made {summary.job.run_count} runs, not {runs}")

    seconds = median_time(create, repeats.create)
    return Row(
        "CREATE",
        store,
        "job",
        seconds,
        floor,
        figure=f"{seconds:.3f} s",
        floor_text=fmt_time(floor),
        target=f"<= {CREATE_TARGET_S:.0f} s",
        met=seconds <= CREATE_TARGET_S,
        note=f"{seconds / runs * 1e6:.0f} us/run",
    )


# -- reporting -----------------------------------------------------------------------------


WORKLOADS = {
    "W1": f"a {W1_GRID[0] * W1_GRID[1]}-run job ({W1_GRID[0]} x {W1_GRID[1]} grid) of "
    f"extract -> transform -> load on {pipelines.ROWS:,} ints, persisted, a process per run",
    "W2": f"source -> {pipelines.FAN_WIDTH} independent steps -> sink "
    f"({pipelines.FAN_WIDTH + 2} steps), per step: Pipeline.run in process",
    "W2 job": "the same pipeline as a persisted job of 1 run in its own process",
    "W3": f"a chain of {pipelines.CHAIN_LENGTH} no-op steps in process; runyard's figure is "
    "(runyard - plain) / steps",
    "CREATE": f"create a job of {CREATE_GRID[0] * CREATE_GRID[1]:,} runs, no execution",
}


def table(rows: list[Row], title: str) -> Table:
    out = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    out.add_column("workload", no_wrap=True)
    out.add_column("store", no_wrap=True)
    out.add_column("runyard", justify="right", no_wrap=True)
    out.add_column("plain Python", justify="right", no_wrap=True)
    out.add_column("x plain", justify="right", no_wrap=True)
    out.add_column("fork floor", justify="right", no_wrap=True)
    out.add_column("x fork", justify="right", no_wrap=True)
    out.add_column("target", no_wrap=True)
    for r in rows:
        met = "" if r.met is None else (" [green]ok[/]" if r.met else " [red]MISSED[/]")
        out.add_row(
            r.workload,
            r.store,
            r.figure,
            r.floor_text or "-",
            fmt_ratio(r.ratio),
            r.fork_text or "-",
            fmt_ratio(r.fork_ratio),
            (r.target + met) if r.target else "-",
        )
    return out


def environment(pg_version: str | None, load_before: float) -> dict[str, str]:
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "runyard": runyard.__version__,
        "sqlalchemy": sa.__version__,
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version or "-",
        "cpus": str(os.cpu_count()),
        "load average (1 min) before/after": f"{load_before:.2f}/{os.getloadavg()[0]:.2f}",
        "machine": f"{platform.system()} {platform.machine()}",
    }


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get(ENV_URL) or None,
        help=f"PostgreSQL server to add figures for (default: ${ENV_URL}); "
        "the benchmarks run in a scratch database that is dropped afterwards",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    repeats = QUICK if args.quick else DEFAULT
    console = Console()
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    width = os.cpu_count() or 1  # runyard's default max_parallel_runs

    def say(text: str) -> None:
        console.print(f"[dim]{time.perf_counter() - began:6.1f}s  {text}[/]")

    # Floors first, measured in this run.
    say("floors")
    w1_floor = median_time(plain_w1, repeats.plain)
    w1_fork = median_time(lambda: fork_w1(width), repeats.fork)
    w2_floor = median_time(pipelines.plain_fan, max(repeats.plain, 25))
    w2_fork = median_time(lambda: forked([pipelines.plain_fan], 1), repeats.fork)
    create_floor = median_time(lambda: pipelines.plain_params(*CREATE_GRID), repeats.plain)

    rows: list[Row] = []
    say("W3 in process")
    rows.append(bench_w3(repeats))
    say("W2 in process")
    rows.append(bench_w2_inproc(repeats, w2_floor))

    def store_rows(app: runyard.Runyard, store: str) -> None:
        say(f"W1 on {store}")
        rows.append(bench_w1(app, store, repeats, w1_floor, w1_fork))
        say(f"W2 job on {store}")
        rows.append(bench_w2_job(app, store, repeats, w2_floor, w2_fork))
        say(f"CREATE on {store}")
        rows.append(bench_create(app, store, repeats, create_floor))

    with sqlite_app() as app:
        store_rows(app, "SQLite")

    pg_version = None
    pg_skipped = ""
    if args.postgres:
        try:
            with scratch_postgres(args.postgres) as url:
                pg_version = postgres_version(url)
                with postgres_app(url) as app:
                    store_rows(app, "PostgreSQL")
        except sa.exc.OperationalError as exc:
            pg_skipped = "PostgreSQL failed: " + " ".join(str(exc.orig).split())
        except ScratchDatabaseError as exc:
            pg_skipped = str(exc)
    else:
        pg_skipped = f"set ${ENV_URL} or pass --postgres URL to add them"

    env = environment(pg_version, load_before)
    say("done")
    if console.width < 120 and not console.is_terminal:
        console.width = 120  # piped: keep one line per row
    console.print()
    console.print(table(rows, f"runyard benchmarks{' (--quick)' if args.quick else ''}"))
    if pg_skipped:
        console.print(f"PostgreSQL rows skipped: {pg_skipped}.", soft_wrap=True)
    console.print()
    for name, text in WORKLOADS.items():
        console.print(f"{name:<7} {text}", soft_wrap=True)
    console.print(
        "x plain / x fork: runyard's time per unit divided by the floor's, both measured in "
        f"this run. Fork floor: each computation in its own os.fork()ed process ({width} at a "
        "time for W1, like runyard's default max_parallel_runs; one process for W2's run)."
    )
    console.print("Notes:")
    for r in rows:
        if r.note:
            console.print(f"  {r.workload} {r.store}: {r.note}")
    console.print("Reported for Dagster 1.13 on this machine (issue figures, not measured here):")
    for workload, text in DAGSTER_REFERENCE:
        console.print(f"  {workload}: {text}")
    console.print(", ".join(f"{k} {v}" for k, v in env.items()))
    if args.json:
        payload = {
            "environment": env,
            "quick": args.quick,
            "postgres_skipped": pg_skipped or None,
            "rows": [
                {**dataclasses.asdict(r), "ratio": r.ratio, "fork_ratio": r.fork_ratio}
                for r in rows
            ],
        }
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
