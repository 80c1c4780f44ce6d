"""runyard web UI benchmarks: pages of a large store, served by the real API server.

    python benchmarks/ui.py            # 100,000 runs and a 500-step pipeline, ~1-2 minutes
    python benchmarks/ui.py --quick    # 10,000 runs and a 100-step pipeline

Workloads (target: each page under a second, server and browser):

U1  the jobs list (``GET /``, 50 jobs a page) with the store holding N runs.
U2  a job of N runs: its first page of runs (100) and its status matrix of every run.
U3  the same job's last page of runs.
U4  the run page of a run of a 500-step pipeline: the DAG laid out and drawn as SVG, the
    timeline and the steps table (U4 layout: the layout alone, in process).
B2, B4  U2 and U4 loaded in Chromium (when /usr/bin/chromium and playwright are there):
    navigation start to the load event, plus the matrix drawn.

Floors, measured in the same run: an HTTP round trip to the same server (``GET
/api/v1/health``), and for U2 the plain-``sqlite3`` read of the N runs' index and state
that the matrix needs. Nothing here asserts on timings; a page over a second says MISSED.
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import httpx
from rich import box
from rich.console import Console
from rich.table import Table

import runyard
from runyard.api import server
from runyard.app import service, settings
from runyard.execution import loader
from runyard.ui import dag

console = Console(width=160)
CHROMIUM = pathlib.Path("/usr/bin/chromium")
TARGET_S = 1.0


def timed(call: Callable[[], object], repeats: int) -> float:
    """The median seconds of ``call`` over ``repeats`` tries, after one warm-up."""
    call()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_wide_pipeline(folder: pathlib.Path, steps: int) -> pathlib.Path:
    """A pipeline file of ``steps`` steps: layers of 20, each step reading two of the layer
    before (so edges cross), ending in one step."""
    lines = ["import runyard", ""]
    for i in range(steps):
        ins = ", ".join(f"a{k}: int" for k in range(2 if i >= 20 else 0))
        body = " + ".join(f"a{k}" for k in range(2)) if i >= 20 else str(i)
        lines += [
            "",
            "@runyard.step(version='1')",
            f"def s{i}({ins}) -> int:",
            f"    return {body}",
            "",
        ]
    lines += ["", "@runyard.pipeline(version='1')", "def wide():"]
    for i in range(steps):
        if i < 20:
            lines.append(f"    v{i} = s{i}()")
        else:
            base = (i // 20 - 1) * 20
            a, b = base + (i * 7) % 20, base + (i * 13 + 5) % 20
            lines.append(f"    v{i} = s{i}(v{a}, v{b})")
    path = folder / "wide.py"
    path.write_text("\n".join(lines) + "\n")
    (folder / "runyard.toml").write_text("")
    return path


def fill_store(ryard: service.Runyard, runs: int, seed: int = 7) -> str:
    """One job of ``runs`` runs in mixed states, and 200 small jobs; the big job's id."""
    bench = pathlib.Path(__file__).resolve().parent / "pipelines.py"
    pipeline = loader.load_pipeline(f"{bench}:etl").pipeline
    for i in range(200):
        ryard.create_job(
            pipeline,
            grid={"extract": {"x": list(range(10))}},
            name=f"small {i}",
            tags=[f"team-{i % 5}"],
            snapshot=False,
        )
    big = ryard.create_job(
        pipeline,
        grid={"extract": {"x": list(range(runs))}},
        name="big",
        snapshot=False,
        allow_large_grid=True,
    )
    # Mixed states, as a large job has while it goes: a benchmark may write the store
    # directly; the product never does.
    path = ryard.store.engine.url.database
    assert path is not None
    rng = random.Random(seed)
    with sqlite3.connect(path) as conn:
        ids = [r for (r,) in conn.execute("SELECT id FROM runs WHERE job_id = ?", (big.id,))]
        picks = rng.choices(["SUCCESS", "FAILURE", "RUNNING", "QUEUED"], [70, 5, 5, 20], k=len(ids))
        conn.executemany("UPDATE runs SET state = ? WHERE id = ?", zip(picks, ids, strict=True))
    return big.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    runs, steps, repeats = (10_000, 100, 3) if args.quick else (100_000, 500, 7)
    load_before = os.getloadavg()[0]
    root = pathlib.Path(tempfile.mkdtemp(prefix="runyard-ui-bench-"))
    try:
        ryard = service.Runyard.open(settings.Settings.from_env({}, home=root / "home"))
        console.print(f"filling the store: {runs:,} runs, a {steps}-step pipeline ...")
        big = fill_store(ryard, runs)
        wide_file = write_wide_pipeline(root, steps)
        wide = loader.load_pipeline(f"{wide_file}:wide").pipeline
        wide_job = ryard.create_job(wide, snapshot=False)
        ryard.execute_job(wide_job.id, wide)
        (wide_run,) = ryard.list_runs(wide_job.id)
        big_run = ryard.list_runs(big)[0]
        api = server.ApiServer(ryard, port=0, auth=False)
        api.start()
        figures: dict[str, float] = {}
        try:
            with httpx.Client(base_url=api.url, timeout=60) as client:

                def get(path: str) -> Callable[[], object]:
                    def call() -> object:
                        response = client.get(path)
                        assert response.status_code == 200, response.text[:500]
                        return response

                    return call

                figures["floor"] = timed(get("/api/v1/health"), repeats * 5)
                figures["U1"] = timed(get("/"), repeats)
                figures["U2"] = timed(get(f"/jobs/{big}"), repeats)
                figures["U3"] = timed(get(f"/jobs/{big}?page={(runs - 1) // 100}"), repeats)
                figures["U4"] = timed(get(f"/runs/{wide_run.id}"), repeats)
                figures["run"] = timed(get(f"/runs/{big_run.id}"), repeats)
                database = ryard.store.engine.url.database
                assert database is not None

                def raw_states() -> object:
                    with sqlite3.connect(database) as conn:
                        return conn.execute(
                            "SELECT idx, state FROM runs WHERE job_id = ? ORDER BY idx", (big,)
                        ).fetchall()

                figures["sql_floor"] = timed(raw_states, repeats)
                upstream = {n.name: list(n.upstream) for n in wide}
                figures["layout"] = timed(lambda: dag.layout(wide.step_names, upstream), repeats)
                browser = browser_times(api.url, [f"/jobs/{big}", f"/runs/{wide_run.id}"])
                if browser:
                    figures["B2"], figures["B4"] = browser
        finally:
            api.stop()
            ryard.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(figures, runs, steps, load_before)
    return 0


