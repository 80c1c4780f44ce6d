"""Sub jobs: a step makes jobs of its own, waits for them, and they are recorded as its
job's children."""

from __future__ import annotations

import pathlib
import textwrap
import threading

import pytest

from runyard import errors
from runyard.api import server
from runyard.app import service
from runyard.client import Client, ClientError, Job
from runyard.core import states
from runyard.worker import engine

FAN_OUT = """
import runyard


@runyard.step(version="1")
def square(*, x: int = 0) -> int:
    return x * x


@runyard.step(version="1")
def fan_out(*, n: int = 3) -> list:
    children = [runyard.create_subjob("square", parameters={"x": k}) for k in range(n)]
    done = runyard.wait_for_subjobs(children, timeout=60)
    return [[s.id, str(s.state)] for s in done]
"""


def test_a_step_makes_sub_jobs_waits_for_them_and_they_are_its_jobs_children(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "fan.py").write_text(textwrap.dedent(FAN_OUT))
    app.register_file(project / "fan.py")
    parent = app.create_job_from("fan_out", parameters={"n": 3}, start=True)

    working = app.worker(kind="worker", options=engine.WorkerOptions(slots=3, poll=0.02))
    thread = threading.Thread(target=working.run, daemon=True)
    thread.start()
    try:
        assert app.wait_job(parent.id, timeout=60).state is states.JobState.SUCCESS
    finally:
        working.shut_down()
        thread.join(30)

    (run,) = app.list_runs(parent.id)
    reported = app.output(run.id, "fan_out")
    children = app.list_jobs(parent=parent.id)
    assert sorted(c.id for c in children) == sorted(job_id for job_id, _ in reported)
    assert all(state == "SUCCESS" for _, state in reported)
    for child in children:
        assert (child.job.parent_job_id, child.job.parent_run_id) == (parent.id, run.id)
        assert child.job.snapshot_id == parent.job.snapshot_id
    assert sorted(app.result(c.id) for c in children) == [0, 1, 4]

    with pytest.raises(errors.ConflictError, match="has sub jobs"):
        app.delete_job(parent.id)
    api = server.ApiServer(app, host="127.0.0.1", port=0, auth=False)
    api.start()
    try:
        with Client(api.url) as client:
            job = Job(client, parent.id)
            assert sorted(j.id for j in job.sub_jobs()) == sorted(c.id for c in children)
            assert all(j.data["parent_job_id"] == parent.id for j in job.sub_jobs())
            with pytest.raises(ClientError) as refused:
                job.delete()
            assert refused.value.status == 409
            job.delete(delete_subjobs=True)
    finally:
        api.stop()
    assert app.list_jobs() == []


def test_sub_jobs_can_only_be_made_by_a_step_of_a_job(app: service.Runyard) -> None:
    import runyard

    with pytest.raises(errors.OutsideStepError):
        runyard.create_subjob("square")
