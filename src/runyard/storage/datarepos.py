"""SQL for data repos: repos, branches, immutable commits and the files of each commit.

A new commit starts as a copy of its parent's file rows (one ``INSERT ... SELECT``), then
takes the changed paths; so a commit that changes one file of 10,000 costs one statement
for the copy and one row for the change. The branch's head moves in the same transaction,
after its row was locked, so two commits to one branch never share a parent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runyard import errors
from runyard.core import datarepos

__all__ = [
    "branches",
    "commit",
    "create_repo",
    "delete_repo",
    "files",
    "find_commit",
    "list_commits",
    "list_repos",
    "read_repo",
]

from runyard.storage import schema

_R = schema.data_repos.c
_B = schema.data_branches.c
_C = schema.data_commits.c
_F = schema.data_files.c


def create_repo(conn: sa.Connection, repo: datarepos.Repo, *, branch: str = "master") -> None:
    """Store a repo with an empty ``branch``; raises ``ConflictError`` when the name is
    taken."""
    if conn.execute(sa.select(_R.name).where(_R.name == repo.name)).first() is not None:
        raise errors.ConflictError(
            f"Repo {repo.name!r} exists already; pick another name, or delete it first "
            f"(runyard repo delete {repo.name})"
        )
    conn.execute(
        schema.data_repos.insert().values(
            name=repo.name,
            description=repo.description,
            created_at=repo.created_at,
            pipeline=repo.pipeline,
        )
    )
    conn.execute(schema.data_branches.insert().values(repo=repo.name, name=branch, head=None))


def read_repo(conn: sa.Connection, name: str) -> datarepos.Repo:
    row = conn.execute(sa.select(schema.data_repos).where(_R.name == name)).first()
    if row is None:
        known = conn.execute(sa.select(_R.name)).scalars().all()
        raise errors.NotFoundError(
            f"No repo {name!r}{errors.did_you_mean(name, known)}; make one with "
            "`runyard repo create NAME`"
        )
    return _repo(row)


def list_repos(conn: sa.Connection) -> list[tuple[datarepos.Repo, int, int]]:
    """Every repo by name, with its master head's size and file count (0 when empty)."""
    rows = conn.execute(sa.select(schema.data_repos).order_by(_R.name)).all()
    heads = conn.execute(
        sa.select(_B.repo, _C.size, _C.file_count)
        .join(schema.data_commits, sa.and_(_C.repo == _B.repo, _C.id == _B.head))
        .where(_B.name == "master")
    ).all()
    sizes = {h.repo: (h.size, h.file_count) for h in heads}
    return [(_repo(r), *sizes.get(r.name, (0, 0))) for r in rows]


def delete_repo(conn: sa.Connection, name: str) -> None:
    """Delete a repo with its branches, commits and file rows (not the blobs: other
    commits and snapshots may share them)."""
    read_repo(conn, name)
    for table in (schema.data_files, schema.data_commits, schema.data_branches):
        conn.execute(table.delete().where(table.c.repo == name))
    conn.execute(schema.data_repos.delete().where(_R.name == name))


def branches(conn: sa.Connection, repo: str) -> list[datarepos.Branch]:
    rows = conn.execute(
        sa.select(schema.data_branches).where(_B.repo == repo).order_by(_B.name)
    ).all()
    return [datarepos.Branch(r.repo, r.name, r.head) for r in rows]


def commit(
    conn: sa.Connection,
    *,
    repo: str,
    branch: str,
    commit_id: str,
    changes: Mapping[str, datarepos.FileEntry | None],
    origin: datarepos.CommitOrigin,
    at: dt.datetime,
    description: str = "",
    replace: bool = False,
    deleted_folders: Sequence[str] = (),
) -> datarepos.Commit:
    """Make a commit on ``branch`` (made when missing) on top of its head: the head's files
    (none with ``replace``) less those under ``deleted_folders``, with ``changes`` applied
    (a path to None deletes it). Moves the branch's head to it. Raises ``NotFoundError`` for
    a missing repo, ``ConflictError`` when the id is taken in this repo."""
    read_repo(conn, repo)
    locked = sa.select(_B.head).where(_B.repo == repo, _B.name == branch)
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update()
    found = conn.execute(locked).first()
    if found is None:
        conn.execute(schema.data_branches.insert().values(repo=repo, name=branch, head=None))
        parent = None
    else:
        parent = found.head
    taken = conn.execute(sa.select(_C.id).where(_C.repo == repo, _C.id == commit_id)).first()
    if taken is not None:
        raise errors.ConflictError(f"Repo {repo!r} has a commit {commit_id} already")
    conn.execute(
        schema.data_commits.insert().values(
            repo=repo,
            id=commit_id,
            branch=branch,
            parent=parent,
            origin=str(origin),
            created_at=at,
            file_count=0,
            size=0,
            description=description,
        )
    )
    if parent is not None and replace:
        # The new file set as the parent's less what changed: copying rows in SQL costs far
        # less than inserting them, and an output commit mostly repeats its parent.
        old = {e.path: e for e in files(conn, repo, parent)}
        given = {p: e for p, e in changes.items() if e is not None}
        gone: dict[str, datarepos.FileEntry | None] = {p: None for p in old if p not in given}
        changes = gone | {p: e for p, e in given.items() if old.get(p) != e}
        replace = False
    if parent is not None and not replace:
        conn.execute(
            schema.data_files.insert().from_select(
                ["repo", "commit_id", "path", "digest", "size"],
                sa.select(_F.repo, sa.literal(commit_id), _F.path, _F.digest, _F.size).where(
                    _F.repo == repo, _F.commit_id == parent
                ),
            )
        )
        mine = sa.and_(_F.repo == repo, _F.commit_id == commit_id)
        for folder in deleted_folders:
            if folder == "/":
                conn.execute(schema.data_files.delete().where(mine))
            else:
                conn.execute(schema.data_files.delete().where(mine, _in_folder(folder)))
        paths = list(changes)
        for chunk in _chunks(paths):
            conn.execute(schema.data_files.delete().where(mine, _F.path.in_(chunk)))
    rows = [
        {"repo": repo, "commit_id": commit_id, "path": e.path, "digest": e.digest, "size": e.size}
        for e in changes.values()
        if e is not None
    ]
    if rows:
        conn.execute(schema.data_files.insert(), rows)
    count, size = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(_F.size), 0)).where(
            _F.repo == repo, _F.commit_id == commit_id
        )
    ).one()
    conn.execute(
        schema.data_commits.update()
        .where(_C.repo == repo, _C.id == commit_id)
        .values(file_count=count, size=size)
    )
    conn.execute(
        schema.data_branches.update()
        .where(_B.repo == repo, _B.name == branch)
        .values(head=commit_id)
    )
    return datarepos.Commit(
        repo, commit_id, branch, parent, origin, at, int(count), int(size), description
    )


