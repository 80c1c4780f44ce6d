"""A run's workspace: the folder its pipeline was loaded from and the run's private copy.

A job's runs load their pipeline from a copy of the job's snapshot (the *source*), and each
run works in its own private copy of it (the *working copy*, its current directory). A file
a step names (a script, a notebook) is looked up in the working copy, so a run that changes
files changes only its own copy. Without a snapshot (a pipeline defined interactively, or run
in process) both are the places the files are.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from runyard import errors

__all__ = ["Workspace", "current", "enter"]


@dataclasses.dataclass(frozen=True, slots=True)
class Workspace:
    """Where a run's files are."""

    workdir: pathlib.Path  # the run's private copy: its current directory
    source_root: pathlib.Path | None = None  # the copy its pipeline was loaded from

    def locate(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """The file a step named, in this run's working copy.

        An absolute path inside ``source_root`` is moved to the same place in the working
        copy; a relative path is taken from the working copy; any other absolute path is
        kept. Raises ``UsageError`` for a relative path that leads out of the working copy.
        """
        given = pathlib.Path(path)
        if given.is_absolute():
            if self.source_root is not None and given.is_relative_to(self.source_root):
                return self.workdir / given.relative_to(self.source_root)
            return given
        found = (self.workdir / given).resolve()
        if not found.is_relative_to(self.workdir.resolve()):
            raise errors.UsageError(
                f"Path {str(path)!r} leads outside the run's working copy {self.workdir}; "
                "name a file inside the project"
            )
        return found


_current: Workspace | None = None


def current() -> Workspace:
    """This process's run workspace; outside a run, the current directory."""
    return _current if _current is not None else Workspace(pathlib.Path.cwd())


def enter(workspace: Workspace) -> None:
    """Make ``workspace`` this process's (a run's process calls this once, before its
    steps) and move into its working copy."""
    global _current
    os.chdir(workspace.workdir)
    _current = workspace
