"""A run's working copy: copied from its snapshot's copy, or made ahead and renamed into place."""

import os
import pathlib
import subprocess
import sys

import pytest

from runyard.execution import workspace
from runyard.worker import workdirs


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "snapshot"
    (root / "pkg").mkdir(parents=True)
    (root / "flow.py").write_text("print('hi')\n")
    (root / "pkg" / "run.sh").write_text("echo hi\n")
    (root / "pkg" / "run.sh").chmod(0o755)
    return root


def listing(root: pathlib.Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (p.read_text(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_copy_made_ahead_becomes_the_next_runs_copy(
    source: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    runs = tmp_path / "runs"
    discard = workspace.copy_ahead(source, runs)
    ahead = runs / workspace.ahead_name(os.getpid())
    assert listing(ahead) == listing(source)
    ahead_inode = ahead.stat().st_ino

    assert workspace.copy_tree(source, runs / "run1") == 2
    assert (runs / "run1").stat().st_ino == ahead_inode  # renamed, not copied again
    assert not ahead.exists()
    assert listing(runs / "run1") == listing(source)
    # Writing to the run's copy never changes the snapshot's.
    (runs / "run1" / "flow.py").write_text("changed")
    assert (source / "flow.py").read_text() == "print('hi')\n"
    # The next run, with nothing made ahead, is copied.
    workspace.copy_tree(source, runs / "run2")
    assert listing(runs / "run2") == listing(source)
    discard()  # nothing left to remove
    assert sorted(p.name for p in runs.iterdir()) == ["run1", "run2"]


def test_a_copy_made_ahead_for_another_place_is_removed_not_used(
    source: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    other = tmp_path / "other-snapshot"
    other.mkdir()
    (other / "flow.py").write_text("other\n")
    workspace.copy_ahead(other, tmp_path / "runs")
    workspace.copy_tree(source, tmp_path / "runs" / "run1")
    assert listing(tmp_path / "runs" / "run1") == listing(source)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run1"]


def test_a_copy_made_ahead_and_not_used_is_removed_by_its_undo(
    source: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    workspace.copy_ahead(source, tmp_path / "runs")()
    assert list((tmp_path / "runs").iterdir()) == []


def test_copies_left_by_processes_that_are_gone_are_removed_at_start(
    source: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    runs = tmp_path / "work" / "runs"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = runs / workspace.ahead_name(int(gone.stdout))
    alive = runs / workspace.ahead_name(os.getpid())
    elsewhere = runs / ".ahead-another-host-1"
    for folder in (dead, alive, elsewhere, runs / "run1"):
        folder.mkdir(parents=True)
    workdirs.Workdirs(tmp_path / "work", snapshot_store=None).discard_stale()  # type: ignore[arg-type]
    assert sorted(p.name for p in runs.iterdir()) == sorted([alive.name, elsewhere.name, "run1"])