def browser_times(url: str, paths: list[str]) -> list[float]:
    """Seconds from navigation start to the load event (plus a frame) in Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        console.print("playwright is not installed: no browser figures")
        return []
    if not CHROMIUM.exists():
        console.print(f"{CHROMIUM} is missing: no browser figures")
        return []
    found = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path in paths:
            times = []
            for _ in range(4):
                page.goto(url + path, wait_until="load")
                times.append(
                    page.evaluate(
                        "() => new Promise(done => requestAnimationFrame(() => done("
                        "performance.now() / 1000)))"
                    )
                )
            found.append(statistics.median(times[1:]))
        browser.close()
    return found


def report(figures: dict[str, float], runs: int, steps: int, load_before: float) -> None:
    floor = figures["floor"]
    table = Table(box=box.SIMPLE_HEAD, title="runyard web UI benchmarks (median)")
    for column in ("id", "what", "runyard", "floor", "x floor", f"< {TARGET_S:.0f} s"):
        table.add_column(column)

    def row(key: str, what: str, floor_s: float, floor_name: str) -> None:
        if key not in figures:
            return
        seconds = figures[key]
        table.add_row(
            key,
            what,
            f"{seconds * 1e3:.1f} ms",
            f"{floor_s * 1e3:.2f} ms ({floor_name})",
            f"{seconds / floor_s:.0f}x",
            "ok" if seconds < TARGET_S else "MISSED",
        )

    row("U1", f"jobs list, 50 of 201 jobs, {runs + 2000:,} runs stored", floor, "HTTP")
    row("U2", f"job of {runs:,} runs: page 1 + matrix", figures["sql_floor"], "sqlite3 read")
    row("U3", "the same job's last page of runs", floor, "HTTP")
    row("run", "a run page (4-step pipeline)", floor, "HTTP")
    row("U4", f"run page of a {steps}-step pipeline (SVG DAG)", floor, "HTTP")
    table.add_row(
        "U4 layout",
        f"{steps}-step DAG layout alone, in process",
        f"{figures['layout'] * 1e3:.1f} ms",
        "",
        "",
        "ok" if figures["layout"] < TARGET_S else "MISSED",
    )
    row("B2", "U2 in Chromium: to load + first frame", figures.get("U2", floor), "server")
    row("B4", "U4 in Chromium: to load + first frame", figures.get("U4", floor), "server")
    console.print(table)
    console.print(
        f"python {platform.python_version()}, runyard {runyard.__version__}, "
        f"{os.cpu_count()} CPUs, load (1 min) before/after {load_before:.2f}/"
        f"{os.getloadavg()[0]:.2f}, {sys.platform}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
