"""The metadata store's data repo and data pipeline side: each call one transaction.

``Store.data`` hands it out; the SQL is in ``storage.datarepos`` and ``storage.datajobs``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from runyard.core import datapipelines as dp
from runyard.core import datarepos, records
from runyard.storage import datajobs as jobs_sql
from runyard.storage import datarepos as repos_sql

if TYPE_CHECKING:
    from runyard.storage import store as store_mod

__all__ = ["DataStore"]


class DataStore:
    """Repos, branches, commits, files; data pipelines, data jobs and datums."""

    def __init__(self, store: store_mod.Store) -> None:
        self._store = store

    # -- repos ----------------------------------------------------------------------------

    def create_repo(self, repo: datarepos.Repo) -> None:
        with self._store._write() as conn:
            repos_sql.create_repo(conn, repo)

    def get_repo(self, name: str) -> datarepos.Repo:
        with self._store._read() as conn:
            return repos_sql.read_repo(conn, name)

    def list_repos(self) -> list[tuple[datarepos.Repo, int, int]]:
        with self._store._read() as conn:
            return repos_sql.list_repos(conn)

    def delete_repo(self, name: str) -> None:
        with self._store._write() as conn:
            repos_sql.delete_repo(conn, name)

    def branches(self, repo: str) -> list[datarepos.Branch]:
        with self._store._read() as conn:
            repos_sql.read_repo(conn, repo)
            return repos_sql.branches(conn, repo)

    def commit(
        self,
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
        jobs: Sequence[tuple[dp.DataJob, dp.Pipeline]] = (),
        job_update: tuple[str, str, dict[str, object]] | None = None,
    ) -> datarepos.Commit:
        """Make a commit (see ``storage.datarepos.commit``); the data ``jobs`` it triggers
        and ``job_update`` (pipeline, job id, fields) are written in the same transaction."""
        with self._store._write() as conn:
            made = repos_sql.commit(
                conn,
                repo=repo,
                branch=branch,
                commit_id=commit_id,
                changes=changes,
                origin=origin,
                at=at,
                description=description,
                replace=replace,
                deleted_folders=deleted_folders,
            )
            jobs_sql.create_jobs(conn, jobs)
            if job_update is not None:
                jobs_sql.update_job(conn, job_update[0], job_update[1], **job_update[2])
            return made

    def find_commit(self, repo: str, ref: str | None) -> datarepos.Commit:
        with self._store._read() as conn:
            return repos_sql.find_commit(conn, repo, ref)

    def list_commits(
        self, repo: str, branch: str | None = None, *, limit: int = 1000, offset: int = 0
    ) -> list[datarepos.Commit]:
        with self._store._read() as conn:
            return repos_sql.list_commits(conn, repo, branch, limit=limit, offset=offset)

    def files(self, repo: str, commit_id: str, folder: str = "/") -> list[datarepos.FileEntry]:
        with self._store._read() as conn:
            return repos_sql.files(conn, repo, commit_id, folder)

    # -- pipelines ------------------------------------------------------------------------

    def create_pipeline(
        self, pipeline: dp.Pipeline, jobs: Sequence[tuple[dp.DataJob, dp.Pipeline]] = ()
    ) -> None:
        with self._store._write() as conn:
            jobs_sql.insert_pipeline(conn, pipeline)
            jobs_sql.create_jobs(conn, jobs)

    def update_pipeline(
        self, pipeline: dp.Pipeline, jobs: Sequence[tuple[dp.DataJob, dp.Pipeline]] = ()
    ) -> None:
        with self._store._write() as conn:
            jobs_sql.get_pipeline(conn, pipeline.name)
            jobs_sql.update_pipeline(conn, pipeline)
            jobs_sql.create_jobs(conn, jobs)

    def get_pipeline(self, name: str) -> dp.Pipeline:
        with self._store._read() as conn:
            return jobs_sql.get_pipeline(conn, name)

    def list_pipelines(self) -> list[dp.Pipeline]:
        with self._store._read() as conn:
            return jobs_sql.list_pipelines(conn)

    def delete_pipeline(self, name: str) -> None:
        with self._store._write() as conn:
            jobs_sql.delete_pipeline(conn, name)

    # -- data jobs ------------------------------------------------------------------------

    def get_job(self, pipeline: str, job_id: str) -> dp.DataJob:
        with self._store._read() as conn:
            jobs_sql.get_pipeline(conn, pipeline)
            return jobs_sql.read_job(conn, pipeline, job_id)

    def job_spec(self, pipeline: str, job_id: str) -> tuple[dp.PipelineSpec, str]:
        with self._store._read() as conn:
            return jobs_sql.job_spec(conn, pipeline, job_id)

    def list_jobs(
        self,
        *,
        job_id: str | None = None,
        pipeline: str | None = None,
        states: Iterable[dp.DataJobState] = (),
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dp.DataJob]:
        with self._store._read() as conn:
            if pipeline is not None:
                jobs_sql.get_pipeline(conn, pipeline)
            return jobs_sql.list_jobs(
                conn, job_id=job_id, pipeline=pipeline, states=states, limit=limit, offset=offset
            )

    def claim_job(
        self, *, worker: str, at: dt.datetime, job_id: str | None = None
    ) -> dp.DataJob | None:
        # Looked for in a read first: an idle engine polls, and on SQLite a write
        # transaction would take the database's write lock every time.
        with self._store._read() as conn:
            if not jobs_sql.list_jobs(
                conn, job_id=job_id, states=[dp.DataJobState.CREATED], limit=1
            ):
                return None
        with self._store._write() as conn:
            return jobs_sql.claim(conn, worker=worker, at=at, job_id=job_id)

    def move_job(
        self,
        job: dp.DataJob,
        new: dp.DataJobState,
        *,
        at: dt.datetime,
        reason: str | None = None,
        **fields: object,
    ) -> dp.DataJob | None:
        with self._store._write() as conn:
            return jobs_sql.move(conn, job, new, at=at, reason=reason, **fields)

    def transitions(self, pipeline: str, job_id: str) -> list[records.Event]:
        """The job's state changes (``data_job_state`` events), oldest first."""
        with self._store._read() as conn:
            return jobs_sql.transitions(conn, pipeline, job_id)

    def update_job(self, pipeline: str, job_id: str, **fields: object) -> None:
        with self._store._write() as conn:
            jobs_sql.update_job(conn, pipeline, job_id, **fields)

    def recover_lost_jobs(self, *, at: dt.datetime, lease: float) -> list[dp.DataJob]:
        with self._store._read() as conn:
            if not jobs_sql.list_jobs(conn, states=dp.ACTIVE, limit=1):
                return []
        with self._store._write() as conn:
            return jobs_sql.recover_lost(conn, at=at, lease=lease)

    def request_stop(self, job: dp.DataJob, *, at: dt.datetime) -> bool:
        with self._store._write() as conn:
            return jobs_sql.request_stop(conn, job, at=at)

    # -- datums ---------------------------------------------------------------------------

    def add_datums(
        self,
        datums: Sequence[dp.DatumRecord],
        *,
        counts: tuple[str, str, dict[str, object]],
        at: dt.datetime | None = None,
    ) -> None:
        """Record datums and the job's new counters (pipeline, job id, fields) together;
        with ``at``, a ``data_job_progress`` event too (what live pages follow)."""
        with self._store._write() as conn:
            jobs_sql.add_datums(conn, datums)
            jobs_sql.update_job(conn, counts[0], counts[1], **counts[2])
            if at is not None:
                jobs_sql.progress_event(conn, counts[0], counts[1], at=at)

    def reusable(
        self, pipeline: str, datum_ids: Sequence[str]
    ) -> dict[str, tuple[datarepos.FileEntry, ...]]:
        with self._store._read() as conn:
            return jobs_sql.reusable(conn, pipeline, datum_ids)

    def list_datums(self, pipeline: str, job_id: str) -> list[dp.DatumRecord]:
        with self._store._read() as conn:
            return jobs_sql.list_datums(conn, pipeline, job_id)

    def page_datums(
        self, pipeline: str, job_id: str, *, limit: int, offset: int = 0
    ) -> tuple[list[dp.DatumRecord], dict[dp.DatumState, int]]:
        with self._store._read() as conn:
            return jobs_sql.page_datums(conn, pipeline, job_id, limit=limit, offset=offset)

    def find_datum(self, datum_id: str, job_id: str | None = None) -> dp.DatumRecord:
        with self._store._read() as conn:
            return jobs_sql.find_datum(conn, datum_id, job_id)
