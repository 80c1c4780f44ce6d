"""The local-processes executor: every run in its own OS process, forked from a warm one.

Runs are forked by a ``ForkServer`` (where the OS allows it; else by the engine itself), a
process that already imported the pipeline's module, so a run starts with one ``fork`` and
no interpreter start-up. An engine whose pipelines all load by reference launches a lean
server (a new interpreter without the store or the API); a foreground job, whose pipeline
may exist only in this process, forks its server from itself.

The run's process streams what happens back over a pipe; the engine is the only process
that talks to the store (through a ``RunListener``). Whatever a run's process does (raise,
``sys.exit``, ``os._exit``, segfault, exhaust its memory limit, loop past its timeout) ends
only that run.

A ``Session`` is the engine's side: start runs, poll them, stop them, for as long as a
worker lives; ``ProcessExecutor.execute`` drives one session for the foreground path. The
engine's loop is single-threaded on purpose: forking a process that has other threads can
copy a lock in a held state into the child.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from runyard import errors
from runyard.core import pipelines, states
from runyard.execution import boundary, capture, forkserver, loader, runprocess, workspace
from runyard.execution.runprocess import OutputStore, RunTask, describe_exit

__all__ = [
    "OutputStore",
    "ProcessExecutor",
    "ReferenceLoader",
    "RunListener",
    "RunTask",
    "Session",
    "describe_exit",
]

_HOST = socket.gethostname()
# Seconds a run's process may take to exit once it has reported all it did; then SIGKILL.
_EXIT_WITHIN = 10.0

# Which pipeline a run executes: the engine and the fork server each ask.
Resolver = Callable[[RunTask], pipelines.PipelineDefinition]


class ReferenceLoader:
    """A ``Resolver`` that loads a run's pipeline from its task alone: by the pipeline's
    reference, in the copy of its job's snapshot when it has one. What it loads it keeps, so
    a fork server that calls it before forking starts every later run of the pipeline warm.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, pipelines.PipelineDefinition] = {}

    def __call__(self, task: RunTask) -> pipelines.PipelineDefinition:
        """Raises ``LoadError`` when the pipeline cannot be loaded."""
        if task.source_root is not None:
            loader.use_source(task.source_root)  # the run imports its own snapshot's modules
            workspace.list_tree(pathlib.Path(task.source_root))  # runs then only copy
        return self.load(task.job_id, task.pipeline_ref)

    def load(self, job_id: str, reference: str) -> pipelines.PipelineDefinition:
        """Job ``job_id``'s pipeline, from ``reference``; raises ``LoadError``."""
        pipeline = self._loaded.get(reference)
        if pipeline is None:
            if not reference:
                raise errors.LoadError(
                    f"job {job_id} has no pipeline file on record (it was defined "
                    "interactively); only the process that created it can execute it"
                )
            pipeline = self._loaded[reference] = loader.load_pipeline(reference).pipeline
        return pipeline


def _run(
    resolve: Resolver, outputs: OutputStore, task: RunTask, message_fd: int, output_fd: int
) -> None:
    """A run's body as a fork server calls it, with the engine's descriptors."""
    writer = multiprocessing.connection.Connection(message_fd, readable=False)
    runprocess.run(resolve(task), task, writer, output_fd, outputs)


def _copy_ahead(task: RunTask) -> Callable[[], object] | None:
    """Work a spare does ahead for a run like ``task``: a working copy of the same snapshot
    beside where the run's would go, which the next such run takes by renaming it."""
    if task.workdir is None or task.source_root is None:
        return None
    return workspace.copy_ahead(pathlib.Path(task.source_root), pathlib.Path(task.workdir).parent)


def _reference_server(
    outputs: OutputStore,
) -> tuple[forkserver.RunBody, forkserver.Warm, forkserver.Ahead]:
    """The run body, warm-up and work ahead of a launched fork server: pipelines by
    reference."""
    resolve = ReferenceLoader()
    return functools.partial(_run, resolve, outputs), resolve, _copy_ahead


