"""Runs are forked by a fork server where the OS allows it, else straight from the engine;
both paths isolate runs the same way."""

import os
import pathlib
from collections.abc import Callable

import pytest

from runyard.app import service
from runyard.core import pipelines, states
from runyard.execution import forkserver

R = states.RunState
Load = Callable[[str], pipelines.PipelineDefinition]


@pytest.fixture(params=["fork server", "direct fork"])
def fork_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "direct fork":
        # As on an OS without SOCK_SEQPACKET: the engine forks each run itself.
        monkeypatch.setattr(forkserver.ForkServer, "start", classmethod(lambda cls, body: None))
    return str(request.param)


def test_each_path_isolates_runs_and_reaps_them(
    fork_path: str, app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("crashy.py:crashy")
    modes = ["ok", "raise", "segfault", "os_exit", "loop", "ok"]
    job = app.create_job(
        pipe,
        grid={
            "pipeline_parameters": {"pid_dir": [str(tmp_path)]},
            "work": {"mode": modes},
        },
    )
    done = app.execute_job(job.id, pipe, max_parallel_runs=3, run_timeout=2)

    by_mode = {r.params["steps"]["work"]["mode"]: r for r in app.list_runs(job.id)}
    assert done.counts == {R.SUCCESS: 2, R.FAILURE: 4}
    assert by_mode["ok"].state is R.SUCCESS
    assert "ValueError: bad row 42" in (by_mode["raise"].reason or "")
    assert "killed by SIGSEGV during step 'work'" in (by_mode["segfault"].reason or "")
    assert "exited with code 7 during step 'work'" in (by_mode["os_exit"].reason or "")
    assert "timed out after 2 s during step 'work'" in (by_mode["loop"].reason or "")
    loop_pid = int((tmp_path / "loop.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(loop_pid, 0)
    # Every run process (and the fork server) has been reaped: none is left a zombie.
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
