"""The API the web UI calls besides the rest: a job's runs a page at a time, and the runs
a grid would make, previewed without creating anything."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from runyard.app import service

from .test_api import serving

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"
REGIONS = {"pipeline_parameters": {"region": ["eu", "us", "apac"]}}


@pytest.fixture
def api(app: service.Runyard) -> Iterator[httpx.Client]:
    app.register_file(EXAMPLE)
    with serving(app, auth=False) as made:
        yield made


def test_runs_are_paged_with_a_total(app: service.Runyard, api: httpx.Client) -> None:
    grid = {"extract": {"rows": list(range(1, 8))}}
    job = api.post("/api/v1/jobs", json={"processing": {"name": "etl"}, "grid": grid}).json()
    page = api.get(f"/api/v1/jobs/{job['id']}/runs", params={"limit": 3, "offset": 3})
    assert page.headers["X-Total-Count"] == "7"
    assert [r["index"] for r in page.json()] == [3, 4, 5]
    last = api.get(f"/api/v1/jobs/{job['id']}/runs", params={"limit": 3, "offset": 6}).json()
    assert [r["index"] for r in last] == [6]


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
