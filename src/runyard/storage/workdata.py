"""SQL for WorkData: files kept for jobs, who made them and which jobs read them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runyard import errors
from runyard.core import records
from runyard.storage import schema

__all__ = ["delete", "find", "insert", "outputs_of", "read", "reads_of", "record_reads"]

_W = schema.workdata.c
_R = schema.workdata_reads.c


def insert(conn: sa.Connection, data: records.WorkData) -> None:
    conn.execute(
        schema.workdata.insert().values(
            id=data.id,
            name=data.name,
            size=data.size,
            digest=data.digest,
            media_type=data.media_type,
            uri=data.uri,
            created_at=data.created_at,
            producer_job_id=data.producer_job_id,
            producer_run_id=data.producer_run_id,
            producer_step=data.producer_step,
        )
    )


def read(conn: sa.Connection, workdata_id: str) -> records.WorkData:
    """One WorkData with the jobs that read it; raises ``NotFoundError``."""
    row = conn.execute(sa.select(schema.workdata).where(_W.id == workdata_id)).first()
    if row is None:
        raise errors.NotFoundError(f"No WorkData {workdata_id!r}")
    return _workdata(row, _readers(conn, [row.id]).get(row.id, ()))


def find(
    conn: sa.Connection, *, producer_job_id: str | None = None, limit: int = 1000
) -> list[records.WorkData]:
    """WorkData newest first, of one producing job if given."""
    query = sa.select(schema.workdata).order_by(_W.created_at.desc(), _W.id.desc()).limit(limit)
    if producer_job_id is not None:
        query = query.where(_W.producer_job_id == producer_job_id)
    rows = conn.execute(query).all()
    readers = _readers(conn, [r.id for r in rows])
    return [_workdata(r, readers.get(r.id, ())) for r in rows]


def record_reads(conn: sa.Connection, job_id: str, workdata_ids: Sequence[str]) -> None:
    """Record that ``job_id`` takes these WorkData as inputs; raises ``NotFoundError``
    naming the ids that do not exist."""
    wanted = list(dict.fromkeys(workdata_ids))
    if not wanted:
        return
    found = set(conn.execute(sa.select(_W.id).where(_W.id.in_(wanted))).scalars())
    missing = [w for w in wanted if w not in found]
    if missing:
        raise errors.NotFoundError(f"No WorkData {', '.join(missing)}; upload it first")
    conn.execute(
        schema.workdata_reads.insert(), [{"workdata_id": w, "job_id": job_id} for w in wanted]
    )


def reads_of(conn: sa.Connection, job_id: str) -> list[str]:
    """The WorkData a job takes as inputs."""
    return list(conn.execute(sa.select(_R.workdata_id).where(_R.job_id == job_id)).scalars())


def outputs_of(conn: sa.Connection, job_id: str) -> list[str]:
    """The WorkData a job's steps wrote."""
    return list(
        conn.execute(sa.select(_W.id).where(_W.producer_job_id == job_id).order_by(_W.id)).scalars()
    )


def delete(
    conn: sa.Connection, workdata_ids: Sequence[str], *, but_job: str | None = None
) -> list[str]:
    """Delete WorkData records; returns their content URIs. Raises ``ConflictError``
    naming the jobs that read one (other than ``but_job``, being deleted with it)."""
    if not workdata_ids:
        return []
    readers = conn.execute(
        sa.select(_R.workdata_id, _R.job_id).where(_R.workdata_id.in_(list(workdata_ids)))
    ).all()
    blocking = sorted({f"{w} (read by job {j})" for w, j in readers if j != but_job})
    if blocking:
        raise errors.ConflictError(
            f"WorkData in use as an input: {', '.join(blocking)}; delete those jobs first"
        )
    uris = list(conn.execute(sa.select(_W.uri).where(_W.id.in_(list(workdata_ids)))).scalars())
    conn.execute(schema.workdata.delete().where(_W.id.in_(list(workdata_ids))))
    return uris


def _readers(conn: sa.Connection, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    if ids:
        query = sa.select(_R.workdata_id, _R.job_id).where(_R.workdata_id.in_(list(ids)))
        for workdata_id, job_id in conn.execute(query.order_by(_R.job_id)):
            out.setdefault(workdata_id, []).append(job_id)
    return {k: tuple(v) for k, v in out.items()}


def _workdata(row: Any, read_by: tuple[str, ...]) -> records.WorkData:
    return records.WorkData(
        id=row.id,
        name=row.name,
        size=row.size,
        digest=row.digest,
        media_type=row.media_type,
        uri=row.uri,
        created_at=row.created_at,
        producer_job_id=row.producer_job_id,
        producer_run_id=row.producer_run_id,
        producer_step=row.producer_step,
        read_by=read_by,
    )
