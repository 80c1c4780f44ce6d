"""WorkData in steps: keep a file a step wrote, and open one a job was given.

Inside a step of a job's run::

    frame.to_csv("scores.csv")
    runyard.save_workdata("scores.csv", media_type="text/csv")   # -> its id
    with runyard.open_workdata(runyard.get_step_param("table")) as fh:  # an input's id
        ...

A saved file is recorded as written by the step's job, run and step; the job is then not
deleted without its outputs.
"""

from __future__ import annotations

import mimetypes
import os
import pathlib
from typing import BinaryIO

from runyard import errors
from runyard.app import runtime
from runyard.execution import context

__all__ = ["open_workdata", "save_workdata"]

_CHUNK = 1 << 20


def save_workdata(
    path: str | os.PathLike[str], *, name: str | None = None, media_type: str | None = None
) -> str:
    """Keep the file at ``path`` (relative to the run's working copy) as WorkData written
    by the running step; returns its id. The media type is guessed from the name when not
    given. Raises ``OutsideStepError`` outside a step of a job's run, ``UsageError`` for a
    path that is not a file."""
    ctx = context.current()
    if ctx.run_id is None or ctx.job_id is None:
        raise errors.OutsideStepError(
            "WorkData is kept for steps of a job's runs; this step runs outside any job"
        )
    file = pathlib.Path(path)
    if not file.is_file():
        raise errors.UsageError(f"WorkData {str(path)!r} is not a file the step wrote")
    name = name or file.name
    media_type = media_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    with file.open("rb") as fh:
        data = runtime.connection().upload_workdata(
            name,
            iter(lambda: fh.read(_CHUNK), b""),
            media_type=media_type,
            producer=(ctx.job_id, ctx.run_id, ctx.step_name),
        )
    return data.id


def open_workdata(workdata_id: str) -> BinaryIO:
    """A WorkData's content, for reading (an input uploaded for the job, or a file another
    step kept). Raises ``NotFoundError``."""
    return runtime.connection().open_workdata(workdata_id)
