"""The REST API on a real store, served by uvicorn on a real socket, called with httpx."""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from runyard import errors
from runyard.api import server
from runyard.app import service
from runyard.core import pipelines, states, tokens

Load = Callable[[str], pipelines.PipelineDefinition]


@contextlib.contextmanager
def serving(app: service.Runyard, *, auth: bool) -> Iterator[httpx.Client]:
    api = server.ApiServer(app, host="127.0.0.1", port=0, auth=auth)
    api.start()
    try:
        with httpx.Client(base_url=api.url, timeout=10) as made:
            yield made
    finally:
        api.stop()


@pytest.fixture
def client(app: service.Runyard) -> Iterator[httpx.Client]:
    with serving(app, auth=True) as made:
        yield made


def bearer(app: service.Runyard, scope: tokens.Scope) -> dict[str, str]:
    _, text = app.create_token(f"test {scope}", scope)
    return {"Authorization": f"Bearer {text}"}


def finished_job(app: service.Runyard, load: Load) -> str:
    job = app.create_job(load("grid_pipeline.py:grid_pipeline"), snapshot=False)
    app.execute_job(job.id)
    return job.id


def test_health_needs_no_token_and_everything_else_does(
    app: service.Runyard, client: httpx.Client
) -> None:
    assert client.get("/api/v1/health").json()["status"] == "ok"

    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic x"}):
        refused = client.get("/api/v1/jobs", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"] == "AuthError"
        assert "runyard token create" in refused.json()["message"]

    token, text = app.create_token("gone", tokens.Scope.ADMIN)
    app.revoke_token(token.id)
    revoked = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {text}"})
    assert revoked.status_code == 401
    wrong_secret = text[:-3] + "abc"
    ok_id = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {wrong_secret}"})
    assert ok_id.status_code == 401


def test_scopes_are_enforced(app: service.Runyard, client: httpx.Client, load: Load) -> None:
    job_id = finished_job(app, load)
    read, write = bearer(app, tokens.Scope.READ), bearer(app, tokens.Scope.WRITE)

    assert client.get(f"/api/v1/jobs/{job_id}", headers=read).status_code == 200
    forbidden = client.post(f"/api/v1/jobs/{job_id}/stop", headers=read)
    assert forbidden.status_code == 403
    assert "needs write" in forbidden.json()["message"]
    stopped = client.post(f"/api/v1/jobs/{job_id}/stop", headers=write)
    assert stopped.status_code == 200
    assert stopped.json()["killed"] == [] and len(stopped.json()["finished"]) >= 1


def test_jobs_are_paged_newest_first_with_a_cursor(
    app: service.Runyard, client: httpx.Client, load: Load
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    made = [app.create_job(pipe, snapshot=False, tags=[f"t{i % 2}"]).id for i in range(5)]
    read = bearer(app, tokens.Scope.READ)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/jobs", params=params, headers=read).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    tagged = client.get("/api/v1/jobs", params={"tag": "t0"}, headers=read).json()["items"]
    assert [j["id"] for j in tagged] == [made[4], made[2], made[0]]
    created = client.get("/api/v1/jobs", params={"state": "CREATED"}, headers=read).json()
    assert len(created["items"]) == 5 and created["items"][0]["state"] == "CREATED"


def test_runs_step_runs_and_logs(app: service.Runyard, client: httpx.Client, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(pipe, snapshot=False)
    app.execute_job(job.id)
    read = bearer(app, tokens.Scope.READ)

    runs = client.get(f"/api/v1/jobs/{job.id}/runs", headers=read).json()
    assert [r["index"] for r in runs] == list(range(len(runs)))
    run = client.get(f"/api/v1/runs/{runs[0]['id']}", headers=read).json()
    assert run["state"] in {s.value for s in states.RunState}
    assert {s["step_name"] for s in run["steps"]} == set(
        job.job and app.load_pipeline(job.job).nodes
    )

    everything = app.logs(runs[0]["id"])
    first = client.get(
        f"/api/v1/runs/{runs[0]['id']}/logs", params={"limit": 1}, headers=read
    ).json()
    rest = client.get(
        f"/api/v1/runs/{runs[0]['id']}/logs",
        params={"after": first["next_after"] or 0},
        headers=read,
    ).json()
    texts = [line["text"] for line in first["items"] + rest["items"]]
    assert texts == [line.text for line in everything]


def test_errors_are_json_with_a_message(app: service.Runyard, client: httpx.Client) -> None:
    read = bearer(app, tokens.Scope.READ)

    missing = client.get("/api/v1/jobs/doesnotexist", headers=read)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    bad_cursor = client.get("/api/v1/jobs", params={"cursor": "xyz"}, headers=read)
    assert bad_cursor.status_code == 400 and "next_cursor" in bad_cursor.json()["message"]
    bad_limit = client.get("/api/v1/jobs", params={"limit": 0}, headers=read)
    assert bad_limit.status_code == 422 and "limit" in bad_limit.json()["message"]
    bad_state = client.get("/api/v1/jobs", params={"state": "sleepy"}, headers=read)
    assert bad_state.status_code == 422


def test_without_auth_anyone_on_the_machine_may_call_it(app: service.Runyard) -> None:
    with serving(app, auth=False) as open_client:
        assert open_client.get("/api/v1/jobs").status_code == 200


def test_auth_can_be_off_only_on_a_loopback_address(app: service.Runyard) -> None:
    with pytest.raises(errors.UsageError, match=r"--no-auth on 0\.0\.0\.0"):
        server.ApiServer(app, host="0.0.0.0", port=0, auth=False)
    server.ApiServer(app, host="127.0.0.1", port=0, auth=False)
    server.ApiServer(app, host="::1", port=0, auth=False)


def test_the_server_serves_on_a_real_socket_and_stops(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    api = server.ApiServer(app, host="127.0.0.1", port=0, auth=True)
    api.start()
    try:
        answer = httpx.get(f"{api.url}/api/v1/health", timeout=5)
        assert answer.json()["status"] == "ok"
        assert httpx.get(f"{api.url}/api/v1/jobs", timeout=5).status_code == 401
        taken = server.ApiServer(app, host="127.0.0.1", port=api.port, auth=True)
        with pytest.raises(errors.UsageError, match=f"127.0.0.1:{api.port}.*--port"):
            taken.start()
    finally:
        api.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api.url}/api/v1/health", timeout=1)


def read_events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """The next ``count`` events of an SSE stream (comments skipped)."""
    found: list[dict[str, str]] = []
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                found.append(event)
                event = {}
                if len(found) == count:
                    return found
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value
    raise AssertionError(f"the stream ended after {found}")


def test_the_event_stream_follows_changes_and_resumes_from_last_event_id(
    app: service.Runyard, load: Load
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    before = app.create_job(pipe, snapshot=False)  # written before the stream: not sent
    read = bearer(app, tokens.Scope.READ)
    with serving(app, auth=True) as client:
        with client.stream("GET", "/api/v1/events", headers=read) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == ": stream open"
            first = app.create_job(pipe, snapshot=False)
            second = app.create_job(pipe, snapshot=False)
            got = read_events(lines, 2)
        assert [e["event"] for e in got] == ["job_created", "job_created"]
        assert [json.loads(e["data"])["job_id"] for e in got] == [first.id, second.id]
        assert int(got[1]["id"]) > int(got[0]["id"])

        resumed = read_stream(client, read | {"Last-Event-ID": got[0]["id"]}, 1)
        assert json.loads(resumed[0]["data"])["job_id"] == second.id
        only = read_stream(client, read, 1, params={"job_id": before.id, "after": 0})
        assert json.loads(only[0]["data"])["job_id"] == before.id

        unknown = client.get("/api/v1/events", params={"job_id": "nope"}, headers=read)
        assert unknown.status_code == 404
        assert client.get("/api/v1/events").status_code == 401


def read_stream(
    client: httpx.Client, headers: dict[str, str], count: int, params: dict | None = None
) -> list[dict[str, str]]:
    with client.stream("GET", "/api/v1/events", headers=headers, params=params) as stream:
        return read_events(stream.iter_lines(), count)


def test_a_quiet_stream_sends_keep_alives_and_ends_when_the_server_stops(
    app: service.Runyard,
) -> None:
    api = server.ApiServer(app, host="127.0.0.1", port=0, auth=False, keepalive=0.3)
    api.start()
    stopped = False
    try:
        with (
            httpx.Client(base_url=api.url, timeout=10) as client,
            client.stream("GET", "/api/v1/events") as stream,
        ):
            lines = stream.iter_lines()
            assert next(lines) == ": stream open"
            assert next(lines) == ""
            assert next(lines) == ": keep-alive"
            api.stop()
            stopped = True
            assert [line for line in lines if line.startswith("data")] == []
    finally:
        if not stopped:
            api.stop()


def test_processing_steps_are_listed_with_their_parameter_schemas(
    app: service.Runyard, client: httpx.Client
) -> None:
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"
    app.register_file(example)
    read = bearer(app, tokens.Scope.READ)

    listed = client.get("/api/v1/processing-steps", headers=read).json()
    assert {(p["kind"], p["name"]) for p in listed} >= {("pipeline", "etl"), ("step", "load")}
    transform = client.get("/api/v1/processing-steps/transform", headers=read).json()
    assert transform["version"] == "1.0.0"
    assert set(transform["params_schema"]["properties"]) == {"factor", "threshold"}
    pipelines_only = client.get(
        "/api/v1/processing-steps", params={"kind": "pipeline"}, headers=read
    ).json()
    assert [p["name"] for p in pipelines_only] == ["etl"]
    missing = client.get("/api/v1/processing-steps/nope", headers=read)
    assert missing.status_code == 404 and "runyard register" in missing.json()["message"]
    wrong = client.get("/api/v1/processing-steps/transform", params={"version": "9"}, headers=read)
    assert wrong.status_code == 404 and "registered: 1.0.0" in wrong.json()["message"]


def test_jobs_are_created_from_registered_processing_steps(
    app: service.Runyard, client: httpx.Client
) -> None:
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"
    app.register_file(example)
    write, read = bearer(app, tokens.Scope.WRITE), bearer(app, tokens.Scope.READ)

    body = {
        "processing": {"name": "etl"},
        "name": "from the api",
        "tags": ["api"],
        "parameters": {"pipeline": {"region": "apac"}, "steps": {"transform": {"factor": 3}}},
    }
    assert client.post("/api/v1/jobs", json=body, headers=read).status_code == 403
    made = client.post("/api/v1/jobs", json=body, headers=write)
    assert made.status_code == 201, made.text
    job = made.json()
    assert (job["name"], job["tags"], job["run_count"], job["state"]) == (
        "from the api",
        ["api"],
        1,
        "QUEUED",
    )
    assert job["snapshot_id"] == app.registration("etl").snapshot_id
    done = app.execute_job(job["id"])  # what an engine does with the queued run
    assert done.state is states.JobState.SUCCESS
    (run,) = app.list_runs(job["id"])
    assert run.params["pipeline"]["region"] == "apac"
    assert run.params["steps"]["transform"]["factor"] == 3

    step_job = client.post(
        "/api/v1/jobs",
        json={
            "processing": {"name": "extract", "version": "1.0.0"},
            "grid": {"extract": {"rows": [1, 2]}},
            "start": False,
        },
        headers=write,
    )
    assert step_job.status_code == 201, step_job.text
    assert step_job.json()["state"] == "CREATED"
    assert step_job.json()["run_count"] == 2 and step_job.json()["pipeline_name"] == "extract"
    cannot = client.post("/api/v1/jobs", json={"processing": {"name": "transform"}}, headers=write)
    assert cannot.status_code == 400 and "cannot run alone" in cannot.json()["message"]


def test_bad_job_requests_are_refused_and_create_nothing(
    app: service.Runyard, client: httpx.Client
) -> None:
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"
    app.register_file(example)
    write = bearer(app, tokens.Scope.WRITE)

    def post(body: dict) -> httpx.Response:
        return client.post("/api/v1/jobs", json=body, headers=write)

    bad_value = post({"processing": {"name": "etl"}, "grid": {"transform": {"factor": ["x"]}}})
    assert bad_value.status_code == 422 and "factor" in bad_value.json()["message"]
    unknown = post(
        {"processing": {"name": "etl"}, "parameters": {"steps": {"transform": {"fctor": 2}}}}
    )
    assert unknown.status_code == 422 and "fctor" in unknown.json()["message"]
    both = post({"processing": {"name": "etl"}, "grid": {}, "parameters": {}})
    assert both.status_code == 400
    missing = post({"processing": {"name": "nope"}})
    assert missing.status_code == 404
    extra = post({"processing": {"name": "etl"}, "colour": "red"})
    assert extra.status_code == 422 and "colour" in extra.json()["message"]
    assert app.list_jobs() == []


def test_a_job_made_step_by_step_runs_and_is_deleted(
    app: service.Runyard, client: httpx.Client, tmp_path: pathlib.Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "adder.py").write_text(
        "import runyard\n\n\n@runyard.step(version='1')\n"
        "def add(*, x: int, y: int = 1) -> dict:\n    return {'sum': x + y}\n"
    )
    app.register_file(project / "adder.py")
    write = bearer(app, tokens.Scope.WRITE)

    def call(method: str, path: str, **kwargs: object) -> httpx.Response:
        return client.request(method, f"/api/v1{path}", headers=write, **kwargs)

    made = call("POST", "/jobs", json={"name": "adding", "tags": ["a"]})
    assert made.status_code == 201
    job = made.json()
    assert (job["processing_state"], job["pipeline_name"]) == ("created", "")
    not_ready = call("POST", f"/jobs/{job['id']}/start")
    assert not_ready.status_code == 409 and "select a processing step" in not_ready.text

    chosen = call("PUT", f"/jobs/{job['id']}/processing", json={"name": "add"}).json()
    assert chosen["processing_state"] == "created"  # x has no default: not ready yet
    bad = call("PUT", f"/jobs/{job['id']}/parameters", json={"parameters": {"x": "five"}})
    assert bad.status_code == 422 and "x" in bad.json()["message"]
    typo = call("PUT", f"/jobs/{job['id']}/parameters", json={"parameters": {"z": 1}})
    assert typo.status_code == 422 and "'z'" in typo.json()["message"]
    ready = call("PUT", f"/jobs/{job['id']}/parameters", json={"parameters": {"x": 5}}).json()
    assert ready["processing_state"] == "ready_for_processing" and ready["run_count"] == 1
    tagged = call("PUT", f"/jobs/{job['id']}/tags", json={"tags": ["b", "c"]}).json()
    assert tagged["tags"] == ["b", "c"]
    assert call("GET", f"/jobs/{job['id']}/result").status_code == 409

    pending = call("POST", f"/jobs/{job['id']}/start").json()
    assert pending["processing_state"] == "pending"
    assert call("DELETE", f"/jobs/{job['id']}").status_code == 409  # queued: stop it first
    again = call("PUT", f"/jobs/{job['id']}/parameters", json={"parameters": {"x": 6}})
    assert again.status_code == 409
    app.execute_job(job["id"])  # what an engine does
    done = call("GET", f"/jobs/{job['id']}").json()
    assert done["processing_state"] == "completed" and done["error_description"] is None
    assert call("GET", f"/jobs/{job['id']}/result").json() == {"result": {"sum": 6}}

    assert call("DELETE", f"/jobs/{job['id']}").status_code == 204
    assert call("GET", f"/jobs/{job['id']}").status_code == 404
    kinds = [e.kind for e in app.events(job_id=job["id"])]
    assert kinds[0] == "job_created" and kinds[-1] == "job_deleted"


def test_a_failed_job_says_why(
    app: service.Runyard, client: httpx.Client, tmp_path: pathlib.Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "boom.py").write_text(
        "import runyard\n\n\n@runyard.step\ndef boom(*, x: int = 1) -> int:\n"
        "    raise ValueError(f'x={x} is not welcome')\n"
    )
    app.register_file(project / "boom.py")
    write = bearer(app, tokens.Scope.WRITE)
    made = client.post(
        "/api/v1/jobs", json={"processing": {"name": "boom"}, "parameters": {"x": 7}}, headers=write
    ).json()
    app.execute_job(made["id"])

    failed = client.get(f"/api/v1/jobs/{made['id']}", headers=write).json()
    assert failed["processing_state"] == "error"
    assert "x=7 is not welcome" in failed["error_description"]
