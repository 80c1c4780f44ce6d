"""A run's workspace: the folder its pipeline was loaded from and the run's private copy.

A job's runs load their pipeline from a copy of the job's snapshot (the *source*), and each
run works in its own private copy of it (the *working copy*, its current directory). A file
a step names (a script, a notebook) is looked up in the working copy, so a run that changes
files changes only its own copy. Without a snapshot (a pipeline defined interactively, or run
in process) both are the places the files are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import pathlib
import shutil
import socket
from collections.abc import Callable

from runyard import errors
from runyard.execution import pids

__all__ = [
    "Workspace",
    "ahead_name",
    "copy_ahead",
    "copy_tree",
    "current",
    "enter",
    "link_data",
    "list_tree",
    "stale_ahead",
]

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


class _Tree:
    """A source folder's listing, read once: its folders and its files with their modes."""

    __slots__ = ("files", "folders", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.folders: list[str] = []  # relative, parents first
        self.files: list[tuple[str, int]] = []  # (relative path, permission bits)
        stack = [""]
        while stack:
            relative = stack.pop()
            with os.scandir(os.path.join(source, relative)) as entries:
                for entry in entries:
                    path = os.path.join(relative, entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        self.folders.append(path)
                        stack.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        self.files.append((path, entry.stat(follow_symlinks=False).st_mode & 0o777))


_trees: dict[str, _Tree] = {}
_can_clone = [True]  # until the filesystem refuses a reflink once
_ahead: list[tuple[str, pathlib.Path]] = []  # a copy made ahead: (its source, where it is)
_HOST = socket.gethostname().replace("/", "_")


def list_tree(source: pathlib.Path) -> None:
    """Read ``source``'s listing now (a fork server does, once per snapshot copy, so the
    runs it forks only copy). A snapshot's copy never changes, so the listing stays true."""
    key = str(source)
    if key not in _trees:
        _trees[key] = _Tree(key)


def copy_tree(source: pathlib.Path, dest: pathlib.Path) -> int:
    """Copy the files under ``source`` to ``dest`` (made anew; an old one is removed first),
    keeping their permission bits: by reflink where the filesystem shares blocks
    copy-on-write, else in the kernel (``copy_file_range``/``sendfile``). Writing to the copy
    never changes ``source``. Returns the files copied. Symlinks are not followed (a
    snapshot's copy holds none)."""
    list_tree(source)
    tree = _trees[str(source)]
    if dest.exists():
        shutil.rmtree(dest)
    if _ahead:
        made_of, made = _ahead.pop()
        if made_of == str(source) and made.parent == dest.parent:
            try:
                os.rename(made, dest)
                return len(tree.files)
            except OSError:
                pass
        shutil.rmtree(made, ignore_errors=True)
    dest.mkdir(parents=True)
    _fill(tree, str(dest))
    return len(tree.files)


def copy_ahead(source: pathlib.Path, parent: pathlib.Path) -> Callable[[], None]:
    """Copy ``source`` now into a hidden folder of ``parent``, which the next ``copy_tree``
    of ``source`` into ``parent`` (in this process) takes by renaming it: the copy is made
    before the run that needs it is known. Returns a call that removes the copy when no run
    took it."""
    list_tree(source)
    made = parent / ahead_name(os.getpid())
    if made.exists():
        shutil.rmtree(made)
    made.mkdir(parents=True)
    try:
        _fill(_trees[str(source)], str(made))
    except BaseException:
        shutil.rmtree(made, ignore_errors=True)
        raise
    _ahead[:] = [(str(source), made)]

    def discard() -> None:
        for _, where in _ahead:
            shutil.rmtree(where, ignore_errors=True)
        _ahead.clear()

    return discard


def ahead_name(pid: int) -> str:
    """The name of the folder ``copy_ahead`` makes in process ``pid`` of this host."""
    return f".ahead-{_HOST}-{pid}"


def stale_ahead(parent: pathlib.Path) -> list[pathlib.Path]:
    """Copies made ahead in ``parent`` by processes of this host that are gone (killed
    before they could remove them); those of other hosts sharing the folder are left."""
    prefix = f".ahead-{_HOST}-"
    stale = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(parent):
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix) :]
            if pid.isdigit() and pids.gone(int(pid)):
                stale.append(pathlib.Path(entry.path))
    return stale


def _fill(tree: _Tree, base: str) -> None:
    """Copy ``tree``'s folders and files into the empty folder ``base``."""
    for folder in tree.folders:
        os.mkdir(os.path.join(base, folder))
    for relative, mode in tree.files:
        fin = os.open(os.path.join(tree.source, relative), os.O_RDONLY)
        try:
            fout = os.open(os.path.join(base, relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                _copy(fin, fout)
                os.fchmod(fout, mode)  # the umask may have taken bits off
            finally:
                os.close(fout)
        finally:
            os.close(fin)


def _copy(fin: int, fout: int) -> None:
    if _can_clone[0]:
        try:
            fcntl.ioctl(fout, _FICLONE, fin)
            return
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
            _can_clone[0] = False  # the same filesystem will refuse every file
    size = os.fstat(fin).st_size
    copied = 0
    try:
        while copied < size:
            sent = os.sendfile(fout, fin, copied, size - copied)
            if sent == 0:
                break
            copied += sent
    except OSError as exc:  # where sendfile takes sockets only (macOS)
        if exc.errno not in (errno.EINVAL, errno.ENOTSOCK, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        os.lseek(fin, copied, os.SEEK_SET)
        while chunk := os.read(fin, 1 << 20):
            os.write(fout, chunk)


def link_data(workdir: pathlib.Path, data_dir: str, project_root: pathlib.Path) -> None:
    """Make ``workdir/<data_dir>`` a link to the project's data folder, so every run reads
    and writes the one shared data folder at the path the project uses. Nothing is linked
    where the project, or its data folder, is not on this machine."""
    target = project_root.joinpath(*data_dir.split("/"))
    if not target.is_dir():
        return
    link = workdir.joinpath(*data_dir.split("/"))
    if not link.resolve().is_relative_to(workdir.resolve()):
        raise errors.UsageError(f"Data folder {data_dir!r} leads outside the run's copy")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        return  # the snapshot holds a file of that name: leave the run's copy alone
    link.symlink_to(target, target_is_directory=True)
