"""A run's workspace: the folder its pipeline was loaded from and the run's private copy.

A job's runs load their pipeline from a copy of the job's snapshot (the *source*), and each
run works in its own private copy of it (the *working copy*, its current directory). A file
a step names (a script, a notebook) is looked up in the working copy, so a run that changes
files changes only its own copy. Without a snapshot (a pipeline defined interactively, or run
in process) both are the places the files are.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import pathlib
import shutil

from runyard import errors

__all__ = ["Workspace", "copy_tree", "current", "enter", "link_data"]

# ioctl(dest_fd, FICLONE, src_fd): share blocks copy-on-write where the filesystem can.
_FICLONE = getattr(fcntl, "FICLONE", 0x40049409)
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS, errno.EPERM}


@dataclasses.dataclass(frozen=True, slots=True)
class Workspace:
    """Where a run's files are."""

    workdir: pathlib.Path  # the run's private copy: its current directory
    source_root: pathlib.Path | None = None  # the copy its pipeline was loaded from
    project_root: pathlib.Path | None = None  # the project the snapshot was taken of

    def locate(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """The file a step named, in this run's working copy.

        An absolute path inside ``source_root`` or ``project_root`` is moved to the same
        place in the working copy; a relative path is taken from the working copy; any other
        absolute path is kept. Raises ``UsageError`` for a relative path that leads out of
        the working copy.
        """
        given = pathlib.Path(path)
        if given.is_absolute():
            for root in (self.source_root, self.project_root):
                if root is not None and given.is_relative_to(root):
                    return self.workdir / given.relative_to(root)
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


def copy_tree(source: pathlib.Path, dest: pathlib.Path) -> int:
    """Copy the files under ``source`` to ``dest`` (made anew; an old one is removed first),
    keeping executable bits: by reflink where the filesystem shares blocks copy-on-write,
    else byte for byte. Writing to the copy never changes ``source``. Returns the files
    copied. Symlinks are not followed (a snapshot copy holds none)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    count = 0
    clone = True
    for folder, dirs, files in os.walk(source):
        relative = os.path.relpath(folder, source)
        target = dest if relative == "." else dest / relative
        for name in dirs:
            (target / name).mkdir()
        for name in files:
            src = os.path.join(folder, name)
            dst = target / name
            with open(src, "rb") as fin, open(dst, "xb") as fout:
                if clone:
                    try:
                        fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
                    except OSError as exc:
                        if exc.errno not in _NO_CLONE:
                            raise
                        clone = False  # the same filesystem will refuse every file
                if not clone:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            shutil.copymode(src, dst)
            count += 1
    return count


def link_data(workdir: pathlib.Path, data_dir: str, project_root: pathlib.Path) -> None:
    """Make ``workdir/<data_dir>`` a link to the project's data folder, so every run reads
    and writes the one shared data folder at the path the project uses. Nothing is linked
    where the project is not on this machine; the folder is made if it is missing."""
    if not project_root.is_dir():
        return
    target = project_root.joinpath(*data_dir.split("/"))
    link = workdir.joinpath(*data_dir.split("/"))
    if not link.resolve().is_relative_to(workdir.resolve()):
        raise errors.UsageError(f"Data folder {data_dir!r} leads outside the run's copy")
    target.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        return  # the snapshot holds a file of that name: leave the run's copy alone
    link.symlink_to(target, target_is_directory=True)
