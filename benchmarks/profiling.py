"""Where the time goes: cProfile of W1 (SQLite) and W3, as run by benchmarks/run.py.

    python benchmarks/profiling.py                 # all three views below, top 25 each
    python benchmarks/profiling.py w1 --top 40     # one of them: w1, phases, w3
    python benchmarks/profiling.py --out /tmp/prof # also keep the .prof files (snakeviz etc.)

``phases`` times W1's engine-process phases (claim, fork, record, reap, ...) without a
profiler: wall time, CPU time and page faults per run, which cProfile cannot show (it
inflates Python-heavy code such as SQLAlchemy and hides the cost of copy-on-write faults).

W1 is profiled on both sides of the fork: the parent (claiming, recording, SQL) in one
profile, and every run's process (steps, pickling outputs, messages) in another, merged over
all runs. The children are profiled by wrapping ``runprocess.run`` here, in this
process only; runyard itself is not changed. Profiling slows Python code down, so read the
shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import io
import pathlib
import pstats
import resource
import selectors
import shutil
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pipelines  # noqa: E402
import run as bench  # noqa: E402

from runyard.execution import processes, runprocess  # noqa: E402
from runyard.storage import store as store_mod  # noqa: E402


def report(title: str, stats: pstats.Stats, total: float, top: int, sort: str) -> None:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(top)
    print(f"\n=== {title} (sorted by {sort}; wall {total:.3f} s) ===")
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print("\n".join(lines[max(0, start - 3) :]).rstrip())


def profile_w1(top: int, out_dir: pathlib.Path, runs: int) -> None:
    children = out_dir / "w1-children"
    children.mkdir(parents=True, exist_ok=True)
    original = runprocess.run

    def profiled_child(pipeline, task, writer, out_fd, outputs):  # type: ignore[no-untyped-def]
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            original(pipeline, task, writer, out_fd, outputs)
        finally:
            profiler.disable()
            profiler.dump_stats(str(children / f"{task.run_id}.prof"))

    runprocess.run = profiled_child
    xs = max(1, runs // 10)
    try:
        with bench.sqlite_app() as app:
            bench.w1_job(app, (2, 2))  # warm up
            for f in children.iterdir():
                f.unlink()
            gc.collect()
            parent = cProfile.Profile()
            start = time.perf_counter()
            parent.enable()
            create, execute = bench.w1_job(app, (xs, 10), collect=False)
            parent.disable()
            wall = time.perf_counter() - start
    finally:
        runprocess.run = original
    parent.dump_stats(str(out_dir / "w1-parent.prof"))
    print(
        f"W1 on SQLite, {xs * 10} runs: create {create * 1e3:.0f} ms, execute "
        f"{execute * 1e3:.0f} ms ({xs * 10 / wall:.0f} runs/s under the profiler)"
    )
    report("W1 parent process", pstats.Stats(parent), wall, top, "cumulative")
    report("W1 parent process", pstats.Stats(parent), wall, top, "tottime")
    files = sorted(str(p) for p in children.glob("*.prof"))
    merged = pstats.Stats(*files)
    report(f"W1 run processes, {len(files)} merged", merged, wall, top, "cumulative")
    report(f"W1 run processes, {len(files)} merged", merged, wall, top, "tottime")


def phases_w1(runs: int, repeats: int = 5) -> None:
    """Wall, CPU and minor page faults per run in each phase of the engine process."""
    wall: collections.Counter[str] = collections.Counter()
    cpu: collections.Counter[str] = collections.Counter()
    faults: collections.Counter[str] = collections.Counter()

    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    originals = []

    def wrap(owner: type, name: str, label: str) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            w, c, f = time.perf_counter(), time.thread_time(), minflt()
            try:
                return original(*args, **kwargs)
            finally:
                wall[label] += time.perf_counter() - w
                cpu[label] += time.thread_time() - c
                faults[label] += minflt() - f

        setattr(owner, name, timed)

    wrap(store_mod.Store, "apply", "Store.apply (recording)")
    wrap(store_mod.Store, "claim_runs", "Store.claim_runs")
    wrap(processes.Session, "_spawn", "Session._spawn (fork request)")
    wrap(processes.Session, "_reap", "Session._reap")
    wrap(processes.Session, "_read_messages", "Session._read_messages")
    wrap(processes.Session, "_read_output", "Session._read_output")
    wrap(type(selectors.DefaultSelector()), "select", "selector.select (idle)")
    xs = max(1, runs // 10)
    total_wall = total_cpu = 0.0
    total_faults = 0
    try:
        with bench.sqlite_app() as app:
            bench.w1_job(app, (2, 2))
            wall.clear(), cpu.clear(), faults.clear()
            for _ in range(repeats):
                job = app.create_job(pipelines.etl, grid=pipelines.etl_grid(xs, 10))
                gc.collect()
                w, c, f = time.perf_counter(), time.thread_time(), minflt()
                app.execute_job(job.job.id)
                total_wall += time.perf_counter() - w
                total_cpu += time.thread_time() - c
                total_faults += minflt() - f
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    n = xs * 10 * repeats
    print(
        f"\n=== W1 on SQLite, engine process phases ({n} runs, no profiler) ===\n"
        f"execute_job: wall {total_wall / n * 1e3:.2f} ms/run, CPU {total_cpu / n * 1e3:.2f} "
        f"ms/run, minor page faults {total_faults / n:.0f}/run"
    )
    print(f"  {'phase':34} {'wall ms/run':>11} {'share':>6} {'CPU ms/run':>10} {'faults/run':>10}")
    for label in sorted(wall, key=wall.__getitem__, reverse=True):
        print(
            f"  {label:34} {wall[label] / n * 1e3:11.2f} {wall[label] / total_wall:6.1%} "
            f"{cpu[label] / n * 1e3:10.2f} {faults[label] / n:10.0f}"
        )
    rest_wall = total_wall - sum(wall.values())
    rest_cpu = total_cpu - sum(cpu.values())
    print(
        f"  {'the rest (loop, recorder, waiting)':34} {rest_wall / n * 1e3:11.2f} "
        f"{rest_wall / total_wall:6.1%} {rest_cpu / n * 1e3:10.2f}"
    )


def profile_w3(top: int, out_dir: pathlib.Path, repeats: int) -> None:
    chain = pipelines.chain
    chain.run()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(repeats):
        chain.run()
    profiler.disable()
    wall = time.perf_counter() - start
    profiler.dump_stats(str(out_dir / "w3.prof"))
    print(
        f"\nW3: {repeats} runs of a {len(chain.nodes)}-step chain; "
        f"{wall / repeats / len(chain.nodes) * 1e6:.1f} us/step under the profiler"
    )
    report("W3 in process", pstats.Stats(profiler), wall, top, "cumulative")
    report("W3 in process", pstats.Stats(profiler), wall, top, "tottime")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", choices=["w1", "phases", "w3", "all"], default="all")
    parser.add_argument("--top", type=int, default=25, help="functions to list per view")
    parser.add_argument("--runs", type=int, default=100, help="W1 runs (a multiple of 10)")
    parser.add_argument("--repeats", type=int, default=500, help="W3 runs")
    parser.add_argument("--out", metavar="DIR", help="keep the .prof files in DIR")
    args = parser.parse_args(argv)
    out_dir = pathlib.Path(args.out or tempfile.mkdtemp(prefix="runyard-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.workload in ("w1", "all"):
            profile_w1(args.top, out_dir, args.runs)
        if args.workload in ("phases", "all"):
            phases_w1(args.runs)
        if args.workload in ("w3", "all"):
            profile_w3(args.top, out_dir, args.repeats)
    finally:
        if args.out is None:
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            print(f"\nProfiles kept in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
