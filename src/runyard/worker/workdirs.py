"""The folders a worker gives its runs: a copy of each job's snapshot, and one working copy
per run.

Under the worker's work folder (``RUNYARD_WORK_DIR``, by default ``<home>/work``):

``snapshots/<snapshot id>/``  the snapshot's files, written once per machine and never
                              changed; runs load their pipeline from here
``runs/<run id>/``            the run's private copy of them, its current directory; kept
                              after the run (to look at what it wrote) until the run is
                              deleted with its job's ``max_retained_runs``
``runs/.ahead-<host>-<pid>/`` a copy made ahead by a spare run process, renamed to the next
                              run's copy (see ``execution.workspace.copy_ahead``)
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterable

from runyard.core import snapshots
from runyard.execution import workspace
from runyard.storage import snapshots as snapshots_store

__all__ = ["Workdirs"]


class Workdirs:
    """Source copies of snapshots and runs' working copies under ``root``."""

    def __init__(self, root: pathlib.Path, snapshot_store: snapshots_store.SnapshotStore) -> None:
        self.root = root
        self.snapshot_store = snapshot_store

    def source(self, snapshot: snapshots.Snapshot) -> pathlib.Path:
        """The folder holding ``snapshot``'s files, written now if it is not there yet.

        It appears whole or not at all: it is written under a temporary name and renamed,
        so workers sharing the folder never see half of it. Raises ``StoreError`` when a
        blob of the snapshot is missing.
        """
        target = self.root / "snapshots" / snapshot.id
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{snapshot.id[:12]}.{uuid.uuid4().hex}.tmp"
        try:
            self.snapshot_store.materialize(snapshot, temporary)
            try:
                os.rename(temporary, target)
            except OSError:
                if not target.is_dir():  # not a twin written first: a real failure
                    raise
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        return target

    def reference(self, snapshot: snapshots.Snapshot, reference: str) -> str:
        """``reference`` (``/project/file.py:name``) moved into ``snapshot``'s copy, which
        is written now if it is not there yet. Raises ``LoadError`` when the file is not in
        the snapshot, ``StoreError`` when a blob of it is missing."""
        relative = snapshots.pipeline_file_in(snapshot, reference)
        _, colon, attribute = reference.partition(":")
        file = self.source(snapshot).joinpath(*relative.split("/"))
        return f"{file}{colon}{attribute}"

    def run_dir(self, run_id: str) -> pathlib.Path:
        """Where run ``run_id``'s working copy goes (its process makes it)."""
        return self.root / "runs" / run_id

    def discard_stale(self) -> None:
        """Remove the copies that spare run processes of this host made ahead and could not
        remove, killed with their fork server (see ``workspace.copy_ahead``)."""
        for folder in workspace.stale_ahead(self.root / "runs"):
            shutil.rmtree(folder, ignore_errors=True)

    def discard(self, run_ids: Iterable[str]) -> None:
        """Delete the working copies of these runs (those that are on this machine)."""
        for run_id in run_ids:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.run_dir(run_id))
