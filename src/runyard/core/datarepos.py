"""Data repos: versioned file sets with branches and immutable commits (pure records).

A repo holds branches; a branch names its head commit; a commit is an immutable set of files
(path -> content digest and size) with the commit it was made on top of (its parent) and how
it came to be (its origin: a user's put, or a pipeline's output). Paths inside a repo are
absolute POSIX paths (``/dir/file.csv``) and can never leave the repo: ``..``, NUL and
backslashes are refused, doubled and trailing slashes dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from typing import Any

from runyard import errors

__all__ = [
    "Branch",
    "Commit",
    "CommitOrigin",
    "FileEntry",
    "Repo",
    "Target",
    "check_name",
    "normalize_path",
    "parse_target",
    "under",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class CommitOrigin(enum.StrEnum):
    """How a commit came to be."""

    USER = "USER"  # files put by a user (or the Python API)
    AUTO = "AUTO"  # a pipeline's data job wrote its output


@dataclasses.dataclass(frozen=True, slots=True)
class Repo:
    name: str
    description: str
    created_at: dt.datetime
    pipeline: str | None = None  # the pipeline whose output repo this is

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "pipeline": self.pipeline,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Branch:
    repo: str
    name: str
    head: str | None  # a commit id; None: nothing committed yet


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a commit: where it is, the sha256 of its content, its size."""

    path: str
    digest: str
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class Commit:
    repo: str
    id: str
    branch: str
    parent: str | None
    origin: CommitOrigin
    created_at: dt.datetime
    file_count: int
    size: int
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "id": self.id,
            "branch": self.branch,
            "parent": self.parent,
            "origin": str(self.origin),
            "created_at": self.created_at.isoformat(),
            "file_count": self.file_count,
            "size_bytes": self.size,
            "description": self.description,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """``REPO@REF:/path``: a repo, a branch name or commit id (None: ``master``), a path."""

    repo: str
    ref: str | None
    path: str

    @property
    def branch_or_default(self) -> str:
        return self.ref or "master"

    def __str__(self) -> str:
        return f"{self.repo}@{self.branch_or_default}:{self.path}"


def check_name(name: str, noun: str = "Repo") -> str:
    """``name`` when it is a valid repo, branch or pipeline name; else ``UsageError``."""
    if not _NAME.match(name or ""):
        raise errors.UsageError(
            f"{noun} name {name!r} is not valid; use 1-63 letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    return name


def normalize_path(path: str) -> str:
    """``path`` as an absolute path inside a repo (``/`` for its root).

    Raises ``UsageError`` for a path that would leave the repo (``..``), or holds NUL or a
    backslash.
    """
    if "\x00" in path or "\\" in path:
        raise errors.UsageError(
            f"Path {path!r} holds a NUL or backslash; use '/' between folder names"
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise errors.UsageError(
            f"Path {path!r} leads outside the repo ('..' is not allowed); give a path from "
            "the repo's root, like /dir/file.csv"
        )
    return "/" + "/".join(parts)


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it (both normalized)."""
    return folder == "/" or path == folder or path.startswith(folder + "/")


def parse_target(text: str, *, need_path: bool = False) -> Target:
    """Parse ``REPO``, ``REPO@REF`` or ``REPO@REF:/path``; raises ``UsageError``.

    ``REF`` is a branch name or a commit id; without it the branch is ``master``.
    """
    repo_ref, colon, path = text.partition(":")
    repo, at, ref = repo_ref.partition("@")
    if at and not ref:
        raise errors.UsageError(f"{text!r} names no branch or commit after '@'; e.g. images@master")
    if need_path and not colon:
        raise errors.UsageError(
            f"{text!r} names no path; give REPO@BRANCH:/path, e.g. images@master:/a.png"
        )
    check_name(repo)
    if ref:
        check_name(ref, "Branch")
    return Target(repo, ref or None, normalize_path(path) if colon else "/")
