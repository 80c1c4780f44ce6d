"""Snapshots of a project: their manifest, their id, their environment and their differences.

A snapshot is a set of files, each named by its path relative to the project root and by the
sha256 of its content. Its id is the sha256 of the canonical JSON of that manifest, sorted by
path: the same files give the same id, wherever and whenever they were taken. The bytes live
in a content-addressed store (``runyard.storage.snapshots``); this module is pure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any, Self

from runyard import errors

__all__ = [
    "EXECUTABLE",
    "PLAIN",
    "Environment",
    "Snapshot",
    "SnapshotDiff",
    "SnapshotFile",
    "SnapshotSummary",
    "check_path",
    "diff",
    "environment_difference",
    "make_snapshot",
    "manifest_id",
    "pipeline_file_in",
    "size_text",
]

EXECUTABLE = 0o755  # the mode of a file with any executable bit set
PLAIN = 0o644  # the mode of every other file


def check_path(path: str) -> str:
    """Return ``path`` when it is a relative POSIX path that stays inside its root.

    Raises ``UsageError`` for an empty or absolute path, one with ``.``, ``..`` or empty
    components, or a NUL byte: such a path could write outside the folder it is copied to.
    """
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise errors.UsageError(
            f"Snapshot path {path!r} is not a relative path inside the project; a snapshot "
            "holds only paths like 'src/step.py' (no leading '/', no '.' or '..' parts)"
        )
    return path


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotFile:
    """One file of a snapshot: where it goes, what it holds, and whether it is executable."""

    path: str  # POSIX path relative to the project root
    digest: str  # sha256 of the content, lowercase hex
    size: int  # bytes
    mode: int = PLAIN  # EXECUTABLE or PLAIN

    def to_json(self) -> list[Any]:
        return [self.path, self.digest, self.size, self.mode]

    @classmethod
    def from_json(cls, value: list[Any]) -> Self:
        path, digest, size, mode = value
        return cls(str(path), str(digest), int(size), int(mode))


@dataclasses.dataclass(frozen=True, slots=True)
class Environment:
    """Where a snapshot was taken (or a run executes): the interpreter and what is installed.

    ``distributions`` maps each installed distribution's normalised name to its version.
    """

    python_version: str  # "3.11.7"
    implementation: str  # "cpython"
    platform: str  # "Linux-x86_64"
    distributions: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "python_version": self.python_version,
            "implementation": self.implementation,
            "platform": self.platform,
            "distributions": dict(sorted(self.distributions.items())),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Self:
        return cls(
            python_version=str(value["python_version"]),
            implementation=str(value["implementation"]),
            platform=str(value["platform"]),
            distributions={str(k): str(v) for k, v in dict(value["distributions"]).items()},
        )

    @property
    def summary(self) -> str:
        """One line: ``Python 3.11.7 (cpython) on Linux-x86_64, 42 distributions``."""
        return (
            f"Python {self.python_version} ({self.implementation}) on {self.platform}, "
            f"{len(self.distributions)} distributions"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable copy of a project's files, with the environment it was taken in.

    ``files`` are sorted by path and unique; ``id`` is ``manifest_id`` of the files, root
    and environment. Build one with ``make_snapshot``, which guarantees both.
    """

    id: str
    root: str  # the project directory it was taken from, as given then
    files: tuple[SnapshotFile, ...]
    total_bytes: int
    environment: Environment
    created_at: dt.datetime
    # The project's data folder relative to ``root`` (POSIX), when it is inside the project:
    # left out of the snapshot, and reached from a run's copy through a link of that name.
    data_dir: str | None = None

    @property
    def file_count(self) -> int:
        return len(self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "root": self.root,
            "data_dir": self.data_dir,
            "created_at": self.created_at.isoformat(),
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "environment": self.environment.to_json(),
            "files": [
                {"path": f.path, "digest": f.digest, "size": f.size, "mode": oct(f.mode)}
                for f in self.files
            ],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotSummary:
    """A snapshot without its file list, as lists show it."""

    id: str
    root: str
    file_count: int
    total_bytes: int
    created_at: dt.datetime


def size_text(count: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KB``, ``50.0 MB``, ``1.20 GB`` (powers of 1024)."""
    if count < 1024:
        return f"{count} B"
    if count < 1024**2:
        return f"{count / 1024:.1f} KB"
    if count < 1024**3:
        return f"{count / 1024**2:.1f} MB"
    return f"{count / 1024**3:.2f} GB"


def manifest_id(
    files: Iterable[SnapshotFile],
    *,
    root: str,
    environment: Environment,
    data_dir: str | None = None,
) -> str:
    """The sha256 (hex) of the canonical JSON of ``[root, environment, files sorted by path]``
    (with the data folder after the files when there is one).

    The same files (path, content, size, mode), taken of the same folder in the same
    environment, always give the same id, in any order and at any time. The same files
    taken elsewhere or in another environment make another snapshot (sharing the stored
    contents): a job's snapshot records where its project was and what it ran with.
    """
    manifest = [f.to_json() for f in sorted(files, key=lambda f: f.path)]
    whole: list[Any] = [root, environment.to_json(), manifest]
    if data_dir is not None:
        whole.append(data_dir)
    text = json.dumps(
        whole,
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def make_snapshot(
    *,
    root: str,
    files: Iterable[SnapshotFile],
    environment: Environment,
    created_at: dt.datetime,
    data_dir: str | None = None,
) -> Snapshot:
    """A snapshot of ``files``, sorted, with its id and total size.

    Raises ``UsageError`` when a path is unsafe (see ``check_path``), appears twice, or is
    both a file and a folder holding other files.
    """
    ordered = tuple(sorted(files, key=lambda f: f.path))
    seen: set[str] = set()
    for f in ordered:
        check_path(f.path)
        if f.path in seen:
            raise errors.UsageError(f"Snapshot path {f.path!r} appears twice; paths are unique")
        seen.add(f.path)
    folders = {
        "/".join(parts[:i]) for parts in (p.split("/") for p in seen) for i in range(1, len(parts))
    }
    clashes = sorted(folders & seen)
    if clashes:
        raise errors.UsageError(
            f"Snapshot path {clashes[0]!r} is both a file and a folder; a snapshot holds each "
            "path once"
        )
    return Snapshot(
        id=manifest_id(ordered, root=root, environment=environment, data_dir=data_dir),
        root=root,
        files=ordered,
        total_bytes=sum(f.size for f in ordered),
        environment=environment,
        created_at=created_at,
        data_dir=data_dir,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """What changed from snapshot ``a`` to snapshot ``b``, each list sorted by path."""

    added: tuple[str, ...]  # in b only
    removed: tuple[str, ...]  # in a only
    changed: tuple[str, ...]  # in both, with another content or mode

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff(a: Snapshot, b: Snapshot) -> SnapshotDiff:
    """The paths added, removed and changed (content or executable bit) from ``a`` to ``b``."""
    old = {f.path: f for f in a.files}
    new = {f.path: f for f in b.files}
    return SnapshotDiff(
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=tuple(
            sorted(
                p
                for p in old.keys() & new.keys()
                if (old[p].digest, old[p].mode) != (new[p].digest, new[p].mode)
            )
        ),
    )


def environment_difference(
    recorded: Environment, current: Environment, *, most: int = 5
) -> str | None:
    """How ``current`` differs from ``recorded``, in one line a user can read; None when
    they are the same. At most ``most`` distributions are named per kind of change.

    Example: ``Python 3.11.7 -> 3.12.1; distributions changed: numpy 1.26.4 -> 2.0.0;
    distributions added: polars 1.2.0``.
    """
    parts: list[str] = []
    if (recorded.implementation, recorded.python_version) != (
        current.implementation,
        current.python_version,
    ):
        before = f"{recorded.implementation} {recorded.python_version}"
        after = f"{current.implementation} {current.python_version}"
        if recorded.implementation == current.implementation:
            before, after = recorded.python_version, current.python_version
        parts.append(f"Python {before} -> {after}")
    if recorded.platform != current.platform:
        parts.append(f"platform {recorded.platform} -> {current.platform}")
    old, new = recorded.distributions, current.distributions

    def named(label: str, items: list[str]) -> None:
        if items:
            more = f" and {len(items) - most} more" if len(items) > most else ""
            parts.append(f"{label}: {', '.join(items[:most])}{more}")

    named(
        "distributions changed",
        [f"{n} {old[n]} -> {new[n]}" for n in sorted(old.keys() & new.keys()) if old[n] != new[n]],
    )
    named("distributions added", [f"{n} {new[n]}" for n in sorted(new.keys() - old.keys())])
    named("distributions removed", [f"{n} {old[n]}" for n in sorted(old.keys() - new.keys())])
    return "; ".join(parts) or None


def pipeline_file_in(snapshot: Snapshot, reference: str) -> str:
    """Where the pipeline file of ``reference`` (``/abs/file.py:name``) sits in ``snapshot``:
    its path relative to the snapshot's root, POSIX style.

    Raises ``LoadError`` when the file is not inside the snapshot's project or was left out
    of it (ignored, or in the data folder).
    """
    file_part, _, _ = reference.partition(":")
    path = pathlib.PurePath(file_part)
    try:
        relative = path.relative_to(snapshot.root).as_posix()
    except ValueError:
        raise errors.LoadError(
            f"Pipeline file {file_part} is not inside project {snapshot.root}, the folder "
            f"snapshot {snapshot.id[:12]} was taken of"
        ) from None
    if not any(f.path == relative for f in snapshot.files):
        raise errors.LoadError(
            f"Pipeline file {relative} is not in snapshot {snapshot.id[:12]} of project "
            f"{snapshot.root}: .gitignore leaves it out, or it is in the data folder; "
            "un-ignore it or move it"
        )
    return relative
