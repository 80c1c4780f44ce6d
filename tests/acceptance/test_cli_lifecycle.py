"""Retries, hooks and retention through the real CLI: the options, what `job inspect`,
`run list` and `job hooks` show, and bad options refused before anything is stored."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from ..integration.test_hooks import SECRET, HookServer
from .test_cli import Cli

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"
PICKY = f"{FIXTURES / 'flaky_runs.py'}:picky_runs"
PLAIN = f"{FIXTURES / 'flaky_runs.py'}:plain"


@pytest.fixture
def cli(tmp_path: pathlib.Path) -> Cli:
    return Cli(tmp_path / "home", tmp_path, None)


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def test_a_job_with_retries_and_hooks_shows_both(
    cli: Cli, tmp_path: pathlib.Path, hook_server: HookServer
) -> None:
    counter = f"counter={tmp_path / 'count'}"
    created = cli(
        "job", "create", PICKY, "-p", counter, "--retries", "2", "--retry-on", "ValueError",
        "--on-failure", hook_server.url, "--on-complete", hook_server.url, code=1,
    )  # fmt: skip
    assert "failure: 0 + 1 / 1" in created.stdout
    job_id = cli.job_ids()[0]
    assert (tmp_path / "count.picky").read_text() == "3"  # tried three times
    assert sorted(hook_server.events()) == ["job_complete", "run_failure"]

    listed = cli("run", "list", job_id).stdout
    assert listed.count("(retried by") == 2 and listed.count("failure") == 3
    shown = cli("job", "inspect", job_id).stdout
    assert "2 time(s) on ValueError, after 0 s, x2 each time" in shown
    assert "run_failure: http://127.0.0.1:" in shown and SECRET not in shown
    hooks = cli("job", "hooks", job_id).stdout
    assert hooks.count("delivered") == 2 and SECRET not in hooks
    raw = cli.json("job", "inspect", job_id, "--raw")
    assert raw["retry"]["retries"] == 2 and SECRET not in str(raw)
    assert sorted(r["attempt"] for r in raw["runs"]) == [1, 2, 3]


def test_old_runs_are_deleted_beyond_max_retained_runs(cli: Cli, tmp_path: pathlib.Path) -> None:
    counters = [f"counter={tmp_path / f'c{i}'}" for i in range(4)]
    args = [a for c in counters for a in ("-p", c)]
    cli("job", "create", PLAIN, "--max-retained-runs", "2", "--max-parallel", "1", *args)
    job_id = cli.job_ids()[0]
    lines = [line for line in cli("run", "list", job_id).stdout.splitlines()[1:] if line.strip()]
    assert len(lines) == 2
    assert "the newest 2 finished runs" in cli("job", "inspect", job_id).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retry-delay", "5"], "add --retries N"),
        (["--retries", "1", "--retry-on", "not a name"], "give an exception name"),
        (["--on-failure", "ftp://files.example.com/x"], "neither an http(s) URL nor"),
        (["--on-success", "http:///no-host"], "has no host"),
        (["--on-complete", "missing.py:notify"], "No file 'missing.py'"),
        (["--on-failure", f"{FIXTURES / 'flaky_runs.py'}:nothing"], "no function 'nothing'"),
        (["--max-retained-runs", "0"], "--max-retained-runs"),
        (["--retries", "-1"], "--retries"),
    ],
)
def test_bad_lifecycle_options_are_refused_and_store_nothing(
    cli: Cli, tmp_path: pathlib.Path, args: list[str], message: str
) -> None:
    refused = cli("job", "create", PLAIN, "-p", f"counter={tmp_path / 'c'}", *args, code=2)
    assert message in refused.stderr
    assert cli.job_ids() == []


def test_a_jobs_failed_runs_are_retried_from_failure(cli: Cli, tmp_path: pathlib.Path) -> None:
    log, marker = tmp_path / "steps.log", tmp_path / "up"
    fragile = f"{FIXTURES / 'fragile.py'}:fragile_pipeline"
    cli("job", "create", fragile, "-p", f"log={log}", "-p", f"marker={marker}", code=1)
    job_id = cli.job_ids()[0]
    assert log.read_text().split() == ["prepare", "fragile", "side"]

    marker.write_text("")
    retried = cli("job", "retry", job_id).stdout
    assert "1 run(s) retried" in retried and "success" in retried
    # prepare and side were reused; only the failed step and what follows it ran again
    assert log.read_text().split()[3:] == ["fragile", "finish"]
    again = cli("job", "retry", job_id, code=2)
    assert "no failed or killed run" in again.stderr
