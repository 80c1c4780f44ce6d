"""Snapshot benchmarks: taking a project's snapshot and materializing a run's private copy.

    python benchmarks/snapshots.py            # 1,000 files / 50 MB
    python benchmarks/snapshots.py --quick    # the same project, fewer repetitions
    python benchmarks/snapshots.py --json out.json

A project of 1,000 files and 50 MB is generated under a temporary folder (899 source-sized
files of 2-20 KB, 100 of ~0.4 MB and a runyard.toml; random bytes, fixed seed), with a temporary
``RUNYARD_HOME`` (SQLite, local artifact directory) beside it; both are deleted afterwards.
Everything goes through the facade a user's job will use (``Runyard.take_snapshot``,
``Runyard.materialize_snapshot``), so the environment capture and the metadata writes and
reads are counted.

S1  first take into an empty store: seconds, MB/s. Floor: reading and sha256-hashing every
    file plus a plain ``shutil.copyfile`` of each into a folder (what content-addressing
    needs at the least).
S2  retake of the unchanged project: seconds and bytes newly stored (target ~0). Floor:
    sha256 of every file.
S3  retake after one file (0.4 MB) changed: seconds and bytes newly stored.
M1  materializing a snapshot from its blobs (``materialize_snapshot``): ms. Floor:
    ``shutil.copytree`` of the same tree. Reports whether the filesystem took reflinks
    (copy-on-write) or plain copies. An engine does this once per snapshot and machine.
M2  a run's working copy, as every run makes it: ``workspace.copy_tree`` from the snapshot's
    copy (listed once beforehand, as the fork server does). Floor: as M1.

The floors are measured in the same run, interleaved with runyard's repetitions; medians are
reported. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import gc
import hashlib
import json
import os
import pathlib
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

import runyard
from runyard.app import service, settings
from runyard.execution import workspace

FILES_SMALL = 899  # with 100 large files and runyard.toml: 1,000 files
FILES_LARGE = 100
TOTAL_BYTES = 50 * 1024 * 1024
SEED = 20261202

console = Console(highlight=False, width=140)


def generate(root: pathlib.Path) -> int:
    """Write the benchmark project under ``root``; returns its size in bytes."""
    rng = random.Random(SEED)
    small = [rng.randint(2 * 1024, 20 * 1024) for _ in range(FILES_SMALL)]
    large_each = (TOTAL_BYTES - sum(small)) // FILES_LARGE
    sizes = small + [large_each] * FILES_LARGE
    for i, size in enumerate(sizes):
        folder = root / f"pkg{i % 20:02d}" / f"sub{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"module_{i:04d}.py" if i < FILES_SMALL else f"model_{i:04d}.bin"
        (folder / name).write_bytes(rng.randbytes(size))
    (root / "runyard.toml").write_text("snapshot_max_mb = 100\n")
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def files_of(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def hash_all(root: pathlib.Path) -> None:
    for path in files_of(root):
        with path.open("rb") as fh:
            hashlib.file_digest(fh, "sha256")


def hash_and_copy(root: pathlib.Path, into: pathlib.Path) -> None:
    into.mkdir()
    for i, path in enumerate(files_of(root)):
        with path.open("rb") as fh:
            hashlib.file_digest(fh, "sha256")
        shutil.copyfile(path, into / str(i))


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    began = time.perf_counter()
    result = action()
    return time.perf_counter() - began, result


def reflinks_work(folder: pathlib.Path) -> bool:
    """Whether the filesystem under ``folder`` takes FICLONE (copy-on-write copies)."""
    src, dst = folder / ".probe-src", folder / ".probe-dst"
    src.write_bytes(b"probe" * 1000)
    try:
        with src.open("rb") as s, dst.open("wb") as d:
            fcntl.ioctl(d.fileno(), getattr(fcntl, "FICLONE", 0x40049409), s.fileno())
        return True
    except OSError:
        return False
    finally:
        src.unlink()
        dst.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch() -> Iterator[pathlib.Path]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="runyard-snap-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def open_app(home: pathlib.Path) -> service.Runyard:
    return service.Runyard.open(settings.Settings.from_env({}, home=home))


def mb(count: float) -> float:
    return count / (1024 * 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args(argv)
    reps = {"first": 2, "retake": 3, "changed": 2, "copy": 5} if args.quick else {}
    reps = reps or {"first": 3, "retake": 5, "changed": 3, "copy": 15}
    load_before = os.getloadavg()[0]
    figures: dict[str, Any] = {}

    with scratch() as tmp:
        project = tmp / "project"
        project.mkdir()
        total = generate(project)
        count = len(files_of(project))
        console.print(f"project: {count} files, {mb(total):.1f} MB under a temporary folder")
        hash_all(project)  # warm the page cache once, for every measurement alike

        # S1: first take, each into a new, empty store; floor interleaved.
        first: list[float] = []
        first_floor: list[float] = []
        written = 0
        for i in range(reps["first"]):
            app = open_app(tmp / f"home-first-{i}")
            try:
                seconds, taken = timed(lambda app=app: app.take_snapshot(project))
            finally:
                app.close()
            first.append(seconds)
            written = taken.bytes_written
            first_floor.append(timed(lambda i=i: hash_and_copy(project, tmp / f"floor-{i}"))[0])
            shutil.rmtree(tmp / f"floor-{i}")
            shutil.rmtree(tmp / f"home-first-{i}")

        # S2, S3 and M1 share one store holding the first snapshot.
        app = open_app(tmp / "home")
        try:
            base = app.take_snapshot(project)
            retake: list[float] = []
            retake_floor: list[float] = []
            retake_written: list[int] = []
            for _ in range(reps["retake"]):
                seconds, again = timed(lambda: app.take_snapshot(project))
                retake.append(seconds)
                retake_written.append(again.bytes_written)
                retake_floor.append(timed(lambda: hash_all(project))[0])

            large = [p for p in files_of(project) if p.suffix == ".bin"]
            changed: list[float] = []
            changed_written: list[int] = []
            for i in range(reps["changed"]):
                target = large[i]
                target.write_bytes(random.Random(i).randbytes(target.stat().st_size))
                seconds, after = timed(lambda: app.take_snapshot(project))
                changed.append(seconds)
                changed_written.append(after.bytes_written)

            runs = tmp / "runs"
            runs.mkdir()
            reflink = reflinks_work(runs)
            copies: list[float] = []
            copy_floor: list[float] = []
            for i in range(reps["copy"]):
                dest = runs / f"run-{i}"
                copies.append(
                    timed(lambda d=dest: app.materialize_snapshot(base.snapshot.id, d))[0]
                )
                shutil.rmtree(dest)
                floor_dest = runs / f"floor-{i}"
                copy_floor.append(timed(lambda d=floor_dest: shutil.copytree(project, d))[0])
                shutil.rmtree(floor_dest)
            # M2: what a run does: copy the snapshot's copy on this machine (written once
            # per snapshot, listed once by the fork server) into its working copy.
            assert app.workdirs is not None
            source = app.workdirs.source(base.snapshot)
            workspace.list_tree(source)
            working: list[float] = []
            for i in range(reps["copy"]):
                dest = runs / f"work-{i}"
                working.append(timed(lambda d=dest: workspace.copy_tree(source, d))[0])
                shutil.rmtree(dest)
        finally:
            app.close()

    s1, s1_floor = statistics.median(first), statistics.median(first_floor)
    s2, s2_floor = statistics.median(retake), statistics.median(retake_floor)
    s3 = statistics.median(changed)
    m1, m1_floor = statistics.median(copies), statistics.median(copy_floor)
    m2 = statistics.median(working)
    figures = {
        "files": count,
        "bytes": total,
        "S1 first take s": s1,
        "S1 MB/s": mb(total) / s1,
        "S1 bytes written": written,
        "S1 floor s": s1_floor,
        "S2 retake s": s2,
        "S2 bytes written": max(retake_written),
        "S2 floor s": s2_floor,
        "S3 one changed s": s3,
        "S3 bytes written": statistics.median(changed_written),
        "M1 materialize ms": m1 * 1000,
        "M1 floor ms": m1_floor * 1000,
        "M1 reflinks": reflink,
        "M2 working copy ms": m2 * 1000,
    }

    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "what", "runyard", "new bytes stored", "floor", "x floor"):
        table.add_column(column, justify="left" if column in ("id", "what") else "right")
    table.add_row(
        "S1",
        "first take (empty store)",
        f"{s1:.2f} s ({mb(total) / s1:.0f} MB/s)",
        f"{mb(written):.1f} MB",
        f"{s1_floor:.2f} s hash + copy",
        f"{s1 / s1_floor:.2f}x",
    )
    table.add_row(
        "S2",
        "retake, unchanged",
        f"{s2:.2f} s ({mb(total) / s2:.0f} MB/s)",
        f"{max(retake_written)} B",
        f"{s2_floor:.2f} s hash",
        f"{s2 / s2_floor:.2f}x",
    )
    table.add_row(
        "S3",
        "retake, one 0.4 MB file changed",
        f"{s3:.2f} s",
        f"{mb(statistics.median(changed_written)):.2f} MB",
        f"{s2_floor:.2f} s hash",
        f"{s3 / s2_floor:.2f}x",
    )
    table.add_row(
        "M1",
        f"materialize a run's copy ({'reflink' if reflink else 'plain copy, no reflink'})",
        f"{m1 * 1000:.0f} ms",
        "-",
        f"{m1_floor * 1000:.0f} ms copytree",
        f"{m1 / m1_floor:.2f}x",
    )
    table.add_row(
        "M2",
        "a run's working copy, from the snapshot's copy",
        f"{m2 * 1000:.0f} ms",
        "-",
        f"{m1_floor * 1000:.0f} ms copytree",
        f"{m2 / m1_floor:.2f}x",
    )
    console.print(table)
    console.print(
        f"python {platform.python_version()}, runyard {runyard.__version__}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average (1 min) before/after {load_before:.2f}/{os.getloadavg()[0]:.2f}, "
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}; repetitions "
        f"{reps}; medians"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
