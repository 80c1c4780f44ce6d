"""The Python client against a real server and a real worker."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator

import pytest

from runyard.api import server
from runyard.app import service
from runyard.client import Client, ClientError, Job, JobTimeoutError
from runyard.core import states, tokens
from runyard.worker import engine

ADDER = (
    "import runyard\n\n\n@runyard.step(version='1')\n"
    "def add(*, x: int, y: int = 1) -> dict:\n    return {'sum': x + y}\n"
)


@pytest.fixture
def client(app: service.Runyard, tmp_path: pathlib.Path) -> Iterator[Client]:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "adder.py").write_text(ADDER)
    app.register_file(project / "adder.py")
    _, token = app.create_token("client", tokens.Scope.WRITE)
    api = server.ApiServer(app, host="127.0.0.1", port=0, auth=True)
    api.start()
    try:
        with Client(api.url, token) as made:
            yield made
    finally:
        api.stop()


@pytest.fixture
def working(app: service.Runyard) -> Iterator[None]:
    worker = app.worker(kind="worker", options=engine.WorkerOptions(slots=2, poll=0.02))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield
    worker.shut_down()
    thread.join(30)


def test_the_fluent_job_runs_end_to_end(client: Client, working: None) -> None:
    job = (
        Job(client)
        .create(name="add five")
        .select_processing(function_name="add", version="1")
        .set_tags(["demo", "client"])
        .configure_parameters(x=5)
        .start()
        .wait_for_completion(timeout_s=60)
    )

    assert job.state == "completed"
    assert job.get_result() == {"sum": 6}
    assert sorted(job.data["tags"]) == ["client", "demo"]
    assert Job(client, job.id).state == "completed"
    job.delete()
    with pytest.raises(ClientError) as gone:
        job.refresh()
    assert gone.value.status == 404


def test_create_and_configure_rapidly_is_one_call(client: Client, working: None) -> None:
    job = Job(client).create_and_configure_rapidly(
        function_name="add", parameters={"x": 1, "y": 10}, tags=["fast"]
    )
    assert job.state in ("pending", "processing", "completed")
    assert job.wait_for_completion(timeout_s=60).get_result() == {"sum": 11}


def test_waiting_times_out_clearly_when_nothing_runs_the_job(client: Client) -> None:
    job = Job(client).create_and_configure_rapidly(function_name="add", parameters={"x": 1})
    started = time.monotonic()
    with pytest.raises(JobTimeoutError, match=r"still pending after 1 s"):
        job.wait_for_completion(timeout_s=1)
    assert time.monotonic() - started < 30  # it gave up, and did not wait on


def test_server_errors_are_raised_with_their_message(client: Client) -> None:
    job = Job(client).create(name="bad").select_processing(function_name="add")
    with pytest.raises(ClientError) as bad:
        job.configure_parameters(x="five")
    assert bad.value.status == 422 and "x" in bad.value.message
    with pytest.raises(ClientError) as unknown:
        Job(client).create(name="x").select_processing(function_name="subtract")
    assert unknown.value.status == 404


def test_a_batch_creates_many_jobs_in_one_request_all_or_none(
    client: Client, app: service.Runyard
) -> None:
    ids = client.create_jobs(
        [
            {"processing": {"name": "add"}, "parameters": {"x": i}, "tags": ["batch"]}
            for i in range(300)
        ]
    )
    assert len(ids) == 300 and len(set(ids)) == 300
    assert Job(client, ids[7]).state == "pending"  # started: queued for an engine
    assert app.list_runs(ids[7])[0].params["steps"]["add"]["x"] == 7

    bad = [{"processing": {"name": "add"}, "parameters": {"x": 1}}] * 5
    bad[3] = {"processing": {"name": "add"}, "parameters": {"x": "three"}}
    with pytest.raises(ClientError) as refused:
        client.create_jobs(bad)
    assert refused.value.status == 422 and refused.value.message.startswith("Job 3 of the batch")
    assert len(app.list_jobs(limit=1000)) == 300


def test_a_grid_job_is_deselected_scheduled_paused_and_run_now(
    client: Client, app: service.Runyard
) -> None:
    job = Job(client).create_and_configure_rapidly(
        function_name="add",
        grid={"add": {"x": [1, 2, 3], "y": [0]}},
        deselect=[{"add.x": 2}],
        schedule={"cron": "0 9 * * 1-5", "timezone": "Europe/Amsterdam"},
    )
    assert [r.params["steps"]["add"]["x"] for r in app.list_runs(job.id)] == []  # per tick
    schedule = job.schedule()
    assert schedule["cron"] == "0 9 * * 1-5" and len(schedule["next_fires"]) == 5
    assert job.pause().schedule()["paused"] is True
    assert job.resume().schedule()["paused"] is False
    job.run_now()
    assert sorted(r.params["steps"]["add"]["x"] for r in app.list_runs(job.id)) == [1, 3]


def test_failed_runs_are_retried_through_the_client(client: Client, app: service.Runyard) -> None:
    job = Job(client).create_and_configure_rapidly(function_name="add", parameters={"x": 1})
    with pytest.raises(ClientError) as nothing:
        job.retry_failed()
    assert nothing.value.status == 400 and "no failed or killed run" in nothing.value.message

    app.stop_job(job.id)  # nothing runs it: its queued run is KILLED at once
    (killed,) = app.list_runs(job.id)
    assert killed.state is states.RunState.KILLED
    job.retry_failed()
    retried = [r for r in app.list_runs(job.id) if r.parent_run_id == killed.id]
    assert [r.state for r in retried] == [states.RunState.QUEUED]
    assert job.state == "pending"  # the retried run counts in its job, the killed one no more
