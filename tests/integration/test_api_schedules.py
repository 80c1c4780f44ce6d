"""The API's schedules, deselection, retries, job filters and followed logs, on a real
store served by uvicorn."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import zoneinfo

import httpx
import pytest

from runyard.app import service
from runyard.core import states, tokens
from tests.integration.test_api import Load, bearer, client, finished_job, read_events

__all__ = ["client"]  # the fixture, served to these tests too

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"


@pytest.fixture
def write(app: service.Runyard) -> dict[str, str]:
    return bearer(app, tokens.Scope.WRITE)


def test_a_cron_job_is_scheduled_paused_resumed_and_run_now(
    app: service.Runyard, client: httpx.Client, write: dict[str, str]
) -> None:
    app.register_file(EXAMPLE)
    body = {
        "processing": {"name": "etl"},
        "name": "weekday mornings",
        "schedule": {"cron": "0 9 * * 1-5", "timezone": "Europe/Amsterdam"},
    }
    made = client.post("/api/v1/jobs", json=body, headers=write)
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]

    schedule = client.get(f"/api/v1/jobs/{job_id}/schedule", headers=write).json()
    assert (schedule["kind"], schedule["cron"], schedule["paused"]) == (
        "cron",
        "0 9 * * 1-5",
        False,
    )
    fires = [dt.datetime.fromisoformat(f) for f in schedule["next_fires"]]
    amsterdam = zoneinfo.ZoneInfo("Europe/Amsterdam")
    assert len(fires) == 5 and fires == sorted(fires)
    assert all(f.astimezone(amsterdam).hour == 9 for f in fires)
    assert all(f.astimezone(amsterdam).weekday() < 5 for f in fires)
    listed = client.get("/api/v1/schedules", headers=write).json()
    assert [s["job_id"] for s in listed] == [job_id]

    paused = client.post(f"/api/v1/jobs/{job_id}/pause", headers=write).json()
    assert paused["paused"] is True and paused["next_fires"] == []
    assert app.schedule(job_id).paused  # type: ignore[union-attr]
    resumed = client.post(f"/api/v1/jobs/{job_id}/resume", headers=write).json()
    assert resumed["paused"] is False and len(resumed["next_fires"]) == 5

    now = client.post(f"/api/v1/jobs/{job_id}/run-now", headers=write)
    assert now.status_code == 200 and now.json() == {"runs": 1}
    assert [r.state for r in app.list_runs(job_id)] == [states.RunState.QUEUED]


def test_schedules_are_previewed_and_bad_ones_refused_creating_nothing(
    app: service.Runyard, client: httpx.Client, write: dict[str, str]
) -> None:
    preview = client.get(
        "/api/v1/schedules/preview",
        params={"cron": "30 2 * * *", "timezone": "America/New_York", "count": 3},
        headers=write,
    )
    assert preview.status_code == 200, preview.text
    fires = [dt.datetime.fromisoformat(f) for f in preview.json()["fires"]]
    new_york = zoneinfo.ZoneInfo("America/New_York")
    assert len(fires) == 3
    assert all(
        (f.astimezone(new_york).hour, f.astimezone(new_york).minute) == (2, 30)
        or f.astimezone(new_york).hour == 3
        for f in fires
    )  # a DST gap moves 02:30

    bad = client.get("/api/v1/schedules/preview", params={"cron": "every day"}, headers=write)
    assert bad.status_code == 400 and "'every day' is not valid" in bad.json()["message"]
    zone = client.get(
        "/api/v1/schedules/preview",
        params={"cron": "0 9 * * *", "timezone": "Mars/Base"},
        headers=write,
    )
    assert zone.status_code == 400 and "Mars/Base" in zone.json()["message"]

    app.register_file(EXAMPLE)
    body = {"processing": {"name": "etl"}, "schedule": {"cron": "61 * * * *"}}
    refused = client.post("/api/v1/jobs", json=body, headers=write)
    assert refused.status_code == 400 and "61 * * * *" in refused.json()["message"]
    past = {"processing": {"name": "etl"}, "schedule": {"at": "2001-01-01T09:00:00+00:00"}}
    refused = client.post("/api/v1/jobs", json=past, headers=write)
    assert refused.status_code == 400 and "in the past" in refused.json()["message"]
    assert app.list_jobs() == []
    not_scheduled = client.post(
        "/api/v1/jobs", json={"processing": {"name": "etl"}, "start": False}, headers=write
    ).json()
    missing = client.post(f"/api/v1/jobs/{not_scheduled['id']}/pause", headers=write)
    assert missing.status_code == 404 and "has no schedule" in missing.json()["message"]


def test_runs_of_the_grid_are_deselected_by_index_and_by_filter(
    app: service.Runyard, client: httpx.Client, write: dict[str, str]
) -> None:
    app.register_file(EXAMPLE)
    body = {
        "processing": {"name": "etl"},
        "grid": {"pipeline_parameters": {"region": ["emea", "apac", "amer"]}},
        "deselect": [0, {"region": "amer"}],
        "start": False,
    }
    made = client.post("/api/v1/jobs", json=body, headers=write)
    assert made.status_code == 201, made.text
    runs = app.list_runs(made.json()["id"])
    assert [r.params["pipeline"]["region"] for r in runs] == ["apac"]
    everything = dict(body, deselect=[0, 1, 2])
    refused = client.post("/api/v1/jobs", json=everything, headers=write)
    assert refused.status_code == 422, refused.text
    assert "Every run of the grid is deselected" in refused.json()["message"]
    assert len(app.list_jobs()) == 1


def test_failed_runs_of_a_job_are_retried(
    app: service.Runyard, client: httpx.Client, write: dict[str, str], tmp_path: pathlib.Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "odd.py").write_text(
        "import runyard\n\n\n@runyard.step\ndef odd(*, x: int = 1) -> int:\n"
        "    if x % 2:\n        raise ValueError(f'x={x} is odd')\n    return x\n"
    )
    app.register_file(project / "odd.py")
    made = client.post(
        "/api/v1/jobs",
        json={"processing": {"name": "odd"}, "grid": {"odd": {"x": [1, 2, 3]}}},
        headers=write,
    ).json()
    app.execute_job(made["id"])
    failed = {r.id for r in app.list_runs(made["id"]) if r.state is states.RunState.FAILURE}
    assert len(failed) == 2

    retried = client.post(f"/api/v1/jobs/{made['id']}/retry", headers=write)
    assert retried.status_code == 200, retried.text
    new = set(retried.json()["run_ids"])
    assert len(new) == 2
    runs = app.list_runs(made["id"])
    assert {r.parent_run_id for r in runs if r.id in new} == failed
    assert all(r.state is states.RunState.QUEUED for r in runs if r.id in new)

    again = client.post(f"/api/v1/jobs/{made['id']}/retry", headers=write)
    assert again.status_code == 400 and "no failed or killed run" in again.json()["message"]
    (one,) = new - {next(iter(new))}
    assert client.post(f"/api/v1/runs/{one}/retry", headers=write).status_code == 400  # queued


def test_jobs_are_filtered_by_name_and_creation_time(
    app: service.Runyard, client: httpx.Client, load: Load, write: dict[str, str]
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    first = app.create_job(pipe, name="nightly_100%", snapshot=False)
    second = app.create_job(pipe, name="adhoc", snapshot=False)

    def ids(**params: str) -> list[str]:
        page = client.get("/api/v1/jobs", params=params, headers=write)
        assert page.status_code == 200, page.text
        return [j["id"] for j in page.json()["items"]]

    assert ids(name="100%") == [first.id]
    assert ids(name="_") == [first.id]  # LIKE's wildcards are taken literally
    assert ids(name="nightly") == [first.id]
    assert ids(created_after=second.job.created_at.isoformat()) == [second.id]
    assert ids(created_before=second.job.created_at.isoformat()) == [first.id]


def test_a_runs_logs_are_streamed_and_resumed(
    app: service.Runyard, client: httpx.Client, load: Load, write: dict[str, str]
) -> None:
    job_id = finished_job(app, load)
    run = app.list_runs(job_id)[0]
    expected = [line.text for line in app.logs(run.id)]
    assert expected

    path = f"/api/v1/runs/{run.id}/logs/stream"
    with client.stream("GET", path, headers=write) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        got = read_events(stream.iter_lines(), len(expected) + 1)
    assert [e["event"] for e in got] == ["log"] * len(expected) + ["end"]
    assert [json.loads(e["data"])["text"] for e in got[:-1]] == expected

    resume = {**write, "Last-Event-ID": got[0]["id"]}
    with client.stream("GET", path, headers=resume) as stream:
        rest = read_events(stream.iter_lines(), len(expected))
    assert [json.loads(e["data"])["text"] for e in rest[:-1]] == expected[1:]
    assert rest[-1]["event"] == "end"
    assert client.get("/api/v1/runs/nope/logs/stream", headers=write).status_code == 404
