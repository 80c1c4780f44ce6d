"""The run's own process: what happens in it between its fork and its ``os._exit``.

It becomes its own process group (so a stop or timeout kills everything it started), sends
fds 1/2 to the engine's output pipe, captures what steps print and log, applies the run's
memory limit, runs the steps, and reports each event to the engine over its message pipe.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import gc
import multiprocessing.connection
import os
import pathlib
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from runyard.core import pipelines, records, states
from runyard.execution import boundary, capture, runner, workspace

__all__ = ["INTERNAL_ERROR", "OutputStore", "RunTask", "describe_exit", "run"]

INTERNAL_ERROR = 70  # the exit code of a run process that failed in runyard's own code


@dataclasses.dataclass(frozen=True, slots=True)
class RunTask:
    """One run to execute, with what its process needs to know."""

    run_id: str
    job_id: str
    params: records.RunParams
    pipeline_ref: str = ""  # where to load the pipeline from, for a process that has not
    run_timeout: float | None = None
    memory_limit_mb: int | None = None
    reuse: Mapping[str, Mapping[str, str]] | None = None  # {step: {output: uri}} to reuse
    step_timeouts: Mapping[str, float] | None = None  # seconds, by step name
    # The run's private working copy, made from ``source_root`` (the copy of its job's
    # snapshot its pipeline is loaded from) before its steps; None: no snapshot, the run
    # works where it was started. ``project_root``: the folder the snapshot was taken of.
    workdir: str | None = None
    source_root: str | None = None
    project_root: str | None = None
    data_dir: str | None = None  # the project's data folder, relative: linked into the copy
    # Environment variables for the run's process: where the engine's stores are, so a step
    # can make sub jobs in them whatever its working directory.
    env: Mapping[str, str] | None = None


class OutputStore(Protocol):
    def put(self, run_id: str, step: str, output: str, value: Any) -> tuple[str, int, str]:
        """Store one output value; returns (uri, size, serializer)."""
        ...

    def get(self, uri: str) -> Any:
        """Read back a value ``put`` stored."""
        ...

    def keep_file(self, run_id: str, step: str, path: pathlib.Path) -> str:
        """Keep a file a step made (an executed notebook) with the run; returns where."""
        ...


def run(
    pipeline: pipelines.PipelineDefinition,
    task: RunTask,
    writer: multiprocessing.connection.Connection,
    out_fd: int,
    outputs: OutputStore,
) -> None:
    """Execute ``task`` in this (freshly forked) process, reporting through ``writer``."""
    gc.freeze()  # the inherited objects: scanning them would copy their pages
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    if task.memory_limit_mb:
        limit = task.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            writer.send(message)

    if task.env:
        os.environ.update(task.env)
    if task.workdir is not None and task.source_root is not None:
        workdir = pathlib.Path(task.workdir)
        workspace.copy_tree(pathlib.Path(task.source_root), workdir)
        if task.data_dir is not None and task.project_root is not None:
            workspace.link_data(workdir, task.data_dir, pathlib.Path(task.project_root))
        workspace.enter(
            workspace.Workspace(
                workdir,
                pathlib.Path(task.source_root),
                pathlib.Path(task.project_root) if task.project_root else None,
            )
        )
    lines = capture.Capture(lambda batch: send(("log_lines", batch)))
    lines.install()
    observer = _Observer(task.run_id, send, outputs, lines)
    reused = {
        step: {output: outputs.get(uri) for output, uri in stored.items()}
        for step, stored in (task.reuse or {}).items()
    }
    runner.execute(
        pipeline,
        task.params,
        observer,
        run_id=task.run_id,
        job_id=task.job_id,
        keep_outputs=False,
        reused=reused,
    )
    lines.flush()
    send(("done",))
    writer.close()


class _Observer:
    """Reports the runner's events to the engine. A step's outputs go with its end, in one
    message: the engine records them together anyway."""

    def __init__(
        self,
        run_id: str,
        send: Callable[[tuple[Any, ...]], None],
        outputs: OutputStore,
        lines: capture.Capture,
    ) -> None:
        self.run_id = run_id
        self.send = send
        self.outputs = outputs
        self.lines = lines
        # Outputs stored by each running step (steps may run at once, on threads).
        self.stored: dict[str, list[tuple[Any, ...]]] = {}

    def step_started(self, step: str, at: float, *, attempt: int = 1) -> None:
        self.send(("step_started", step, at, attempt))

    def output_ready(self, step: str, output: str, value: Any) -> None:
        uri, size, serializer = self.outputs.put(self.run_id, step, output, value)
        message = ("output_stored", step, output, uri, size, serializer, time.time())
        self.stored.setdefault(step, []).append(message)

    def keep_file(self, step: str, path: pathlib.Path) -> str:
        return self.outputs.keep_file(self.run_id, step, path)

    def step_finished(
        self,
        step: str,
        state: states.StepState,
        at: float,
        error: boundary.UserError | None,
        *,
        attempt: int = 1,
    ) -> None:
        self.lines.flush()
        finished = ("step_finished", step, state.value, at, error, attempt)
        stored = self.stored.pop(step, None)
        self.send(("batch", [*stored, finished]) if stored else finished)


def describe_exit(status: int) -> str:
    """Say how a process ended, from a ``waitpid`` status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    code = os.WEXITSTATUS(status)
    if code == INTERNAL_ERROR:
        return f"exited with code {code} (a runyard error in the run's process; see its logs)"
    return f"exited with code {code}"