class RunListener(Protocol):
    """Told, in the engine, what each run's process reports; ``flush`` ends each batch."""

    def run_started(self, run_id: str, *, worker: str, at: float) -> None: ...

    def step_started(self, run_id: str, step: str, at: float, attempt: int = 1) -> None: ...

    def output_stored(
        self,
        run_id: str,
        step: str,
        output: str,
        uri: str,
        size: int,
        serializer: str,
        at: float,
    ) -> None: ...

    def step_finished(
        self,
        run_id: str,
        step: str,
        state: states.StepState,
        at: float,
        error: boundary.UserError | None,
        attempt: int = 1,
    ) -> None: ...

    def log_lines(self, run_id: str, lines: list[capture.Line]) -> None: ...

    def run_finished(
        self, run_id: str, *, at: float, problem: str | None, killed: bool = False
    ) -> None:
        """The run's process is gone; ``problem`` says how it died when it did not finish."""

    def flush(self, *, force: bool = False) -> None:
        """Write what was reported; without ``force`` it may wait to gather more."""


@dataclasses.dataclass(eq=False)
class _Child:
    task: RunTask
    pid: int | None  # None until the fork server says which process it forked
    conn: multiprocessing.connection.Connection
    out_fd: int
    deadline: float | None  # monotonic time its timeout kills it
    finished_normally: bool = False  # it reported all it did: its run has ended
    conn_open: bool = True
    current_step: str | None = None
    out_partial: bytes = b""
    timed_out: bool = False
    stop_reason: str | None = None  # set when it was stopped on purpose
    kill_at: float | None = None  # after a SIGTERM: when the grace period ends
    exit_fd: int | None = None  # a pidfd: readable once the process has exited (Linux)
    exited: bool = False
    via_server: bool = False  # forked by the fork server, which reports its exit status
    status: int | None = None  # its waitpid status, once known
    requested_at: float = 0.0  # when it was asked for (unix time)
    step_deadline: float | None = None  # monotonic time the running step's timeout ends
    step_timed_out: str | None = None  # the step whose timeout killed it

    @property
    def ended(self) -> bool:
        """Its process has exited (or, with neither a fork server nor a pidfd to say so,
        closed its end of the pipe)."""
        if self.via_server:
            return self.status is not None
        return self.exited if self.exit_fd is not None else not self.conn_open


class ProcessExecutor:
    """Runs up to ``max_parallel`` runs at once, each in a forked process.

    A run's ``run_timeout`` (seconds; the task's, else this default) kills its whole process
    group when exceeded; ``memory_limit_mb`` caps each run's address space, so a blow-up is a
    MemoryError in that run rather than the machine's OOM killer choosing a victim. With
    ``use_fork_server`` (where the OS allows) runs are forked by a ``ForkServer`` rather
    than by the engine.
    """

    supports_cancel = True

    def __init__(
        self,
        *,
        max_parallel: int,
        outputs: OutputStore,
        run_timeout: float | None = None,
        memory_limit_mb: int | None = None,
        use_fork_server: bool = True,
    ) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel={max_parallel} must be >= 1")
        self.max_parallel = max_parallel
        self.outputs = outputs
        self.run_timeout = run_timeout
        self.memory_limit_mb = memory_limit_mb
        self.use_fork_server = use_fork_server

    def session(
        self, resolve: Resolver, listener: RunListener, *, by_reference: bool = False
    ) -> Session:
        """Start executing (the fork server is started now); close the session when done.

        With ``by_reference`` every run's pipeline can be loaded by its task's reference
        (``ReferenceLoader``), so the fork server is a new, lean interpreter rather than a
        fork of this process; ``resolve`` then serves only the engine's own direct forks.
        """
        return Session(self, resolve, listener, by_reference=by_reference)

    def execute(
        self,
        pipeline: pipelines.PipelineDefinition,
        claim: Callable[[int], Sequence[RunTask]],
        listener: RunListener,
    ) -> None:
        """Run what ``claim(n)`` hands out until it hands out fewer than asked for.

        Returns when every started run has ended. On an interrupt (or any error in the
        engine) every running run's process group is killed and reported KILLED first.
        """
        with self.session(lambda task: pipeline, listener) as session:
            exhausted = False
            while True:
                free = session.free
                if free > 0 and not exhausted:
                    tasks = claim(free)
                    exhausted = len(tasks) < free
                    for task in tasks:
                        session.start(task, pipeline)
                if not session.running:
                    break
                session.poll(0.05)


