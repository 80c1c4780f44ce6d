"""runyard web UI benchmarks, the Data pages: a commit of many files and a data job of many
datums, served by the real API server.

    python benchmarks/ui_data.py            # 10,000 files; a job of 10,000 datums (~1 min)
    python benchmarks/ui_data.py --quick    # 2,000 files and datums

Workloads (target: each page under a second):

D1  the Data overview (``GET /data``): repos, the pipeline DAG, the newest data jobs.
D2  a commit's root folder (``/data/repos/R/commits/C``): N files, the first 200 shown.
D3  the same folder's last page.
D4  a file of the commit, downloaded.
D5  the page of the data job that processed 1 datum and skipped N - 1 (a commit changing
    one file): its first page of datums (the skipped ones are cut again from its input
    commits, as ``runyard list datum`` does).

Floors, measured in the same run: an HTTP round trip to the same server (``GET
/api/v1/health``), and for D2 the plain-``sqlite3`` read of the commit's N file rows (path
and size). Nothing here asserts on timings; a page over a second says MISSED.
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import platform
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

console = Console(width=160)
TARGET_S = 1.0
# A transform with nothing to do but copy: the pages are measured, not the datums.
SPEC = {
    "pipeline": {"name": "copy"},
    "input": {"pfs": {"repo": "many", "glob": "/*"}},
    "transform": {"cmd": ["sh"], "stdin": ['cp "$RUNYARD_INPUT_MANY" "$RUNYARD_OUTPUT_DIR/"']},
    "parallelism": 2,
}


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


def get(client: httpx.Client, path: str) -> Callable[[], object]:
    def call() -> object:
        response = client.get(path)
        response.raise_for_status()
        return response.content

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    files, repeats = (2_000, 3) if args.quick else (10_000, 7)
    load_before = os.getloadavg()[0]
    root = pathlib.Path(tempfile.mkdtemp(prefix="runyard-ui-data-bench-"))
    try:
        ryard = service.Runyard.open(settings.Settings.from_env({}, home=root / "home"))
        data = ryard.data
        source = root / "many"
        source.mkdir()
        for i in range(files):
            (source / f"f{i:06d}.txt").write_text(f"{i}\n")
        console.print(f"a commit of {files:,} files and a job over them ...")
        data.create_repo("many")
        data.create_pipeline(SPEC)
        commit, _ = data.put_files("many@master:/", [source], recursive=True)
        started = time.perf_counter()
        data.run_job_set(commit.id)
        first_job = time.perf_counter() - started
        (source / "f000000.txt").write_text("changed\n")
        changed, _ = data.put_files("many@master:/f000000.txt", [source / "f000000.txt"])
        data.run_job_set(changed.id)
        job = data.get_job("copy", changed.id)
        console.print(f"first job {first_job:.1f} s; second job {job.progress}")
        path = ryard.store.engine.url.database
        assert path is not None
        api = server.ApiServer(ryard, host="127.0.0.1", port=0, auth=False)
        api.start()
        try:
            with httpx.Client(base_url=api.url, timeout=60) as client:
                base = f"/data/repos/many/commits/{changed.id}"
                last = (files - 1) // 200
                job_page = f"/data/jobs/copy@{job.id}"
                rows = [
                    ("HTTP floor", "GET /api/v1/health", get(client, "/api/v1/health")),
                    ("D1", "GET /data", get(client, "/data")),
                    ("D2", f"commit root, {files:,} files, page 1", get(client, base)),
                    ("D3", f"commit root, page {last + 1}", get(client, f"{base}?page={last}")),
                    ("D4", "one file downloaded", get(client, f"{base}/files/f000123.txt")),
                    ("D5", f"data job {job.progress}, page 1", get(client, job_page)),
                ]

                def floor() -> object:
                    with sqlite3.connect(path) as conn:
                        return conn.execute(
                            "SELECT path, size FROM data_files WHERE repo = ? AND commit_id = ?"
                            " ORDER BY path",
                            ("many", changed.id),
                        ).fetchall()

                measured = [(name, what, timed(call, repeats)) for name, what, call in rows]
                sql_floor = timed(floor, repeats)
        finally:
            api.stop()
            ryard.close()
        table = Table(box=box.SIMPLE_HEAVY, title=f"runyard {runyard.__version__} Data pages")
        for column in ("", "what", "median", "vs floor", "target"):
            table.add_column(column)
        http_floor = measured[0][2]
        for name, what, seconds in measured:
            floor_s = sql_floor if name in ("D2", "D3") else http_floor
            ratio = "" if name == "HTTP floor" else f"{seconds / floor_s:.1f}x"
            verdict = "" if name == "HTTP floor" else ("ok" if seconds < TARGET_S else "MISSED")
            table.add_row(name, what, f"{seconds * 1000:.1f} ms", ratio, verdict)
        table.add_row("floor", f"sqlite3 read of {files:,} file rows", f"{sql_floor * 1000:.1f} ms")
        console.print(table)
        console.print(
            f"{platform.python_implementation()} {platform.python_version()} on "
            f"{platform.platform()}, {os.cpu_count()} CPUs, load {load_before:.2f} -> "
            f"{os.getloadavg()[0]:.2f}; median of {repeats} after a warm-up; D2 and D3 "
            "ratios are to the sqlite3 floor, the others to the HTTP floor"
        )
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
