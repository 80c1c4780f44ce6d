"""runyard REST API benchmarks: a real `runyard serve` (API and engine) driven by the client.

    python benchmarks/api.py            # SQLite, about a minute
    python benchmarks/api.py --quick    # fewer jobs and tries
    python benchmarks/api.py --json out.json

Workloads (see benchmarks/README.md, "API benchmarks"):

A1  jobs created one by one through the client (``create_and_configure_rapidly``, not
    started): jobs/s. Floor: an HTTP round trip to the same server (``GET /health``).
A2  jobs created in batches (``Client.create_jobs``, one request per batch): jobs/s.
    Floor: as A1, per request.
A3  latency from a run's end (its finish time in the store) to ``wait_for_completion``
    returning in the client, for jobs of one trivial run executed by the server's engine:
    median and p99. Floor: as A1.
A4  listing jobs (``GET /jobs?limit=100``, and filtered by state) with 100,000 runs stored
    (1,000 jobs of 100 runs; fewer with --quick): p50 and p99. Floor: as A1.

The server is a subprocess (``python -m runyard serve --port P``) on a temporary
RUNYARD_HOME, stopped with SIGINT afterwards. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

HERE = pathlib.Path(__file__).resolve().parent

import httpx  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import runyard  # noqa: E402
from runyard.app import service, settings  # noqa: E402
from runyard.client import Client, Job  # noqa: E402
from runyard.core import tokens  # noqa: E402

console = Console(width=160)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(home: pathlib.Path) -> Iterator[str]:
    """A `runyard serve` on ``home``; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["RUNYARD_HOME"] = str(home)
    log = home / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "runyard", "serve", "--port", str(port), "--slots", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "REST API on" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runyard serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.99 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs and tries")
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args(argv)
    one_by_one, batch, batches, tries, jobs_of_100 = (
        (50, 500, 2, 8, 100) if args.quick else (300, 2000, 3, 30, 1000)
    )
    load_before = os.getloadavg()[0]
    root = pathlib.Path(tempfile.mkdtemp(prefix="runyard-api-bench-"))
    figures: dict[str, float] = {}
    try:
        home = root / "home"
        ryard = service.Runyard.open(settings.Settings.from_env({}, home=home))
        ryard.register_file(HERE / "engine_project" / "engine_pipelines.py")
        _, token = ryard.create_token("bench", tokens.Scope.WRITE)
        console.print(f"seeding {jobs_of_100:,} jobs of 100 runs ...")
        for _ in range(jobs_of_100):
            ryard.create_job_from("nop", grid={"nop": {"i": list(range(100))}})
        with serving(home) as url, Client(url, token) as client:
            floor = []
            for _ in range(200):
                started = time.perf_counter()
                client.http.get("/health").raise_for_status()
                floor.append(time.perf_counter() - started)
            floor_s = statistics.median(floor)

            started = time.perf_counter()
            for i in range(one_by_one):
                Job(client).create_and_configure_rapidly(
                    function_name="nop", parameters={"i": i}, start=False
                )
            a1 = one_by_one / (time.perf_counter() - started)

            a2_times = []
            for _ in range(batches):
                specs = [
                    {"processing": {"name": "nop"}, "parameters": {"i": i}, "start": False}
                    for i in range(batch)
                ]
                started = time.perf_counter()
                client.create_jobs(specs)
                a2_times.append(time.perf_counter() - started)
            a2 = batch / statistics.median(a2_times)

            latencies = []
            for i in range(tries + 1):
                job = Job(client).create_and_configure_rapidly(
                    function_name="nop", parameters={"i": i}
                )
                job.wait_for_completion(timeout_s=60)
                returned = dt.datetime.now(dt.UTC)
                (run,) = ryard.list_runs(job.id)
                finished = ryard.get_run(run.id).finished_at
                assert finished is not None
                if i:  # the first one warms up
                    latencies.append((returned - finished).total_seconds())

            listing: dict[str, list[float]] = {"all": [], "state": []}
            for _ in range(tries + 1):
                for kind, params in (("all", {}), ("state", {"state": "CREATED"})):
                    started = time.perf_counter()
                    answer = client.http.get("/jobs", params={"limit": 100, **params})
                    answer.raise_for_status()
                    listing[kind].append(time.perf_counter() - started)
            runs_stored = sum(s.job.run_count for s in ryard.list_jobs(limit=1_000_000))
        ryard.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    figures = {
        "floor_ms": floor_s * 1e3,
        "A1_jobs_per_s": a1,
        "A2_jobs_per_s": a2,
        "A3_median_ms": statistics.median(latencies) * 1e3,
        "A3_p99_ms": p99(latencies) * 1e3,
        "A4_p50_ms": statistics.median(listing["all"][1:]) * 1e3,
        "A4_p99_ms": p99(listing["all"][1:]) * 1e3,
        "A4_state_p50_ms": statistics.median(listing["state"][1:]) * 1e3,
        "A4_state_p99_ms": p99(listing["state"][1:]) * 1e3,
        "runs_stored": runs_stored,
    }
    table = Table(box=box.SIMPLE_HEAD, title="runyard API benchmarks")
    for column in ("id", "what", "runyard", "floor (HTTP round trip)", "x floor"):
        table.add_column(column)
    per_job_1 = 1 / a1
    per_job_2 = 1 / a2
    table.add_row(
        "A1",
        f"{one_by_one} jobs one by one",
        f"{a1:,.0f} jobs/s ({per_job_1 * 1e3:.1f} ms)",
        f"{floor_s * 1e3:.2f} ms",
        f"{per_job_1 / floor_s:.1f}x",
    )
    table.add_row(
        "A2",
        f"{batch:,} jobs per request",
        f"{a2:,.0f} jobs/s ({per_job_2 * 1e3:.2f} ms)",
        f"{floor_s * 1e3:.2f} ms per request",
        f"{per_job_2 / floor_s:.2f}x per job",
    )
    table.add_row(
        "A3",
        "run's end -> wait_for_completion returns",
        f"{figures['A3_median_ms']:.0f} ms median (p99 {figures['A3_p99_ms']:.0f} ms)",
        f"{floor_s * 1e3:.2f} ms",
        f"{figures['A3_median_ms'] / (floor_s * 1e3):.0f}x",
    )
    table.add_row(
        "A4",
        f"GET /jobs?limit=100, {runs_stored:,} runs stored",
        f"p50 {figures['A4_p50_ms']:.1f} ms, p99 {figures['A4_p99_ms']:.1f} ms",
        f"{floor_s * 1e3:.2f} ms",
        f"{figures['A4_p50_ms'] / (floor_s * 1e3):.0f}x",
    )
    table.add_row(
        "A4 state",
        "the same, state=CREATED",
        f"p50 {figures['A4_state_p50_ms']:.1f} ms, p99 {figures['A4_state_p99_ms']:.1f} ms",
        f"{floor_s * 1e3:.2f} ms",
        f"{figures['A4_state_p50_ms'] / (floor_s * 1e3):.0f}x",
    )
    console.print(table)
    console.print(
        f"python {platform.python_version()}, runyard {runyard.__version__}, httpx "
        f"{httpx.__version__}, {os.cpu_count()} CPUs, load (1 min) before/after "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}, "
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
