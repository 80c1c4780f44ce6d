"""The API the web UI calls: job actions (pause, resume, run now, retry failed), paged
runs, grid previews, cron fire times, schedules, and jobs made with deselected runs or a
schedule."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from runyard.app import service
from runyard.core import states

from .test_api import serving

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"
REGIONS = {"pipeline_parameters": {"region": ["eu", "us", "apac"]}}


@pytest.fixture
def api(app: service.Runyard) -> Iterator[httpx.Client]:
    app.register_file(EXAMPLE)
    with serving(app, auth=False) as made:
        yield made


def test_a_job_leaves_out_its_deselected_runs(app: service.Runyard, api: httpx.Client) -> None:
    made = api.post(
        "/api/v1/jobs",
        json={"processing": {"name": "etl"}, "grid": REGIONS, "deselect": [1], "start": False},
    )
    assert made.status_code == 201, made.text
    runs = api.get(f"/api/v1/jobs/{made.json()['id']}/runs").json()
    assert [(r["index"], r["params"]["pipeline"]["region"]) for r in runs] == [
        (0, "eu"),
        (2, "apac"),
    ]
    refused = api.post(
        "/api/v1/jobs",
        json={"processing": {"name": "etl"}, "grid": REGIONS, "deselect": [0, 1, 2, 7]},
    )
    assert refused.status_code in (400, 422)
    assert len(api.get("/api/v1/jobs").json()["items"]) == 1


def test_runs_are_paged_with_a_total(app: service.Runyard, api: httpx.Client) -> None:
    grid = {"extract": {"rows": list(range(1, 8))}}
    job = api.post("/api/v1/jobs", json={"processing": {"name": "etl"}, "grid": grid}).json()
    page = api.get(f"/api/v1/jobs/{job['id']}/runs", params={"limit": 3, "offset": 3})
    assert page.headers["X-Total-Count"] == "7"
    assert [r["index"] for r in page.json()] == [3, 4, 5]
    last = api.get(f"/api/v1/jobs/{job['id']}/runs", params={"limit": 3, "offset": 6}).json()
    assert [r["index"] for r in last] == [6]


def test_a_schedule_is_paused_resumed_and_run_now(app: service.Runyard, api: httpx.Client) -> None:
    made = api.post(
        "/api/v1/jobs",
        json={
            "processing": {"name": "etl"},
            "name": "mornings",
            "schedule": {"cron": "30 6 * * *", "timezone": "Europe/Amsterdam"},
        },
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    assert made.json()["run_counts"] == {}  # runs are made at its ticks
    (listed,) = api.get("/api/v1/schedules").json()
    assert (listed["job_id"], listed["job_name"], listed["kind"]) == (job_id, "mornings", "cron")
    assert len(listed["next_fires"]) == 5
    assert all(t.endswith(("05:30:00Z", "04:30:00Z")) for t in listed["next_fires"])

    assert api.post(f"/api/v1/jobs/{job_id}/pause").status_code == 200
    (paused,) = api.get("/api/v1/schedules").json()
    assert paused["paused"] is True and paused["next_fires"] == []
    assert api.post(f"/api/v1/jobs/{job_id}/resume").status_code == 200
    assert api.get("/api/v1/schedules").json()[0]["paused"] is False

    assert api.post(f"/api/v1/jobs/{job_id}/run-now").status_code == 200
    assert app.store.count_runs(job_id, state=states.RunState.QUEUED) == 1

    once = api.post("/api/v1/jobs", json={"processing": {"name": "etl"}}).json()
    refused = api.post(f"/api/v1/jobs/{once['id']}/pause")
    assert refused.status_code == 400 and "no schedule" in refused.json()["message"]


def test_bad_schedules_are_refused_and_create_nothing(api: httpx.Client) -> None:
    for schedule, words in [
        ({"cron": "0 25 * * *"}, "not valid"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "not known"),
        ({"at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"at": 0}, "ISO 8601"),
    ]:
        body = {"processing": {"name": "etl"}, "schedule": schedule}
        refused = api.post("/api/v1/jobs", json=body)
        assert refused.status_code in (400, 422), refused.text
        assert words in refused.json()["message"]
    assert api.get("/api/v1/jobs").json()["items"] == []
    assert api.get("/api/v1/schedules").json() == []


def test_cron_fire_times_are_previewed(api: httpx.Client) -> None:
    found = api.get(
        "/api/v1/schedules/fire-times",
        params={"cron": "0 9 * * 1-5", "timezone": "Europe/Amsterdam", "count": 3},
    )
    assert found.status_code == 200
    times = found.json()["fire_times"]
    assert len(times) == 3 and all(t.endswith("T08:00:00Z") for t in times)
    bad = api.get("/api/v1/schedules/fire-times", params={"cron": "every day"})
    assert bad.status_code == 400 and "five fields" in bad.json()["message"]


def test_a_grid_is_previewed_without_creating_anything(api: httpx.Client) -> None:
    grid = {**REGIONS, "transform": {"factor": [1.0, 2.0]}}
    found = api.post("/api/v1/processing-steps/etl/preview", json={"grid": grid, "limit": 4})
    assert found.status_code == 200, found.text
    preview = found.json()
    assert (preview["size"], preview["axes"]) == (6, ["region", "transform.factor"])
    assert [r["index"] for r in preview["runs"]] == [0, 1, 2, 3]
    assert preview["runs"][1]["params"]["steps"]["transform"]["factor"] == 2.0
    bad = api.post(
        "/api/v1/processing-steps/etl/preview", json={"grid": {"transform": {"factr": [1]}}}
    )
    assert bad.status_code == 422 and "did you mean 'factor'" in bad.json()["message"]
    assert api.get("/api/v1/jobs").json()["items"] == []


def test_retry_failed_queues_each_failed_run_again(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    code = tmp_path / "project" / "picky.py"
    code.parent.mkdir()
    (code.parent / "runyard.toml").write_text("")
    code.write_text(
        "import runyard\n\n\n@runyard.step\ndef picky(*, x: int = 1) -> int:\n"
        "    if x == 2:\n        raise ValueError('two is refused')\n    return x\n"
    )
    app.register_file(code)
    with serving(app, auth=False) as api:
        job = api.post(
            "/api/v1/jobs", json={"processing": {"name": "picky"}, "grid": {"picky": {"x": [1, 2]}}}
        ).json()
        app.execute_job(job["id"])
        retried = api.post(f"/api/v1/jobs/{job['id']}/retry-failed")
        assert retried.status_code == 200, retried.text
        (again,) = retried.json()
        assert (again["index"], again["state"], again["attempt"]) == (1, "QUEUED", 2)
        assert api.post(f"/api/v1/jobs/{job['id']}/retry-failed").json() == []
