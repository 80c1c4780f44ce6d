"""A real ``runyard serve`` / ``runyard worker`` in a subprocess, driven through the CLI."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from runyard.client import Client, Job

from .. import processes
from .test_cli import EXAMPLES, Cli

ETL = f"{EXAMPLES / 'etl' / 'etl.py'}:etl"
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"
CRASHY = f"{FIXTURES / 'crashy.py'}:crashy"
INSTANT = f"{FIXTURES / 'instant.py'}:instant"


class Engine:
    """A ``runyard serve`` (or ``worker``) process on the test's store."""

    def __init__(self, cli: Cli, *args: str, kind: str = "serve") -> None:
        self.log = cli.cwd / f"{kind}-{time.monotonic_ns()}.log"
        self.killed = False
        port = ["--port", "0"] if kind == "serve" else []  # any free port: engines in parallel
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runyard", kind, *port, *args],
            env=cli.env,
            cwd=cli.cwd,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while "executing runs" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9 the engine, as a crash would."""
        self.killed = True
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def cli(tmp_path: pathlib.Path) -> Cli:
    return Cli(tmp_path / "home", tmp_path, None)


@pytest.fixture
def engines(cli: Cli) -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    # An engine that ended on its own (or was stopped from outside) explains a failure.
    ended = [e for e in started if not e.killed and e.process.poll() is not None]
    for engine in started:
        engine.stop()
    assert not ended, "\n".join(
        f"{e.log.name} exited with {e.process.returncode} before the test's end:\n"
        f"{e.log.read_text()}"
        for e in ended
    )


def raw_job(cli: Cli, job_id: str) -> dict:
    return json.loads(cli("job", "inspect", job_id, "--raw").stdout)


def test_with_an_engine_serving_job_create_hands_off_and_returns_at_once(
    cli: Cli, engines: list[Engine]
) -> None:
    engines.append(Engine(cli, "--slots", "2"))
    created = cli("job", "create", ETL, "-q")
    job_id = created.stdout.strip()
    assert "Handed to 1 engine(s)" not in created.stdout  # -q: only the id
    assert cli("job", "wait", job_id).stdout.startswith(f"Job {job_id} success: 12 + 0 / 12")
    # The engine ran every run, not the command that created the job.
    # (It says so once each run is stored as ended: the wait may see the store first.)
    expected = [f"run {r['id']} of job {job_id} success" for r in raw_job(cli, job_id)["runs"]]
    deadline = time.monotonic() + 30
    while not all(line in engines[0].log.read_text() for line in expected):
        assert time.monotonic() < deadline, engines[0].log.read_text()
        time.sleep(0.05)

    waited = cli("job", "create", ETL, "--wait", "--name", "followed")
    assert "Handed to 1 engine(s)" in waited.stderr
    assert "success: 12 + 0 / 12" in waited.stdout

    one = cli("run", f"{EXAMPLES / 'fruit' / 'fruit.py'}:fruit", "--wait")
    assert "handed to the engine" in one.stdout and "success" in one.stdout


def test_stop_kills_running_runs_and_never_starts_queued_ones(
    cli: Cli, engines: list[Engine], tmp_path: pathlib.Path
) -> None:
    engines.append(Engine(cli, "--slots", "2", "--grace", "1"))
    args = ["-p", f"pid_dir={tmp_path}"]
    for _ in range(4):
        args += ["-s", "work.mode=loop"]
    job_id = cli("job", "create", CRASHY, "-q", *args).stdout.strip()
    deadline = time.monotonic() + 20
    while not (tmp_path / "loop.pid").exists() or not (tmp_path / "loop.pid").read_text():
        assert time.monotonic() < deadline, "no run started looping"
        time.sleep(0.05)
    looping = int((tmp_path / "loop.pid").read_text())

    started = time.monotonic()
    stopped = cli("job", "stop", job_id)
    assert time.monotonic() - started < 60  # the looping runs were stopped, not waited for
    assert "2 run(s) that had not started: killed." in stopped.stdout
    assert "2 of 2 running run(s) stopped." in stopped.stdout
    job = raw_job(cli, job_id)
    assert job["state"] == "KILLED" and job["run_counts"] == {"KILLED": 4}
    reasons = {r["reason"] for r in job["runs"]}
    assert reasons == {"stopped by request", "stopped by request during step 'work'"}
    with pytest.raises(ProcessLookupError):
        os.kill(looping, 0)
    again = cli("run", "stop", job["runs"][0]["id"])
    assert "had already finished (killed); nothing changed." in again.stdout


def test_a_killed_workers_runs_are_recovered_by_another(
    cli: Cli, engines: list[Engine], tmp_path: pathlib.Path
) -> None:
    doomed = Engine(cli, "--slots", "1", "--lease", "2", kind="worker")
    engines.append(doomed)
    job_id = cli(
        "job", "create", CRASHY, "-q", "-p", f"pid_dir={tmp_path}", "-s", "work.mode=loop"
    ).stdout.strip()
    deadline = time.monotonic() + 20
    while not (tmp_path / "loop.pid").exists() or not (tmp_path / "loop.pid").read_text():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    looping = int((tmp_path / "loop.pid").read_text())
    # The worker writes what its runs report every few milliseconds: wait until the store
    # knows the step started, as this test is about a step lost while recorded RUNNING.
    (run_id,) = [r["id"] for r in raw_job(cli, job_id)["runs"]]
    deadline = time.monotonic() + 20
    while _step_states(cli, run_id).get("work") != "RUNNING":
        assert time.monotonic() < deadline, _step_states(cli, run_id)
        time.sleep(0.05)

    doomed.kill()  # kill -9 the worker, mid-run
    # Its run process goes with it: nobody would record what it did.
    assert processes.ended(looping, within=10), "the lost worker's run is still running"

    engines.append(Engine(cli, "--slots", "1", "--lease", "2", kind="worker"))
    # Once the lease runs out, the other worker ends the run: never left RUNNING.
    deadline = time.monotonic() + 30
    while (job := raw_job(cli, job_id))["state"] != "FAILURE":
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    (run,) = job["runs"]
    assert run["reason"].startswith("worker lost:")
    assert _step_states(cli, run["id"]) == {"work": "FAILURE", "after": "KILLED"}


def _step_states(cli: Cli, run_id: str) -> dict[str, str]:
    steps = cli.json("run", "inspect", run_id, "--raw")["steps"]
    return {s["step_name"]: s["state"] for s in steps}


def test_a_run_lost_with_its_worker_is_retried_by_another_when_its_job_allows(
    cli: Cli, engines: list[Engine], tmp_path: pathlib.Path
) -> None:
    doomed = Engine(cli, "--slots", "1", "--lease", "2", kind="worker")
    engines.append(doomed)
    job_id = cli(
        "job", "create", CRASHY, "-q", "-p", f"pid_dir={tmp_path}", "-s", "work.mode=loop_once",
        "--retries", "1", "--retry-on", "WorkerLost",
    ).stdout.strip()  # fmt: skip
    deadline = time.monotonic() + 20
    while not (tmp_path / "loop.pid").exists() or not (tmp_path / "loop.pid").read_text():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    doomed.kill()  # kill -9 the worker, mid-run

    engines.append(Engine(cli, "--slots", "1", "--lease", "2", kind="worker"))
    waited = cli("job", "wait", job_id, "--timeout", "60")
    assert "success: 1 + 0 / 1" in waited.stdout
    lost, retry = sorted(raw_job(cli, job_id)["runs"], key=lambda r: r["attempt"])
    assert lost["state"] == "FAILURE" and lost["reason"].startswith("worker lost:")
    assert lost["retried_by"] == retry["id"] and retry["parent_run_id"] == lost["id"]
    assert retry["state"] == "SUCCESS" and retry["attempt"] == 2
    listed = cli("run", "list", job_id).stdout
    assert f"failure (retried by {retry['id'][:8]})" in listed


def test_the_engine_fires_a_job_at_its_time_and_cron_jobs_pause_and_run_now(
    cli: Cli, engines: list[Engine]
) -> None:
    import datetime as dt

    engines.append(Engine(cli, "--slots", "2"))
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    at_job = cli("job", "create", ETL, "-q", "--at", when.isoformat()).stdout.strip()
    early = raw_job(cli, at_job)
    read_by = dt.datetime.now(dt.UTC)
    if read_by < when:  # on a loaded machine the CLI may take longer than the wait
        assert early["run_counts"] == {}  # nothing before its time
    assert early["schedule"]["next_fire_at"] in (None, when.isoformat())
    waited = cli("job", "wait", at_job, "--timeout", "60")
    assert "success: 12 + 0 / 12" in waited.stdout
    schedule = raw_job(cli, at_job)["schedule"]
    assert schedule["kind"] == "at" and schedule["next_fire_at"] is None

    # A yearly cron job: its first tick is far off; run-now makes a batch at once.
    cron_job = cli(
        "job", "create", ETL, "-q", "--cron", "0 0 1 1 *", "--timezone", "Europe/Amsterdam"
    ).stdout.strip()
    assert "Trigger" in cli("job", "inspect", cron_job).stdout
    assert cli("job", "pause", cron_job).stdout.startswith(f"Job {cron_job} paused.")
    assert raw_job(cli, cron_job)["schedule"]["paused"] is True
    assert "resumed; next tick" in cli("job", "resume", cron_job).stdout
    assert cli("job", "run-now", cron_job).stdout.startswith("12 run(s) queued now.")
    assert "success: 12 + 0 / 12" in cli("job", "wait", cron_job, "--timeout", "60").stdout
    # A job without a schedule has nothing to run now: a clear error, exit 2.
    plain = cli("job", "create", ETL, "-q").stdout.strip()
    refused = cli("job", "run-now", plain, code=2)
    assert "has no schedule" in refused.stderr


def test_serve_answers_the_rest_api_with_a_token(cli: Cli, engines: list[Engine]) -> None:
    engines.append(Engine(cli))
    deadline = time.monotonic() + 30
    while "REST API on " not in engines[0].log.read_text():
        assert time.monotonic() < deadline, engines[0].log.read_text()
        time.sleep(0.05)
    log = engines[0].log.read_text()
    url = log.split("REST API on ", 1)[1].split("/api/v1", 1)[0]
    assert url.startswith("http://127.0.0.1:") and "a token required" in log

    token = cli("token", "create", "--name", "test", "--scope", "read").stdout.strip()
    job_id = cli("job", "create", INSTANT, "--wait").stdout.split()[1]
    assert httpx.get(f"{url}/api/v1/jobs", timeout=10).status_code == 401
    listed = httpx.get(
        f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()["items"]] == [job_id]
    assert listed.json()["items"][0]["state"] == "SUCCESS"
    assert token not in log and token not in engines[0].log.read_text()


def test_serve_without_workers_answers_the_api_while_a_worker_runs_the_jobs(
    cli: Cli, engines: list[Engine]
) -> None:
    log = cli.cwd / "api-only.log"
    api = subprocess.Popen(
        [sys.executable, "-m", "runyard", "serve", "--port", "0", "--no-workers"],
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "REST API on " not in log.read_text():
            assert api.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = log.read_text().split("REST API on ", 1)[1].split("/api/v1", 1)[0]
        engines.append(Engine(cli, kind="worker"))
        cli("register", str(FIXTURES / "instant.py"))
        token = cli("token", "create", "--scope", "write").stdout.strip()

        with Client(url, token) as client:
            job = Job(client).create_and_configure_rapidly(
                function_name="instant", parameters={"steps": {"nothing": {"n": 4}}}
            )
            assert job.wait_for_completion(timeout_s=60).get_result() == 4
        assert "executing runs" not in log.read_text()  # the worker ran it, not serve
    finally:
        api.send_signal(signal.SIGINT)
        assert api.wait(timeout=30) == 0


@pytest.mark.parametrize("kind", ["serve", "worker"])
def test_a_negative_prefetch_is_refused_before_anything_starts(cli: Cli, kind: str) -> None:
    refused = cli(kind, "--prefetch", "-1", code=2)
    assert "--prefetch" in refused.stderr
    assert not (cli.cwd / "home" / "runyard.db").exists()  # no store was opened
