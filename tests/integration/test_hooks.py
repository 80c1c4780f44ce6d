"""Hooks delivered for real: webhooks POSTed to an HTTP server on this machine, retried with
backoff until they are answered (or given up on), functions called with the notice, a slow
hook that holds up no run, and a webhook's secret URL kept out of logs and events."""

from __future__ import annotations

import http.server
import json
import logging
import pathlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from runyard.app import service
from runyard.core import pipelines, states
from runyard.execution import pipeline as pipeline_mod
from runyard.worker import engine, notifier

N = states.NoticeState
Load = Callable[[str], pipelines.PipelineDefinition]
SECRET = "s3cr3t-t0ken"


class HookServer:
    """An HTTP server on 127.0.0.1 that records POSTed JSON and answers with ``codes`` in
    turn (200 once they run out); ``hold`` keeps requests waiting until it is set."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, object]]] = []
        self.codes: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.received.append((self.path, dict(self.headers), body))
                server.arrived.set()
                server.hold.wait(30)
                self.send_response(server.codes.pop(0) if server.codes else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/{SECRET}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[object]:
        return [body["event"] for _, _, body in self.received]

    def close(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def grid(tmp_path: pathlib.Path) -> dict[str, dict[str, list[str]]]:
    return {"pipeline_parameters": {"counter": [str(tmp_path / "count")]}}


def test_webhooks_get_the_failure_and_the_completion_as_json(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path, hook_server: HookServer
) -> None:
    pipe = load("flaky_runs.py:picky_runs")
    hooks = pipeline_mod.make_hooks(on_run_failure=hook_server.url, on_job_complete=hook_server.url)
    job = app.create_job(pipe, grid=grid(tmp_path), hooks=hooks)
    app.execute_job(job.id, pipe)

    assert sorted(hook_server.events()) == ["job_complete", "run_failure"]
    (run,) = app.list_runs(job.id)
    path, headers, body = next(r for r in hook_server.received if r[2]["event"] == "run_failure")
    assert path == f"/hooks/{SECRET}" and headers["X-Runyard-Event"] == "run_failure"
    assert headers["Content-Type"] == "application/json"
    assert body["run"]["id"] == run.id  # type: ignore[index]
    assert "bad data is not worth retrying" in body["run"]["reason"]  # type: ignore[index]
    assert body["job"] == {"id": job.id, "name": "picky_runs", "pipeline": "picky_runs"}
    assert all(n.state is N.DELIVERED for n in app.notices(job.id))


def test_a_failing_webhook_is_retried_with_backoff_and_its_secret_is_never_logged(
    app: service.Runyard,
    load: Load,
    tmp_path: pathlib.Path,
    hook_server: HookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook_server.codes = [503, 500, 502]
    pipe = load("flaky_runs.py:picky_runs")
    hooks = pipeline_mod.make_hooks(on_run_failure=hook_server.url)
    job = app.create_job(pipe, grid=grid(tmp_path), hooks=hooks)
    caplog.set_level(logging.WARNING, logger="runyard.hooks")
    app.execute_job(job.id, pipe)  # the first attempt: 503
    (notice,) = app.notices(job.id)
    assert notice.state is N.PENDING and notice.attempts == 1
    assert notice.last_error == "HTTP 503 Service Unavailable"

    settled: list[tuple[str | None, bool]] = []
    deliverer = notifier.Notifier(
        app.store, first_delay=0.05, jitter=0, on_settled=lambda n, e, f: settled.append((e, f))
    )
    deadline = time.monotonic() + 10
    while app.notices(job.id)[0].state is N.PENDING and time.monotonic() < deadline:
        deliverer.deliver_due()
        time.sleep(0.02)
    (notice,) = app.notices(job.id)
    assert notice.state is N.DELIVERED and notice.attempts == 4
    assert [e for e, _ in settled] == [
        "HTTP 500 Internal Server Error",
        "HTTP 502 Bad Gateway",
        None,
    ]
    assert len(hook_server.received) == 4
    # Backoff: 0.05 s, then 0.1 s, between the retries.
    logged = caplog.text + "".join(e.message or "" for e in app.events(job_id=job.id))
    assert "hook_failed" in caplog.text and "127.0.0.1" in caplog.text
    assert SECRET not in logged


def test_a_hook_that_keeps_failing_is_given_up_on_with_its_error(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("flaky_runs.py:picky_runs")
    broken = str(pathlib.Path(__file__).parent.parent / "fixtures/pipelines/flaky_runs.py")
    dead_url = "http://127.0.0.1:9/nobody-listens"
    hooks = pipeline_mod.make_hooks(on_run_failure=[f"{broken}:broken_hook", dead_url])
    job = app.create_job(pipe, grid=grid(tmp_path), hooks=hooks)
    app.execute_job(job.id, pipe)
    deliverer = notifier.Notifier(app.store, attempts=2, first_delay=0.01, timeout=2)
    deadline = time.monotonic() + 10
    while any(n.state is N.PENDING for n in app.notices(job.id)) and time.monotonic() < deadline:
        deliverer.deliver_due()
        time.sleep(0.02)
    by_target = {n.target: n for n in app.notices(job.id)}
    function = by_target[f"{broken}:broken_hook"]
    assert function.state is N.FAILED and function.attempts == 2
    assert function.last_error == "RuntimeError: the pager is down"
    webhook = by_target[dead_url]
    assert webhook.state is N.FAILED and (webhook.last_error or "").startswith("ConnectError")
    gave_up = [e.message for e in app.events(job_id=job.id) if e.kind == "hook"]
    assert len(gave_up) == 2 and all("failed for good" in (m or "") for m in gave_up)


def test_a_slow_hook_holds_up_no_run(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path, hook_server: HookServer
) -> None:
    hook_server.hold.clear()  # every POST waits until released
    pipe = load("flaky_runs.py:plain")
    hooks = pipeline_mod.make_hooks(on_run_success=hook_server.url)
    counters = [str(tmp_path / f"c{i}") for i in range(6)]
    job = app.create_job(pipe, grid={"pipeline_parameters": {"counter": counters}}, hooks=hooks)
    working = app.worker(kind="worker", options=engine.WorkerOptions(slots=1, poll=0.02))
    thread = threading.Thread(target=working.run, daemon=True)
    thread.start()
    try:
        app.start_job(job.id)
        assert hook_server.arrived.wait(20)  # the first run's hook is now held
        done = app.wait_job(job.id, timeout=30)
        assert done.state is states.JobState.SUCCESS  # every run ended all the same
        assert len(hook_server.received) == 1
        hook_server.hold.set()
        deadline = time.monotonic() + 20
        while len(hook_server.received) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(hook_server.received) == 6
    finally:
        hook_server.hold.set()
        working.shut_down()
        thread.join(30)
