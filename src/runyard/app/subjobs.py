"""Sub jobs: jobs a step makes while it runs, recorded as its job's children, and waited for.

Inside a step of a run executed by runyard::

    children = [runyard.create_subjob("score", parameters={"fold": k}) for k in range(5)]
    done = runyard.wait_for_subjobs(children, timeout=600)

A sub job runs on the engines like any job. The step that waits holds its run's slot
meanwhile: give the engines more slots than the runs that wait at once, or the sub jobs
wait for a slot that never frees.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runyard import errors
from runyard.app import runtime
from runyard.core import records, states
from runyard.execution import context

__all__ = ["create_subjob", "wait_for_subjobs"]


def create_subjob(
    processing: str,
    version: str | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    grid: Mapping[str, Any] | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
    start: bool = True,
) -> str:
    """Make (and with ``start`` queue) a job of the registered processing step
    ``processing`` as a sub job of the running step's job; returns its id.

    Raises ``OutsideStepError`` outside a step of a run, and what ``create_job`` raises
    for bad parameters (nothing is made then).
    """
    ctx = context.current()
    if ctx.run_id is None:
        raise errors.OutsideStepError(
            "Sub jobs are made by steps of a job's runs; this step runs outside any job "
            "(Pipeline.run): create a job instead"
        )
    ryard = runtime.connection()
    parent = ryard.get_run(ctx.run_id)
    made = ryard.create_job_from(
        processing,
        version,
        start=start,
        parameters=parameters,
        grid=grid,
        name=name,
        tags=tags,
        parent_run=parent,
    )
    return made.id


def wait_for_subjobs(
    job_ids: Sequence[str], *, timeout: float | None = None, poll: float = 0.2
) -> list[records.JobSummary]:
    """Wait until every job in ``job_ids`` has finished; returns them as they ended.

    Raises ``TimeoutError`` naming those still going after ``timeout`` seconds.
    """
    ryard = runtime.connection()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = [ryard.get_job(job_id) for job_id in job_ids]
        going = [s.id for s in found if s.state not in _ENDED]
        if not going:
            return found
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"Sub jobs {', '.join(going)} are still going after {timeout:g} s")
        time.sleep(poll)


_ENDED = (states.JobState.SUCCESS, states.JobState.FAILURE, states.JobState.KILLED)
