"""``/api/v1/workdata``: files kept for jobs: upload, download, list, lineage, delete."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Annotated

import fastapi
import fastapi.responses
from starlette.concurrency import run_in_threadpool

from runyard.api import deps, schemas
from runyard.app import service

__all__ = ["router"]

_READ = deps.READ
_WRITE = deps.WRITE
_CHUNK = 1 << 20
Ryard = deps.Ryard

router = fastapi.APIRouter(prefix="/api/v1", responses=deps.ERRORS, tags=["workdata"])


@router.post(
    "/workdata",
    dependencies=_WRITE,
    response_model=schemas.WorkDataOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "required": False,  # no body: an empty file
        }
    },
)
async def upload(
    request: fastapi.Request,
    name: Annotated[str, fastapi.Query(min_length=1, max_length=300)],
    media_type: Annotated[str, fastapi.Query(min_length=3, max_length=200)] = (
        "application/octet-stream"
    ),
) -> schemas.WorkDataOut:
    """Upload a file (the request body) as WorkData, to give jobs as an input."""
    ryard: service.Runyard = request.app.state.runyard
    with tempfile.SpooledTemporaryFile(max_size=16 * _CHUNK) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        data = await run_in_threadpool(
            ryard.upload_workdata,
            name,
            iter(lambda: spool.read(_CHUNK), b""),
            media_type=media_type,
        )
    return schemas.WorkDataOut.of(data)


@router.get("/workdata", dependencies=_READ, response_model=list[schemas.WorkDataOut])
def list_workdata(
    ryard: Ryard,
    producer_job_id: Annotated[str | None, fastapi.Query(max_length=64)] = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=10_000)] = 1000,
) -> list[schemas.WorkDataOut]:
    """WorkData newest first, of one producing job if given."""
    found = ryard.list_workdata(producer_job_id=producer_job_id, limit=limit)
    return [schemas.WorkDataOut.of(d) for d in found]


@router.get("/workdata/{workdata_id}", dependencies=_READ, response_model=schemas.WorkDataOut)
def get_workdata(ryard: Ryard, workdata_id: str) -> schemas.WorkDataOut:
    """One WorkData: who made it, which jobs read it."""
    return schemas.WorkDataOut.of(ryard.workdata(workdata_id))


@router.get(
    "/workdata/{workdata_id}/content",
    dependencies=_READ,
    response_class=fastapi.responses.StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
def download(ryard: Ryard, workdata_id: str) -> fastapi.responses.StreamingResponse:
    """A WorkData's content."""
    data = ryard.workdata(workdata_id)
    opened = ryard.open_workdata(data.id)

    def chunks() -> Iterator[bytes]:
        with opened:
            while chunk := opened.read(_CHUNK):
                yield chunk

    return fastapi.responses.StreamingResponse(
        chunks(),
        media_type=data.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{data.name}"',
            "Content-Length": str(data.size),
        },
    )


@router.delete("/workdata/{workdata_id}", dependencies=_WRITE, status_code=204)
def delete(ryard: Ryard, workdata_id: str) -> fastapi.Response:
    """Delete a WorkData for good; 409 naming the jobs that read it."""
    ryard.delete_workdata(workdata_id)
    return fastapi.Response(status_code=204)


@router.get("/jobs/{job_id}/workdata", dependencies=_READ, response_model=schemas.JobWorkDataOut)
def job_workdata(ryard: Ryard, job_id: str) -> schemas.JobWorkDataOut:
    """What a job reads and what its steps wrote."""
    job = ryard.get_job(job_id)
    inputs = ryard.inputs_of(job.id)
    outputs = ryard.list_workdata(producer_job_id=job.id)
    return schemas.JobWorkDataOut(
        inputs=[schemas.WorkDataOut.of(d) for d in inputs],
        outputs=[schemas.WorkDataOut.of(d) for d in outputs],
    )
