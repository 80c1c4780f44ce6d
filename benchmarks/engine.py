"""runyard engine benchmarks: `runyard serve` / `runyard worker` processes executing runs.

    python benchmarks/engine.py                 # SQLite (+ PostgreSQL: $RUNYARD_BENCH_DATABASE_URL)
    python benchmarks/engine.py --quick         # a smoke run: fewer runs and tries, shorter caps
    python benchmarks/engine.py --postgres URL  # add the PostgreSQL row, in a scratch database
    python benchmarks/engine.py --json out.json # also write the figures as JSON

Workloads (see benchmarks/README.md):

E1  queued -> running latency on an idle `runyard worker --slots 2`: a job of one trivial run
    is queued from this process, again and again; the time from the run's QUEUED event to its
    RUNNING event (median, p99). Floor: a bare os.fork + os._exit + waitpid.
E2  draining a job of 10,000 queued trivial runs (at most 50 s, then the rest is stopped):
    `runyard serve --slots 2` on SQLite, two `runyard worker --slots 2` on PostgreSQL; runs/s
    over the runs that finished. "E2 limit 2": the same with the job's max_parallel_runs at 2
    (the default for a job on a 2-CPU machine). Floor: a fork + exit + wait per run, 2 at a
    time.
E3  cancel latency: `Runyard.stop_job` on a job of 4 runs that sleep forever, executed by a
    `runyard worker --slots 4 --grace 1`; the time until every run is KILLED in the store
    and every run's process is gone (median). "E3 no TERM": the step ignores SIGTERM, so the
    worker's SIGKILL after the grace period ends it. Floor: SIGKILL + waitpid of 4 sleeping
    forked processes.

The engines are real subprocesses (``python -m runyard serve|worker``) on a temporary
RUNYARD_HOME; they are stopped with SIGINT (then killed) whatever happens.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import datetime as dt
import gc
import glob
import json
import math
import os
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from types import FrameType

HERE = pathlib.Path(__file__).resolve().parent
for folder in (HERE, HERE / "engine_project"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import engine_pipelines as ep  # noqa: E402  (a real module file, so engines can load it)
import run as bench  # noqa: E402  (stores, floors and formatting shared with run.py)
import sqlalchemy as sa  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import runyard  # noqa: E402
from runyard.app import settings  # noqa: E402
from runyard.execution.pids import gone as processes_gone  # noqa: E402

SLOTS = 2  # every engine's --slots (E3: 4, so that all four runs are running)
E2_PARALLEL = 16  # E2's max_parallel_runs: more than all the engines' slots together
E3_RUNS = 4
E3_GRACE = 1.0  # the E3 worker's --grace

# Targets from the issue.
E1_TARGET_MS = 50.0
E2_TARGET_RUNS_PER_S = 200.0
E3_TARGET_S = 2.0


@dataclasses.dataclass
class Sizes:
    e1: int  # jobs queued one after another
    e2: int  # runs queued
    e2_cap: float  # seconds at most to drain them (then the rest is stopped)
    e2_limit_cap: float  # the same for "E2 limit 2"; 0: not run
    e3: int  # stop_job tries (each variant)
    fork: int  # bare forks timed for E1's floor


DEFAULT = Sizes(e1=50, e2=10_000, e2_cap=50.0, e2_limit_cap=15.0, e3=5, fork=200)
QUICK = Sizes(e1=20, e2=2_000, e2_cap=8.0, e2_limit_cap=0.0, e3=3, fork=50)


@dataclasses.dataclass
class Row:
    """One line of the table; ``runyard`` and ``floor`` in seconds per ``unit``."""

    workload: str
    store: str
    engine: str
    unit: str
    runyard: float | None
    floor: float | None
    figure: str = ""
    floor_text: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.runyard is None or not self.floor:
            return None
        return self.runyard / self.floor


# -- engine processes ------------------------------------------------------------------------


class EngineError(Exception):
    """An engine process died or never became ready."""


@dataclasses.dataclass
class Engine:
    kind: str
    proc: subprocess.Popen[bytes]
    log: pathlib.Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def _stop(engine: Engine) -> None:
    """SIGINT (finish the running runs), again (stop them), then SIGKILL; always reaped."""
    proc = engine.proc
    for wait in (20.0, 5.0):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def engines(
    kind: str,
    env: dict[str, str],
    home: pathlib.Path,
    *,
    count: int = 1,
    slots: int = SLOTS,
    grace: float | None = None,
) -> Iterator[list[Engine]]:
    """``count`` ``runyard <kind>`` processes on the store named by ``env``, each ready
    (its stderr says "executing runs") when this yields; stopped and reaped afterwards."""
    started: list[Engine] = []
    command = [sys.executable, "-m", "runyard", kind, "--slots", str(slots)]
    if kind == "serve":
        command.append("--no-api")  # the engine alone is measured
    if grace is not None:
        command += ["--grace", f"{grace:g}"]
    # Only ``env`` names the stores: none of the caller's RUNYARD_* settings.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    try:
        for i in range(count):
            log = home / f"{kind}-{i}.stderr"
            with log.open("wb") as err:
                proc = subprocess.Popen(
                    command,
                    env={**inherited, **env},
                    cwd=home,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            started.append(Engine(kind, proc, log))
        for engine in started:
            _wait_ready(engine)
        yield started
    finally:
        for engine in started:
            _stop(engine)


def _wait_ready(engine: Engine, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "executing runs" not in engine.stderr():
        if engine.proc.poll() is not None:
            raise EngineError(
                f"runyard {engine.kind} exited ({engine.proc.returncode}) before it was "
                f"ready:\n{engine.stderr()}"
            )
        if time.monotonic() > deadline:
            raise EngineError(f"runyard {engine.kind} not ready after {timeout:g} s")
        time.sleep(0.01)


# -- CPU time of an engine and the processes under it (Linux /proc) ---------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_times(pid: int) -> tuple[float, float] | None:
    """(own CPU, CPU of its reaped children) of ``pid``, seconds; None if unknown."""
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / _TICK, (cutime + cstime) / _TICK


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError):
            found += [int(x) for x in pathlib.Path(path).read_text().split()]
    return found


def cpu_snapshot(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the engine processes, their fork servers (each engine's child),
    and the run processes (the fork servers' reaped children)."""
    out = {"engine": 0.0, "fork_server": 0.0, "runs": 0.0}
    for pid in pids:
        own = _proc_times(pid)
        if own is not None:
            out["engine"] += own[0]
        for child in _children(pid):
            times = _proc_times(child)
            if times is not None:
                out["fork_server"] += times[0]
                out["runs"] += times[1]
    return out