def find_commit(conn: sa.Connection, repo: str, ref: str | None) -> datarepos.Commit:
    """The commit ``ref`` names in ``repo``: a branch's head (default ``master``), or a
    commit id or unique prefix of one. Raises ``NotFoundError`` saying what exists."""
    read_repo(conn, repo)
    ref = ref or "master"
    head = conn.execute(sa.select(_B.head).where(_B.repo == repo, _B.name == ref)).first()
    if head is not None:
        if head.head is None:
            raise errors.NotFoundError(
                f"Branch {repo}@{ref} has no commit yet; put a file first "
                f"(runyard put file {repo}@{ref}:/path -f FILE)"
            )
        ref = head.head
    rows = conn.execute(
        sa.select(schema.data_commits)
        .where(_C.repo == repo, _C.id.startswith(ref, autoescape=True))
        .order_by(_C.id)
        .limit(3)
    ).all()
    exact = [r for r in rows if r.id == ref]
    if exact:
        return _commit(exact[0])
    if not rows:
        names = [b.name for b in branches(conn, repo)]
        raise errors.NotFoundError(
            f"Repo {repo!r} has no branch or commit {ref!r}; its branches: "
            f"{', '.join(names) or 'none'} (list commits with `runyard list commit {repo}`)"
        )
    if len(rows) > 1:
        raise errors.NotFoundError(
            f"Commit id {ref!r} is ambiguous in repo {repo!r}; give more of it"
        )
    return _commit(rows[0])


def list_commits(
    conn: sa.Connection,
    repo: str,
    branch: str | None = None,
    *,
    limit: int = 1000,
    offset: int = 0,
) -> list[datarepos.Commit]:
    """A repo's commits (of one branch), newest first, ``offset`` of them left out."""
    read_repo(conn, repo)
    query = (
        sa.select(schema.data_commits)
        .where(_C.repo == repo)
        .order_by(_C.created_at.desc(), _C.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if branch is not None:
        names = [b.name for b in branches(conn, repo)]
        if branch not in names:
            raise errors.NotFoundError(
                f"Repo {repo!r} has no branch {branch!r}{errors.did_you_mean(branch, names)}"
            )
        query = query.where(_C.branch == branch)
    return [_commit(r) for r in conn.execute(query).all()]


def files(
    conn: sa.Connection, repo: str, commit_id: str, folder: str = "/"
) -> list[datarepos.FileEntry]:
    """The files of a commit under ``folder`` (normalized), by path."""
    query = (
        sa.select(_F.path, _F.digest, _F.size)
        .where(_F.repo == repo, _F.commit_id == commit_id)
        .order_by(_F.path)
    )
    if folder != "/":
        query = query.where(_in_folder(folder))
    # One fetch of every row: iterating fetches row by row, each through the fork guard.
    rows = conn.execute(query).all()
    return [datarepos.FileEntry(r.path, r.digest, r.size) for r in rows]


def _in_folder(folder: str) -> sa.ColumnElement[bool]:
    """Paths that are ``folder`` or inside it, compared exactly (LIKE ignores case on
    SQLite and a collation may reorder on PostgreSQL)."""
    prefix = folder + "/"
    return sa.or_(_F.path == folder, sa.func.substr(_F.path, 1, len(prefix)) == prefix)


def _repo(row: sa.Row[Any]) -> datarepos.Repo:
    return datarepos.Repo(row.name, row.description, row.created_at, row.pipeline)


def _commit(row: sa.Row[Any]) -> datarepos.Commit:
    return datarepos.Commit(
        repo=row.repo,
        id=row.id,
        branch=row.branch,
        parent=row.parent,
        origin=datarepos.CommitOrigin(row.origin),
        created_at=row.created_at,
        file_count=row.file_count,
        size=row.size,
        description=row.description,
    )


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
