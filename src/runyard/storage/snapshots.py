"""The snapshot store: a project's files as content-addressed blobs, and private copies of them.

Blobs live under ``<artifacts root>/blobs/sha256/<first 2 hex>/<digest>``, one per distinct
content, shared by every snapshot that holds it: taking a snapshot of an unchanged project
writes no new bytes. A local artifact directory is read and written with plain file calls;
any other fsspec URL through fsspec.

Blobs are never handed to user code: ``materialize`` gives each run a private, writable copy
(a reflink where the filesystem can share blocks copy-on-write, else a plain copy). Never a
hard link: runs may write files in place, which would change the blob for everyone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import os
import pathlib
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import fsspec
import pathspec
from fsspec.implementations.local import LocalFileSystem

from runyard import errors
from runyard.core import projects, snapshots

__all__ = ["SnapshotStore", "Taken"]

_CHUNK = 1024 * 1024
# ioctl(dest_fd, FICLONE, src_fd): share src's blocks copy-on-write (btrfs, XFS, bcachefs...).
_FICLONE = getattr(fcntl, "FICLONE", 0x40049409)
# What FICLONE answers where it cannot clone: then a plain copy is made.
_NO_CLONE = {
    errno.EOPNOTSUPP,
    errno.ENOTTY,
    errno.EINVAL,
    errno.EXDEV,
    errno.ENOSYS,
    errno.EPERM,
    errno.EBADF,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Taken:
    """What taking a snapshot did: the snapshot, the bytes and blobs newly stored (0 when
    every content was stored already), and notes on what was left out and why."""

    snapshot: snapshots.Snapshot
    bytes_written: int
    blobs_written: int
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class _Found:
    path: str  # relative POSIX path in the snapshot
    source: str  # absolute path to read the content from
    size: int
    mode: int


class _Ignores:
    """The ``.gitignore`` files that apply in one folder, from the top of the git work tree
    holding the project (when there is one) down.

    Git's rules: within a file the last matching pattern wins (``!`` re-includes); a file
    deeper in the tree overrides the ones above it; patterns are relative to the folder of
    their file; a folder that is ignored is not entered, so nothing under it can be
    re-included. ``__pycache__`` folders are always left out (Python rebuilds them).
    """

    def __init__(self, specs: tuple[tuple[str, str, pathspec.GitIgnoreSpec], ...] = ()) -> None:
        # (folder relative to the root, or "" for the root and the folders above it; what
        # leads from the file's folder down to the root; the spec), top first.
        self.specs = specs or (("", "", _BUILTIN),)

    @classmethod
    def above(cls, root: pathlib.Path) -> _Ignores:
        """The rules of the ``.gitignore`` files in ``root``'s parents, up to the top of
        its git work tree; none when ``root`` is not inside one."""
        if (root / ".git").exists():
            return cls()
        chain: list[pathlib.Path] = []
        for folder in root.parents:
            chain.append(folder)
            if (folder / ".git").exists():
                break
        else:
            return cls()
        rules = cls()
        for folder in reversed(chain):
            text = _read_gitignore(folder)
            if text is not None:
                below = root.relative_to(folder).as_posix() + "/"
                spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
                rules = _Ignores((*rules.specs, ("", below, spec)))
        return rules

    def enter(self, folder: str, gitignore: str | None) -> _Ignores:
        """The rules inside ``folder`` (relative, "" or ending in "/"), given its
        ``.gitignore`` text (None when it has none)."""
        if gitignore is None:
            return self
        spec = pathspec.GitIgnoreSpec.from_lines(gitignore.splitlines())
        return _Ignores((*self.specs, (folder, "", spec)))

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        for folder, above, spec in reversed(self.specs):  # the deepest file decides first
            relative = above + path[len(folder) :] + ("/" if is_dir else "")
            decided = spec.check_file(relative).include
            if decided is not None:
                return decided
        return False


_BUILTIN = pathspec.GitIgnoreSpec.from_lines(["__pycache__/"])


class SnapshotStore:
    """Takes snapshots of projects into blobs under ``artifacts_url`` (a directory path or an
    fsspec URL), and materializes them as private copies."""

    def __init__(self, artifacts_url: str) -> None:
        self.url = artifacts_url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = str(root).rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)

    def blob_path(self, digest: str) -> str:
        """Where the content whose sha256 is ``digest`` is stored."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise errors.StoreError(f"Blob digest {digest!r} is not a sha256 in lowercase hex")
        return f"{self.root}/blobs/sha256/{digest[:2]}/{digest}"

    @property
    def local_root(self) -> pathlib.Path | None:
        """The artifact directory when it is on this machine's filesystem, else None."""
        return pathlib.Path(self.root) if self._local else None

    # -- taking ------------------------------------------------------------------------

    def take(
        self,
        project: projects.Project,
        *,
        environment: snapshots.Environment,
        created_at: dt.datetime,
        exclude: Iterable[str | os.PathLike[str]] = (),
    ) -> Taken:
        """Snapshot ``project``: every file in it except those its ``.gitignore`` files
        ignore, the ``.git`` folder, the data folder and the paths in ``exclude`` (runyard's
        home, say), and anything under them. A symlink is kept, as a copy of the file it
        points to, only when that file is inside the project (and not left out); other
        symlinks, and sockets or pipes, are left out with a note.

        Raises ``UsageError``, having stored nothing, when the files add up to more than
        ``project.snapshot_max_mb`` (the message lists the 5 largest) or a file cannot be
        read. Stores each content not stored yet; a crash leaves no partial blob.
        """
        root = project.root.resolve()
        # Each both as given and resolved: a folder left out may be reached by either.
        given = [project.data_dir, *(pathlib.Path(p) for p in exclude)]
        left_out = {root / ".git"}
        left_out |= {pathlib.Path(os.path.abspath(p)) for p in given}
        left_out |= {p.resolve() for p in given}
        notes: list[str] = []
        found = list(self._walk(root, left_out, notes))
        total = sum(f.size for f in found)
        if total > project.snapshot_max_bytes:
            raise errors.UsageError(_too_big(project, found, total))
        files: list[snapshots.SnapshotFile] = []
        written = blobs = 0
        for f in found:
            try:
                digest, size = _sha256(f.source)
                added = self._store_blob(digest, f.source)
            except FileNotFoundError:
                notes.append(f"{f.path}: left out, it was deleted while the snapshot was taken")
                continue
            except OSError as exc:
                raise errors.UsageError(
                    f"Cannot read {f.path} in project {root}: {exc.strerror or exc}; make it "
                    "readable, or leave it out with .gitignore"
                ) from exc
            if added is not None:
                written += added
                blobs += 1
            files.append(snapshots.SnapshotFile(f.path, digest, size, f.mode))
        data = project.data_dir.resolve()
        snapshot = snapshots.make_snapshot(
            root=str(root),
            files=files,
            environment=environment,
            created_at=created_at,
            data_dir=data.relative_to(root).as_posix() if data.is_relative_to(root) else None,
        )
        return Taken(snapshot, written, blobs, tuple(notes))

    def _walk(
        self, root: pathlib.Path, left_out: set[pathlib.Path], notes: list[str]
    ) -> Iterator[_Found]:
        """Every file to snapshot, in path order. Folders are walked without following
        symlinks, so the walk never leaves ``root``."""
        stack: list[tuple[pathlib.Path, str, _Ignores]] = [(root, "", _Ignores.above(root))]
        while stack:
            folder, prefix, rules = stack.pop()
            rules = rules.enter(prefix, _read_gitignore(folder))
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                raise errors.UsageError(
                    f"Cannot list folder {prefix or '.'} in project {root}: "
                    f"{exc.strerror or exc}; make it readable, or leave it out with .gitignore"
                ) from exc
            subfolders: list[tuple[pathlib.Path, str, _Ignores]] = []
            for entry in entries:
                path = prefix + entry.name
                absolute = folder / entry.name
                if entry.is_symlink():
                    if absolute in left_out or rules.ignored(path, is_dir=False):
                        continue
                    target, why = _link_target(root, absolute, left_out)
                    if target is None:
                        notes.append(f"{path}: symlink left out, {why}")
                        continue
                    info = target.stat()
                    yield _Found(path, str(target), info.st_size, _mode(info.st_mode))
                elif entry.is_dir(follow_symlinks=False):
                    if absolute in left_out or rules.ignored(path, is_dir=True):
                        continue
                    subfolders.append((absolute, path + "/", rules))
                elif entry.is_file(follow_symlinks=False):
                    if absolute in left_out or rules.ignored(path, is_dir=False):
                        continue
                    info = entry.stat(follow_symlinks=False)
                    yield _Found(path, str(absolute), info.st_size, _mode(info.st_mode))
                elif not rules.ignored(path, is_dir=False):
                    notes.append(f"{path}: left out, it is not a regular file")
            stack.extend(reversed(subfolders))

    def _store_blob(self, digest: str, source: str) -> int | None:
        """Store ``source``'s content as blob ``digest`` unless it is there (then None);
        the bytes written.

        The content is copied to a temporary name and hashed again on the way, then renamed
        into place (on a local directory), so a blob is never partial and never holds
        anything but its digest's content. Raises ``UsageError`` when the file changed
        since it was hashed.
        """
        target = self.blob_path(digest)
        if self._local:
            if os.path.exists(target):
                return None
            folder = os.path.dirname(target)
            temporary = f"{folder}/.{digest}.{uuid.uuid4().hex}.tmp"
            try:
                with open(source, "rb") as src, _new_blob_file(temporary) as dst:
                    written = _copy_hashing(src, dst, digest, source)
                os.chmod(temporary, 0o444)  # blobs are never written again
                os.replace(temporary, target)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
            return written
        if self.fs.exists(target):
            return None
        # Checked in a local copy first: closing an fsspec file, even on an error, would
        # publish what was written so far. Object stores show an upload only once complete.
        with tempfile.NamedTemporaryFile(prefix="runyard-blob-") as checked:
            with open(source, "rb") as src:
                written = _copy_hashing(src, checked, digest, source)  # type: ignore[arg-type]
            checked.flush()
            self.fs.put_file(checked.name, target)
        return written

    # -- single blobs (data repos) -------------------------------------------------------

    def put_file(self, source: str) -> tuple[str, int, int]:
        """Store the content of the file ``source`` as a blob unless it is there already;
        returns its digest, size and the bytes newly written (0 when deduplicated). Raises
        ``UsageError`` when it cannot be read or changes while stored."""
        try:
            digest, size = _sha256(source)
            written = self._store_blob(digest, source)
        except OSError as exc:
            raise errors.UsageError(
                f"Cannot read {source}: {exc.strerror or exc}; make it readable"
            ) from exc
        return digest, size, written or 0

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob ``digest`` for reading; raises ``StoreError`` when it is missing."""
        path = self.blob_path(digest)
        try:
            if self._local:
                return open(path, "rb")
            opened: BinaryIO = self.fs.open(path, "rb")
            return opened
        except FileNotFoundError as exc:
            raise errors.StoreError(
                f"Blob {digest} is missing from the artifact store {self.url}"
            ) from exc

    def copy_blob(self, digest: str, target: str, *, copier: _Copier | None = None) -> None:
        """Write blob ``digest`` to the new file ``target`` (a private, writable copy: a
        reflink where the filesystem allows); its folder must exist."""
        if self._local:
            (copier or _Copier()).copy(self.blob_path(digest), target, 0o644, digest[:12], target)
            return
        with self.open_blob(digest) as src, _create(target, 0o644) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    def copier(self) -> _Copier:
        """A copier to hand to many ``copy_blob`` calls: it remembers whether reflinks
        work here."""
        return _Copier()

    # -- materializing -----------------------------------------------------------------

    def materialize(self, snapshot: snapshots.Snapshot, dest: str | os.PathLike[str]) -> int:
        """Write a private, writable copy of every file of ``snapshot`` under ``dest``, which
        must not exist yet (its parent must); returns the bytes copied. Executable files stay
        executable. Writing to the copy changes neither the blobs nor any other copy.

        Raises ``UsageError`` when ``dest`` exists or a path in the manifest would land
        outside ``dest``, ``StoreError`` when a blob is missing; either way ``dest`` is
        removed again.
        """
        base = pathlib.Path(dest).absolute()
        for f in snapshot.files:  # refuse before creating anything
            snapshots.check_path(f.path)
        try:
            base.mkdir()
        except FileExistsError as exc:
            raise errors.UsageError(
                f"Cannot materialize snapshot {snapshot.id[:12]} at {base}: it exists "
                "already; give a folder that does not exist yet"
            ) from exc
        real = base.resolve()
        made = {real}
        copier = _Copier()
        copied = 0
        try:
            for f in snapshot.files:
                target = real.joinpath(*f.path.split("/"))
                parent = target.parent
                if parent not in made:
                    parent.mkdir(parents=True, exist_ok=True)
                    # Created here, inside a folder created here: no symlink can redirect it.
                    if not parent.resolve().is_relative_to(real):
                        raise errors.UsageError(
                            f"Snapshot path {f.path!r} leads outside {base}; refusing it"
                        )
                    made.add(parent)
                blob = self.blob_path(f.digest)
                if self._local:
                    copier.copy(blob, str(target), f.mode, snapshot.id, f.path)
                else:
                    if not self.fs.exists(blob):
                        raise _missing(snapshot, f, blob)
                    with self.fs.open(blob, "rb") as src, _create(str(target), f.mode) as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                copied += f.size
        except BaseException:
            shutil.rmtree(real, ignore_errors=True)
            raise
        return copied


class _Copier:
    """Copies blobs to new files: by reflink while the filesystem takes them, else bytes."""

    def __init__(self) -> None:
        self.reflinks = sys.platform == "linux"

    def copy(self, blob: str, target: str, mode: int, snapshot_id: str, path: str) -> None:
        try:
            src = open(blob, "rb")  # noqa: SIM115  (closed below, with dst)
        except FileNotFoundError as exc:
            raise errors.StoreError(
                f"Snapshot {snapshot_id[:12]} is damaged: the content of {path} (blob {blob}) "
                "is missing from the artifact store; take the snapshot again"
            ) from exc
        with src, _create(target, mode) as dst:
            if self.reflinks:
                try:
                    fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
                    return
                except OSError as exc:
                    if exc.errno not in _NO_CLONE:
                        raise
                    self.reflinks = False  # the same filesystem will refuse every file
            _copy_bytes(src, dst)


def _create(path: str, mode: int) -> BinaryIO:
    """A new file at ``path`` with exactly ``mode``, open for writing; never an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    os.fchmod(fd, mode)  # the umask may have taken bits away
    return os.fdopen(fd, "wb")