def cpu_note(before: dict[str, float], after: dict[str, float], runs: int) -> tuple[str, dict]:
    per = {k: (after[k] - before[k]) / runs for k in after}
    text = (
        f"CPU per run: engine {per['engine'] * 1e3:.2f} ms, fork server "
        f"{per['fork_server'] * 1e3:.2f} ms, run processes {per['runs'] * 1e3:.2f} ms"
    )
    return text, {f"cpu_{k}_s_per_run": v for k, v in per.items()}


# -- floors ------------------------------------------------------------------------------------


def fork_latency(count: int) -> float:
    """Median seconds of a bare os.fork + os._exit(0) + waitpid, from this process."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fork_drain(count: int, width: int) -> float:
    """Seconds for ``count`` fork + exit + wait, ``width`` at a time."""
    gc.collect()
    start = time.perf_counter()
    bench.forked([_nothing] * count, width)
    return time.perf_counter() - start


def _nothing() -> None:
    pass


def kill_floor(runs: int, tries: int) -> float:
    """Median seconds to SIGKILL ``runs`` sleeping forked processes and reap them."""
    times = []
    for _ in range(tries):
        pids = []
        for _ in range(runs):
            pid = os.fork()
            if pid == 0:
                try:
                    while True:
                        time.sleep(0.05)
                finally:
                    os._exit(0)
            pids.append(pid)
        try:
            time.sleep(0.05)
            start = time.perf_counter()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                os.waitpid(pid, 0)
            times.append(time.perf_counter() - start)
        finally:  # never leave one behind, even when interrupted
            for pid in pids:
                with contextlib.suppress(ChildProcessError, ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
    return statistics.median(times)


# -- stores ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Store:
    name: str  # "SQLite", "PostgreSQL"
    env: dict[str, str]  # what an engine process needs to find it
    home: pathlib.Path
    app: runyard.Runyard


@contextlib.contextmanager
def store(name: str, database_url: str | None = None) -> Iterator[Store]:
    """A fresh RUNYARD_HOME (and database: SQLite inside it, or ``database_url``)."""
    home = pathlib.Path(tempfile.mkdtemp(prefix="runyard-bench-engine-"))
    env = {"RUNYARD_HOME": str(home)}
    if database_url:
        env["RUNYARD_DATABASE_URL"] = database_url
    app = runyard.Runyard.open(settings.Settings.from_env(env))
    try:
        yield Store(name, env, home, app)
    finally:
        app.close()
        shutil.rmtree(home, ignore_errors=True)


# -- E1: queued -> running on an idle worker ---------------------------------------------------


def _ms(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() * 1e3


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile (the maximum for 100 values or fewer)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def one_latency(app: runyard.Runyard) -> dict[str, float]:
    """Queue a 1-run job and wait for it; ms from QUEUED to each later transition."""
    job = app.create_job(ep.trivial, grid=ep.trivial_grid(1)).job
    time.sleep(random.uniform(0.0, 0.1))  # a random phase against the worker's poll
    app.start_job(job.id)
    summary = app.wait_job(job.id, timeout=30, poll=0.02)  # the figures come from events
    if summary.state is not runyard.JobState.SUCCESS:
        raise SystemExit(f"E1 job {job.id} ended {summary.state}")
    queued = claimed = running = step = None
    for event in app.events(job_id=job.id):
        if event.kind == "run_state" and event.new_state == "QUEUED":
            queued = event.at
        elif event.kind == "run_state" and event.new_state == "STARTING":
            claimed = event.at
        elif event.kind == "run_state" and event.new_state == "RUNNING":
            running = event.at
        elif event.kind == "step_state" and event.new_state == "RUNNING" and step is None:
            step = event.at
    if queued is None or claimed is None or running is None or step is None:
        raise SystemExit(f"E1 job {job.id}: missing events")
    return {
        "starting": _ms(queued, claimed),
        "running": _ms(queued, running),
        "step": _ms(queued, step),
    }


def bench_e1(st: Store, sizes: Sizes, fork_floor: float) -> Row:
    with engines("worker", st.env, st.home):
        for _ in range(2):  # warm up: the worker loads the pipeline
            one_latency(st.app)
        time.sleep(0.5)
        samples = [one_latency(st.app) for _ in range(sizes.e1)]
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    top = {k: p99([s[k] for s in samples]) for k in samples[0]}
    return Row(
        "E1",
        st.name,
        f"worker, {SLOTS} slots",
        "run",
        med["running"] / 1e3,
        fork_floor,
        figure=f"{med['running']:.1f} ms (p99 {top['running']:.0f} ms)",
        floor_text=bench.fmt_time(fork_floor),
        target=f"<= {E1_TARGET_MS:.0f} ms",
        met=med["running"] <= E1_TARGET_MS,
        note=f"{sizes.e1} jobs of 1 run. QUEUED -> STARTING (claimed) {med['starting']:.1f} ms "
        f"median, {top['starting']:.1f} ms p99; QUEUED -> RUNNING {med['running']:.1f} / "
        f"{top['running']:.1f} ms; QUEUED -> the step started in the run's process "
        f"{med['step']:.1f} / {top['step']:.1f} ms",
        extra={
            **{f"{k}_median_ms": v for k, v in med.items()},
            **{f"{k}_p99_ms": v for k, v in top.items()},
        },
    )


# -- E2: draining a queue ------------------------------------------------------------------------


def phases(app: runyard.Runyard, job_id: str) -> tuple[str, dict[str, float]]:
    """Where each finished run's time went, from its events: claimed (STARTING: the
    engine's clock before the claim) -> fork requested (RUNNING; a run claimed ahead of a
    free slot waits here for one) -> step started and finished (the run's clock) -> reaped
    (SUCCESS); and from a run's end to the next claim. "Held" counts the runs an engine has
    claimed and not finished: those running and those claimed ahead."""
    seen: dict[str, dict[tuple[str, str | None], float]] = {}
    for event in app.events(job_id=job_id):
        if event.run_id is not None:
            key = (event.kind, event.new_state)
            seen.setdefault(event.run_id, {}).setdefault(key, event.at.timestamp())
    gaps: dict[str, list[float]] = {"claim": [], "fork": [], "step": [], "reap": []}
    claims: list[float] = []
    ends: list[float] = []
    for marks in seen.values():
        try:
            claimed = marks[("run_state", "STARTING")]
            forked = marks[("run_state", "RUNNING")]
            step_start = marks[("step_state", "RUNNING")]
            step_end = marks[("step_state", "SUCCESS")]
            reaped = marks[("run_state", "SUCCESS")]
        except KeyError:  # stopped at the cap
            continue
        gaps["claim"].append(forked - claimed)
        gaps["fork"].append(step_start - forked)
        gaps["step"].append(step_end - step_start)
        gaps["reap"].append(reaped - step_end)
        claims.append(claimed)
        ends.append(reaped)
    if not ends:
        return "", {}
    med = {k: statistics.median(v) * 1e3 for k, v in gaps.items()}
    held = sum(e - c for c, e in zip(claims, ends, strict=True))
    busy = held / (max(ends) - min(claims))
    claims.sort()
    waits = [
        claims[i] - end
        for end in sorted(ends)[:-1]
        if (i := bisect.bisect_left(claims, end)) < len(claims)
    ]
    wait_med = statistics.median(waits) * 1e3 if waits else 0.0
    text = (
        f"Per run (medians): claimed -> fork requested {med['claim']:.1f} ms, -> step started "
        f"{med['fork']:.1f} ms, step {med['step']:.1f} ms, -> reaped {med['reap']:.1f} ms; "
        f"a run's end -> the next claim {wait_med:.1f} ms; runs held (running or claimed "
        f"ahead) on average {busy:.2f}"
    )
    extra = {f"phase_{k}_ms": v for k, v in med.items()}
    return text, extra | {"end_to_next_claim_ms": wait_med, "runs_held": busy}


def bench_e2(
    st: Store,
    runs: int,
    cap: float,
    floor: float,
    *,
    kind: str,
    count: int = 1,
    parallel: int = E2_PARALLEL,
    workload: str = "E2",
) -> Row:
    """Queue ``runs`` runs for ``count`` ready engines; time them until the job is done or
    ``cap`` seconds have passed (then the rest is stopped). Runs/s over what finished."""
    app = st.app
    job = app.create_job(ep.trivial, grid=ep.trivial_grid(runs), max_parallel_runs=parallel).job
    with engines(kind, st.env, st.home, count=count) as started:
        pids = [e.pid for e in started]
        before = cpu_snapshot(pids)
        gc.collect()
        start = time.perf_counter()
        app.start_job(job.id)
        capped = False
        try:
            app.wait_job(job.id, timeout=cap, poll=0.25)
        except TimeoutError:
            capped = True
        wall = time.perf_counter() - start
        after = cpu_snapshot(pids)
        if capped:
            app.stop_job(job.id)  # the queued rest ends KILLED; running ones are stopped
            app.wait_job(job.id, timeout=60, poll=0.1)
    records = app.list_runs(job.id)
    done = [r for r in records if r.state is runyard.RunState.SUCCESS]
    ok = (runyard.RunState.SUCCESS, runyard.RunState.KILLED)
    wrong = [r for r in records if r.state not in ok]
    if wrong or not done or (not capped and len(done) != runs):
        ended = sorted({str(r.state) for r in records})
        raise SystemExit(f"{workload} job {job.id}: runs ended {ended}: {wrong[:1]}")
    first = min(r.started_at for r in records if r.started_at is not None)  # process start
    last = max(r.finished_at for r in done if r.finished_at is not None)
    span = (last - first).total_seconds()
    rate = len(done) / span
    cpu_text, cpu = cpu_note(before, after, len(done))
    phase_text, phase = phases(app, job.id)
    engines_text = f"{count} x {kind}" if count > 1 else kind
    how_many = (
        f"{len(done):,} of {runs:,} runs (capped at {cap:g} s)" if capped else f"{runs:,} runs"
    )
    return Row(
        workload,
        st.name,
        f"{engines_text}, {SLOTS} slots",
        "run",
        span / len(done),
        floor,
        figure=f"{rate:,.0f} runs/s",
        floor_text=f"{1 / floor:,.0f} runs/s",
        target=f">= {E2_TARGET_RUNS_PER_S:.0f} runs/s",
        met=rate >= E2_TARGET_RUNS_PER_S,
        note=f"{how_many}, max_parallel_runs {parallel}: first start to last finish "
        f"{span:.1f} s ({span / len(done) * 1e3:.2f} ms/run). {cpu_text}. {phase_text}",
        extra={
            "runs_per_s": rate,
            "runs_done": len(done),
            "capped": float(capped),
            "span_s": span,
            "wall_s": wall,
            **cpu,
            **phase,
        },
    )


# -- E3: cancel latency --------------------------------------------------------------------------


def one_cancel(app: runyard.Runyard, pid_dir: pathlib.Path, ignore_term: bool) -> dict:
    pid_dir.mkdir()
    grid = ep.sleeper_grid(str(pid_dir), E3_RUNS, ignore_term=ignore_term)
    job = app.create_job(ep.sleeper, grid=grid, max_parallel_runs=E3_RUNS).job
    app.start_job(job.id)
    deadline = time.monotonic() + 30
    while True:
        files = list(pid_dir.glob("*.pid"))
        if len(files) == E3_RUNS and all(
            r.state is runyard.RunState.RUNNING for r in app.list_runs(job.id)
        ):
            break
        if time.monotonic() > deadline:
            app.stop_job(job.id)
            raise SystemExit(f"E3 job {job.id}: its runs did not all start")
        time.sleep(0.01)
    pids = [int(f.read_text()) for f in files]
    time.sleep(random.uniform(0.0, 0.5))  # a random phase against the worker's heartbeat

    start = time.perf_counter()
    app.stop_job(job.id)
    stored = gone = None
    while stored is None or gone is None:
        now = time.perf_counter()
        if now - start > 30:
            raise SystemExit(f"E3 job {job.id}: not stopped after 30 s")
        if gone is None and all(processes_gone(p) for p in pids):
            gone = now - start
        if stored is None and all(
            r.state is runyard.RunState.KILLED for r in app.list_runs(job.id)
        ):
            stored = time.perf_counter() - start
        time.sleep(0.005)
    return {"total": max(stored, gone), "store": stored, "processes": gone}


def bench_e3(st: Store, sizes: Sizes, ignore_term: bool, floor: float) -> Row:
    samples = []
    with engines("worker", st.env, st.home, slots=E3_RUNS, grace=E3_GRACE):
        for i in range(sizes.e3):
            pid_dir = st.home / f"pids-{int(ignore_term)}-{i}"
            samples.append(one_cancel(st.app, pid_dir, ignore_term))
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    worst = max(s["total"] for s in samples)
    return Row(
        "E3 no TERM" if ignore_term else "E3",
        st.name,
        f"worker, {E3_RUNS} slots",
        "job",
        med["total"],
        floor,
        figure=f"{med['total']:.2f} s",
        floor_text=bench.fmt_time(floor),
        target=f"<= {E3_TARGET_S:.0f} s",
        met=med["total"] <= E3_TARGET_S,
        note=f"{sizes.e3} tries of {E3_RUNS} runs{' ignoring SIGTERM' if ignore_term else ''}: "
        f"all KILLED in the store {med['store']:.2f} s, all processes gone "
        f"{med['processes']:.2f} s (medians); slowest try {worst:.2f} s",
        extra={f"{k}_median_s": v for k, v in med.items()} | {"max_s": worst},
    )


# -- reporting -------------------------------------------------------------------------------


def table(rows: list[Row], title: str) -> Table:
    out = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    out.add_column("workload", no_wrap=True)
    out.add_column("store", no_wrap=True)
    out.add_column("engines", no_wrap=True)
    out.add_column("runyard", justify="right", no_wrap=True)
    out.add_column("floor", justify="right", no_wrap=True)
    out.add_column("x floor", justify="right", no_wrap=True)
    out.add_column("target", no_wrap=True)
    for r in rows:
        met = "" if r.met is None else (" [green]ok[/]" if r.met else " [red]MISSED[/]")
        out.add_row(
            r.workload,
            r.store,
            r.engine,
            r.figure,
            r.floor_text or "-",
            bench.fmt_ratio(r.ratio),
            (r.target + met) if r.target else "-",
        )
    return out


FLOORS = {
    "E1": "a bare os.fork + os._exit(0) + waitpid from the benchmark process (the cost of "
    "starting a process; not a polling floor), median",
    "E2": "the same number of os.fork + os._exit(0) + waitpid, 2 at a time, from the "
    "benchmark process",
    "E3": f"SIGKILL + waitpid of {E3_RUNS} sleeping forked processes, median",
}


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that the engines are stopped on the way out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and tries: a smoke run")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get(bench.ENV_URL) or None,
        help=f"PostgreSQL server to add figures for (default: ${bench.ENV_URL}); "
        "the benchmarks run in a scratch database that is dropped afterwards",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background by a shell: SIGINT is ignored here, and an engine would
        # inherit that and miss a SIGINT sent before it installs its own handler.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    console = Console()
    began = time.perf_counter()
    load_before = os.getloadavg()[0]

    def say(text: str) -> None:
        console.print(f"[dim]{time.perf_counter() - began:6.1f}s  {text}[/]")

    say("floors")
    fork_floor = fork_latency(sizes.fork)
    drain_floor = fork_drain(sizes.e2, SLOTS) / sizes.e2
    kill = kill_floor(E3_RUNS, max(sizes.e3, 5))

    rows: list[Row] = []
    with store("SQLite") as st:
        say("E1 on SQLite")
        rows.append(bench_e1(st, sizes, fork_floor))
        say("E3 on SQLite")
        rows.append(bench_e3(st, sizes, False, kill))
        say("E3 on SQLite, SIGTERM ignored")
        rows.append(bench_e3(st, sizes, True, kill))
        say(f"E2 on SQLite: {sizes.e2:,} runs, at most {sizes.e2_cap:g} s")
        rows.append(bench_e2(st, sizes.e2, sizes.e2_cap, drain_floor, kind="serve"))
        if sizes.e2_limit_cap:
            say(f"E2 on SQLite, max_parallel_runs 2: at most {sizes.e2_limit_cap:g} s")
            rows.append(
                bench_e2(
                    st,
                    sizes.e2,
                    sizes.e2_limit_cap,
                    drain_floor,
                    kind="serve",
                    parallel=SLOTS,
                    workload="E2 limit 2",
                )
            )

    pg_version = None
    pg_skipped = ""
    if args.postgres:
        try:
            with bench.scratch_postgres(args.postgres) as url:
                pg_version = bench.postgres_version(url)
                with store("PostgreSQL", url) as st:
                    say(f"E2 on PostgreSQL: {sizes.e2:,} runs, at most {sizes.e2_cap:g} s")
                    rows.append(
                        bench_e2(st, sizes.e2, sizes.e2_cap, drain_floor, kind="worker", count=2)
                    )
        except sa.exc.OperationalError as exc:
            pg_skipped = "PostgreSQL failed: " + " ".join(str(exc.orig).split())
        except bench.ScratchDatabaseError as exc:
            pg_skipped = str(exc)
    else:
        pg_skipped = f"set ${bench.ENV_URL} or pass --postgres URL to add them"

    env = bench.environment(pg_version, load_before)
    say("done")
    if console.width < 120 and not console.is_terminal:
        console.width = 120  # piped: keep one line per row
    console.print()
    console.print(table(rows, f"runyard engine benchmarks{' (--quick)' if args.quick else ''}"))
    if pg_skipped:
        console.print(f"PostgreSQL rows skipped: {pg_skipped}.", soft_wrap=True)
    console.print()
    console.print("x floor: runyard's time per unit (run, job) divided by the floor's. Floors:")
    for name, text in FLOORS.items():
        console.print(f"  {name}: {text}", soft_wrap=True)
    console.print("Notes:")
    for r in rows:
        if r.note:
            console.print(f"  {r.workload} {r.store}: {r.note}", soft_wrap=True)
    console.print(", ".join(f"{k} {v}" for k, v in env.items()), soft_wrap=True)
    if args.json:
        payload = {
            "environment": env,
            "quick": args.quick,
            "postgres_skipped": pg_skipped or None,
            "rows": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in rows],
        }
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
