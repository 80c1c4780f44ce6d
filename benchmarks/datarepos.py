"""Data repo and data pipeline benchmarks: putting files, and commit-triggered data jobs.

    python benchmarks/datarepos.py             # a repo of 10,000 small files
    python benchmarks/datarepos.py --quick     # 1,000 files
    python benchmarks/datarepos.py --json out.json

Everything goes through the facade the CLI uses (``Runyard.data``) on a temporary
``RUNYARD_HOME`` (SQLite, local blob directory), deleted afterwards. Files are 64-192 random
bytes (fixed seed). The pipeline reads the repo with glob ``/*`` (one datum per file) and
copies each file to its output with ``sh -c 'cp ...'`` (a trivial transform), parallelism 2.

P1  put N files in one commit: files/s and MB/s. Floor: sha256 of each file plus a
    ``shutil.copyfile`` of it into a folder (what content-addressed storing needs at least).
P2  put the same N files again under another folder: bytes newly stored (target 0, dedup)
    and seconds.
J1  the first job over the N files (every datum processed): datums/s end to end, from the
    pipeline's creation to its job's SUCCESS. Floor: the same N ``sh -c cp`` processes,
    two at a time, from a plain Python thread pool.
J2  a commit changing one file: seconds from the put to the job's SUCCESS (1 processed,
    N-1 skipped; target <= 1 s). Floor: one ``sh -c cp``.
J3  a commit adding N/10 files: seconds end to end, and datums/s over the new ones.

No timing is asserted anywhere; the floors are measured in the same run.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import hashlib
import json
import os
import pathlib
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

import runyard
from runyard.app import service, settings

SEED = 20261207
console = Console(highlight=False, width=140)
COPY = 'cp "$RUNYARD_INPUT_FILES" "$RUNYARD_OUTPUT_DIR/"'


def generate(root: pathlib.Path, count: int, *, start: int = 0) -> list[pathlib.Path]:
    rng = random.Random(SEED + start)
    made = []
    for i in range(start, start + count):
        path = root / f"f{i:06d}.bin"
        path.write_bytes(rng.randbytes(rng.randint(64, 192)))
        made.append(path)
    return made


def floor_put(files: list[pathlib.Path], dest: pathlib.Path) -> float:
    dest.mkdir()
    started = time.perf_counter()
    for f in files:
        hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, dest / f.name)
    return time.perf_counter() - started


def floor_transform(files: list[pathlib.Path], out: pathlib.Path) -> float:
    out.mkdir()

    def one(f: pathlib.Path) -> None:
        subprocess.run(["sh", "-c", f'cp "{f}" "{out}/"'], check=True)

    started = time.perf_counter()
    with futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1,000 files instead of 10,000")
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args()
    n = 1_000 if args.quick else 10_000
    figures: dict[str, Any] = {
        "files": n,
        "runyard": runyard.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="runyard-bench-data-") as tmp:
        root = pathlib.Path(tmp)
        src = root / "src"
        src.mkdir()
        files = generate(src, n)
        total = sum(f.stat().st_size for f in files)
        app = service.Runyard.open(settings.Settings.from_env({}, home=root / "home"))
        data = app.data
        data.create_repo("files")
        blobs = root / "home" / "artifacts" / "blobs"

        floor = floor_put(files, root / "floor-put")
        started = time.perf_counter()
        data.put_files("files@master:/", [src], recursive=True)
        p1 = time.perf_counter() - started
        figures["P1"] = {
            "seconds": p1,
            "files_per_s": n / p1,
            "mb_per_s": total / p1 / 1e6,
            "floor_seconds": floor,
            "ratio": p1 / floor,
        }

        before = sum(f.stat().st_size for f in blobs.rglob("*") if f.is_file())
        started = time.perf_counter()
        data.put_files("files@dev:/again/", [src], recursive=True)
        p2 = time.perf_counter() - started
        after = sum(f.stat().st_size for f in blobs.rglob("*") if f.is_file())
        figures["P2"] = {"seconds": p2, "bytes_newly_stored": after - before}

        spec = {
            "pipeline": {"name": "copy"},
            "input": {"pfs": {"repo": "files", "glob": "/*"}},
            "transform": {"cmd": ["sh"], "stdin": [COPY]},
            "parallelism": 2,
            "datum_tries": 1,
        }
        floor = floor_transform(files, root / "floor-out")
        started = time.perf_counter()
        _, jobs = data.create_pipeline(spec)
        (job,) = data.run_job_set(jobs[0].id)
        j1 = time.perf_counter() - started
        assert job.state.value == "SUCCESS", job.reason
        figures["J1"] = {
            "seconds": j1,
            "datums_per_s": n / j1,
            "progress": job.progress,
            "floor_seconds": floor,
            "floor_datums_per_s": n / floor,
            "ratio": j1 / floor,
        }

        one = root / "one"
        one.mkdir()
        (one / files[n // 2].name).write_bytes(b"changed\n")
        floor = floor_transform([one / files[n // 2].name], root / "floor-one")
        started = time.perf_counter()
        commit, jobs = data.put_files("files@master:/", [one / files[n // 2].name])
        (job,) = data.run_job_set(commit.id)
        j2 = time.perf_counter() - started
        assert job.state.value == "SUCCESS", job.reason
        figures["J2"] = {
            "seconds": j2,
            "progress": job.progress,
            "floor_seconds": floor,
            "ratio": j2 / floor,
        }

        more = root / "more"
        more.mkdir()
        added = generate(more, n // 10, start=n)
        started = time.perf_counter()
        commit, jobs = data.put_files("files@master:/", added)
        (job,) = data.run_job_set(commit.id)
        j3 = time.perf_counter() - started
        assert job.state.value == "SUCCESS", job.reason
        figures["J3"] = {
            "seconds": j3,
            "progress": job.progress,
            "new_datums_per_s": (n // 10) / j3,
        }
        app.close()

    table = Table("id", "what", "runyard", "floor", "ratio", box=box.SIMPLE)
    p1, p2, j1, j2, j3 = (figures[k] for k in ("P1", "P2", "J1", "J2", "J3"))
    table.add_row(
        "P1",
        f"put {n:,} files, one commit",
        f"{p1['seconds']:.2f} s ({p1['files_per_s']:,.0f} files/s, {p1['mb_per_s']:.2f} MB/s)",
        f"{p1['floor_seconds']:.2f} s",
        f"{p1['ratio']:.1f}x",
    )
    table.add_row(
        "P2",
        "put them again (dedup)",
        f"{p2['seconds']:.2f} s, {p2['bytes_newly_stored']} bytes newly stored",
        "-",
        "-",
    )
    table.add_row(
        "J1",
        f"first job, {n:,} datums",
        f"{j1['seconds']:.2f} s ({j1['datums_per_s']:,.0f} datums/s; {j1['progress']})",
        f"{j1['floor_seconds']:.2f} s ({j1['floor_datums_per_s']:,.0f}/s)",
        f"{j1['ratio']:.2f}x",
    )
    table.add_row(
        "J2",
        "commit changing 1 file",
        f"{j2['seconds'] * 1000:.0f} ms ({j2['progress']})",
        f"{j2['floor_seconds'] * 1000:.0f} ms",
        f"{j2['ratio']:.0f}x",
    )
    table.add_row(
        "J3",
        f"commit adding {n // 10:,} files",
        f"{j3['seconds']:.2f} s ({j3['new_datums_per_s']:,.0f} new datums/s; {j3['progress']})",
        "-",
        "-",
    )
    console.print(
        f"runyard {runyard.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