def _new_blob_file(path: str) -> BinaryIO:
    """A new file at ``path``, its folder made when missing (most of them exist already:
    trying first spares a makedirs per blob)."""
    try:
        return open(path, "xb")
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "xb")


def _copy_bytes(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy ``src`` to ``dst`` in the kernel where it can, else through Python."""
    if hasattr(os, "copy_file_range"):
        try:
            while os.copy_file_range(src.fileno(), dst.fileno(), 1 << 30):
                pass
            return
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
            src.seek(0)
            dst.seek(0)
            dst.truncate()
    shutil.copyfileobj(src, dst, _CHUNK)


def _copy_hashing(src: BinaryIO, dst: BinaryIO, digest: str, source: str) -> int:
    hasher = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        hasher.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    if hasher.hexdigest() != digest:
        raise errors.UsageError(
            f"{source} changed while the snapshot was taken; take the snapshot again once "
            "nothing writes to the project"
        )
    return size


def _sha256(path: str) -> tuple[str, int]:
    """The sha256 (hex) of a file's content and its size, both from one read."""
    hasher = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while count := fh.readinto(buffer):
            hasher.update(view[:count])
            size += count
    return hasher.hexdigest(), size


def _mode(st_mode: int) -> int:
    executable = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    return snapshots.EXECUTABLE if st_mode & executable else snapshots.PLAIN


def _read_gitignore(folder: pathlib.Path) -> str | None:
    path = folder / ".gitignore"
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise errors.UsageError(
            f"Cannot read {path}: {exc.strerror or exc}; make it readable"
        ) from exc


def _link_target(
    root: pathlib.Path, link: pathlib.Path, left_out: set[pathlib.Path]
) -> tuple[pathlib.Path | None, str]:
    """The regular file ``link`` points to, when it is inside ``root`` and not under a
    folder left out; else None and why."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        return None, "it points to nothing"
    if not target.is_relative_to(root):
        return None, "it points outside the project"
    if any(target.is_relative_to(p) for p in left_out):
        return None, "it points into a folder left out (data, .git, runyard's home)"
    if not target.is_file():
        return None, "it points to a folder (copy or move the folder into the project)"
    return target, ""


def _missing(
    snapshot: snapshots.Snapshot, f: snapshots.SnapshotFile, blob: str
) -> errors.StoreError:
    return errors.StoreError(
        f"Snapshot {snapshot.id[:12]} is damaged: the content of {f.path} (blob {blob}) is "
        "missing from the artifact store; take the snapshot again"
    )


def _too_big(project: projects.Project, found: list[_Found], total: int) -> str:
    largest = sorted(found, key=lambda f: (-f.size, f.path))[:5]
    listed = ", ".join(f"{f.path} ({snapshots.size_text(f.size)})" for f in largest)
    data = project.data_dir
    shown = data.relative_to(project.root) if data.is_relative_to(project.root) else data
    return (
        f"Project {project.root} is {snapshots.size_text(total)} to snapshot, over its limit of "
        f"{project.snapshot_max_mb:g} MB; the largest files: {listed}. Add them to "
        f".gitignore, move them to the data folder ({shown}/, never snapshotted), or raise "
        "snapshot_max_mb in runyard.toml"
    )