class Session:
    """The engine's side of executing runs: start, poll, stop. Use it as a context
    manager: leaving it on an error kills every run still going and reports it KILLED."""

    def __init__(
        self,
        executor: ProcessExecutor,
        resolve: Resolver,
        listener: RunListener,
        *,
        by_reference: bool = False,
    ) -> None:
        self.executor = executor
        self.resolve = resolve
        self.listener = listener
        self.children: dict[str, _Child] = {}
        self._selector = selectors.DefaultSelector()
        self._server: forkserver.ForkServer | None = None
        if executor.use_fork_server and by_reference:
            self._server = forkserver.ForkServer.launch(
                functools.partial(_reference_server, executor.outputs), path=loader.plain_path()
            )
        elif executor.use_fork_server:
            self._server = forkserver.ForkServer.start(
                functools.partial(_run, resolve, executor.outputs), warm=resolve, ahead=_copy_ahead
            )
        self._early_exits: dict[int, int] = {}  # exits reported before their pid was bound
        if self._server is not None:
            self._selector.register(self._server.fileno(), selectors.EVENT_READ, None)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        try:
            if kind is not None:
                self.kill_all("run stopped: runyard was interrupted")
            else:
                self.listener.flush(force=True)
        finally:
            self.close()

    @property
    def running(self) -> int:
        """Runs started and not yet reaped (those whose process is exiting included)."""
        return len(self.children)

    @property
    def free(self) -> int:
        """Slots for more runs. A run that has reported all it did has ended (the listener
        was told): its slot is free while its process exits and is reaped."""
        working = sum(not c.finished_normally for c in self.children.values())
        return self.executor.max_parallel - working

    def start(self, task: RunTask, pipeline: pipelines.PipelineDefinition) -> None:
        """Fork a process for ``task`` running ``pipeline``."""
        child = self._spawn(task, pipeline)
        self.children[task.run_id] = child
        self._selector.register(child.conn, selectors.EVENT_READ, child)
        self._selector.register(child.out_fd, selectors.EVENT_READ, child)
        if child.exit_fd is not None:
            self._selector.register(child.exit_fd, selectors.EVENT_READ, child)
        if child.pid is not None:
            self.listener.run_started(task.run_id, worker=f"{_HOST}:{child.pid}", at=time.time())

    def poll(self, timeout: float) -> None:
        """Handle what the runs report for up to ``timeout`` seconds; reap the ended ones."""
        if not self.children:
            time.sleep(timeout)
            self.listener.flush()
            return
        for key, _ in self._selector.select(self._timeout(timeout)):
            # An earlier event of this batch may have closed this descriptor.
            child = key.data
            if child is None:
                pass  # the fork server's reports: read below, every time
            elif child.conn_open and key.fileobj is child.conn:
                self._read_messages(child)
            elif key.fd == child.exit_fd:
                child.exited = True
            elif key.fd == child.out_fd:
                # Messages first: the step_started sent before these bytes says whose
                # they are.
                if child.conn_open:
                    self._read_messages(child)
                self._read_output(child)
        if self._server is not None:
            # Every time, not only when its socket is readable: a wait for one run's pid
            # may already have read other reports off the socket.
            self._note_server()
        self._enforce_deadlines()
        for child in [c for c in self.children.values() if c.ended]:
            self._reap(child)
        self.listener.flush()

    def stop(self, run_id: str, *, grace: float, reason: str = "stopped by request") -> bool:
        """SIGTERM a run's process group, and SIGKILL it after ``grace`` seconds; it is
        reported KILLED with ``reason``. False when the run is not running here."""
        child = self.children.get(run_id)
        if child is None or child.stop_reason is not None or child.finished_normally:
            return False
        self._ensure_pid(child)
        child.stop_reason = reason
        child.kill_at = time.monotonic() + grace
        _signal_group(child.pid, signal.SIGTERM)
        return True

    def kill_all(self, reason: str) -> None:
        """SIGKILL every run now and report each KILLED with ``reason``."""
        for child in self.children.values():
            self._ensure_pid(child)
            if not child.finished_normally:
                child.stop_reason = child.stop_reason or reason
            _signal_group(child.pid, signal.SIGKILL)
        for child in list(self.children.values()):
            self._reap(child)
        self.listener.flush(force=True)

    def close(self) -> None:
        self._selector.close()
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- internals ---------------------------------------------------------------------

    def _spawn(self, task: RunTask, pipeline: pipelines.PipelineDefinition) -> _Child:
        reader, writer = multiprocessing.Pipe(duplex=False)
        out_r, out_w = os.pipe()
        os.set_blocking(out_r, False)
        timeout = task.run_timeout or self.executor.run_timeout
        deadline = time.monotonic() + timeout if timeout else None
        if task.memory_limit_mb is None and self.executor.memory_limit_mb:
            task = dataclasses.replace(task, memory_limit_mb=self.executor.memory_limit_mb)
        if self._server is not None:
            self._server.request(task.run_id, task, writer.fileno(), out_w)
            writer.close()
            os.close(out_w)
            return _Child(
                task, None, reader, out_r, deadline, via_server=True, requested_at=time.time()
            )
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the run's process; never returns

            def child() -> None:
                reader.close()
                os.close(out_r)
                runprocess.run(pipeline, task, writer, out_w, self.executor.outputs)

            forkserver.exit_after(child)
        writer.close()
        os.close(out_w)
        with contextlib.suppress(OSError):  # the child did it first, or is already gone
            os.setpgid(pid, pid)
        return _Child(task, pid, reader, out_r, deadline, exit_fd=_pidfd(pid))

    def _timeout(self, most: float) -> float:
        """Wake by the next deadline, and at least every ``most`` seconds (so the listener
        can flush what it holds)."""
        ends = [c.deadline for c in self.children.values() if c.deadline is not None]
        ends += [c.step_deadline for c in self.children.values() if c.step_deadline]
        ends += [c.kill_at for c in self.children.values() if c.kill_at is not None]
        if not ends:
            return most
        return max(0.0, min(most, min(ends) - time.monotonic()))

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.deadline is not None and now >= child.deadline and not child.timed_out:
                self._ensure_pid(child)
                child.timed_out = True
                _signal_group(child.pid, signal.SIGKILL)
            if child.step_deadline is not None and now >= child.step_deadline:
                self._ensure_pid(child)
                child.step_deadline = None
                child.step_timed_out = child.current_step
                _signal_group(child.pid, signal.SIGKILL)
            if child.kill_at is not None and now >= child.kill_at:
                child.kill_at = None
                _signal_group(child.pid, signal.SIGKILL)

    def _note_server(self) -> None:
        """Take the fork server's reports: which process each run got, which exited."""
        assert self._server is not None
        spawned, exits = self._server.reports()
        for run_id, pid in spawned.items():
            child = self.children.get(run_id)
            if child is not None and child.pid is None:
                self._bind(child, pid)
        by_pid = {c.pid: c for c in self.children.values() if c.pid is not None}
        for pid, status in exits:
            child = by_pid.get(pid)
            if child is not None:
                child.status = status
            else:  # its pid is known only to a report not read yet
                self._early_exits[pid] = status

    def _ensure_pid(self, child: _Child) -> None:
        """Know the run's process before acting on it or reporting what it sent: the
        listener hears that a run started before anything the run says."""
        if child.pid is None:
            assert self._server is not None
            self._bind(child, self._server.wait_spawned(child.task.run_id))

    def _bind(self, child: _Child, pid: int) -> None:
        child.pid = pid
        if pid in self._early_exits:
            child.status = self._early_exits.pop(pid)
        self.listener.run_started(child.task.run_id, worker=f"{_HOST}:{pid}", at=child.requested_at)

    def _read_messages(self, child: _Child) -> None:
        self._ensure_pid(child)
        try:
            while child.conn.poll():
                message = child.conn.recv()
                if message[0] == "batch":
                    for part in message[1]:
                        self._handle(child, part)
                else:
                    self._handle(child, message)
        except (EOFError, OSError):
            self._selector.unregister(child.conn)
            child.conn.close()
            child.conn_open = False

    def _handle(self, child: _Child, message: tuple[Any, ...]) -> None:
        """One message of a run's process."""
        run_id = child.task.run_id
        listener = self.listener
        kind = message[0]
        if kind == "step_finished" and child.out_fd != -1:
            # Bytes written straight to fds 1/2 before a step finished are that step's;
            # the runner writes nothing between steps.
            self._read_output(child)
        if kind == "step_started":
            child.current_step = message[1]
            limit = (child.task.step_timeouts or {}).get(message[1])
            child.step_deadline = time.monotonic() + limit if limit else None
            listener.step_started(run_id, message[1], message[2], message[3])
        elif kind == "step_finished":
            child.current_step = None
            child.step_deadline = None
            listener.step_finished(
                run_id,
                message[1],
                states.StepState(message[2]),
                message[3],
                message[4],
                message[5],
            )
        elif kind == "output_stored":
            listener.output_stored(run_id, *message[1:])
        elif kind == "log_lines":
            listener.log_lines(run_id, message[1])
        elif kind == "done":
            self._ended(child)

    def _ended(self, child: _Child) -> None:
        """The run reported all it did: it has ended, whatever becomes of its process now
        (it only exits). Report it, so its slot serves the next run at once; the process is
        reaped, and what it left behind killed, when it is gone."""
        self._read_output(child)  # what it wrote straight to fds 1/2 is its run's
        child.finished_normally = True
        child.deadline = child.step_deadline = None  # its timeouts no longer apply
        child.kill_at = time.monotonic() + _EXIT_WITHIN  # an exit never takes this long
        self.listener.run_finished(child.task.run_id, at=time.time(), problem=None)

    def _read_output(self, child: _Child) -> None:
        """Bytes the run's process wrote straight to fds 1 and 2 (C code, faulthandler)."""
        if child.out_fd == -1:
            return
        self._ensure_pid(child)
        chunks = []
        while True:
            try:
                data = os.read(child.out_fd, 65536)
            except BlockingIOError:
                break
            if not data:
                self._selector.unregister(child.out_fd)
                os.close(child.out_fd)
                child.out_fd = -1
                break
            chunks.append(data)
        if not chunks and child.out_fd != -1:
            return
        text = child.out_partial + b"".join(chunks)
        lines = text.split(b"\n")
        child.out_partial = lines.pop() if child.out_fd != -1 else b""
        if child.out_fd == -1 and lines and lines[-1] == b"":
            lines.pop()
        now = time.time()
        out: list[capture.Line] = [
            (child.current_step, "output", now, None, line.decode(errors="replace"))
            for line in lines
        ]
        if out:
            self.listener.log_lines(child.task.run_id, out)

    def _reap(self, child: _Child) -> None:
        self._ensure_pid(child)
        assert child.pid is not None
        if not child.via_server:
            _, status = os.waitpid(child.pid, 0)
        elif child.status is not None:
            status = child.status
        else:  # killed just now: the fork server reaps it and says so
            assert self._server is not None
            found = self._server.wait_exit(child.pid, 5.0)
            status = signal.SIGKILL if found is None else found
        if child.conn_open:  # what it sent just before exiting; a grandchild may hold it open
            self._read_messages(child)
        if child.conn_open:
            self._selector.unregister(child.conn)
            child.conn.close()
            child.conn_open = False
        if child.exit_fd is not None:
            self._selector.unregister(child.exit_fd)
            os.close(child.exit_fd)
            child.exit_fd = None
        if child.out_fd != -1:
            self._read_output(child)
            if child.out_fd != -1:
                self._selector.unregister(child.out_fd)
                os.close(child.out_fd)
                child.out_fd = -1
        _signal_group(child.pid, signal.SIGKILL)  # anything the run started and left behind
        del self.children[child.task.run_id]
        if child.finished_normally:
            return  # its end was reported when it said it was done
        problem = None
        killed = child.stop_reason is not None
        if killed:
            problem = child.stop_reason
        elif child.step_timed_out is not None:
            limit = (child.task.step_timeouts or {})[child.step_timed_out]
            problem = f"step {child.step_timed_out!r} timed out after {limit:g} s"
        elif child.timed_out:
            timeout = child.task.run_timeout or self.executor.run_timeout or 0
            problem = f"run timed out after {timeout:g} s"
        else:
            problem = f"run process {describe_exit(status)}"
        self.listener.run_finished(
            child.task.run_id, at=time.time(), problem=problem, killed=killed
        )


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits, where the OS has them."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _signal_group(pid: int | None, sig: signal.Signals) -> None:
    if pid is None:  # callers make sure it is known; a run not forked has nothing to kill
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
