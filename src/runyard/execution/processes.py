"""The local-processes executor: every run in its own OS process, forked from a warm parent.

The parent has already imported the pipeline's module, so a run starts with one ``fork``
rather than a new interpreter. The child runs the steps and streams what happens back over a
pipe; the parent is the only process that talks to the store (through a ``RunListener``).
Whatever the child does (raise, ``sys.exit``, ``os._exit``, segfault, exhaust its memory
limit, loop forever past its timeout) ends only that run.

The parent loop is single-threaded on purpose: forking a process that has other threads
can copy a lock in a held state into the child.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import functools
import gc
import multiprocessing
import multiprocessing.connection
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from runyard.core import pipelines, records, states
from runyard.execution import boundary, capture, forkserver, runner

__all__ = ["OutputStore", "ProcessExecutor", "RunListener", "RunTask", "describe_exit"]

_HOST = socket.gethostname()
_CHILD_INTERNAL_ERROR = 70


@dataclasses.dataclass(frozen=True, slots=True)
class RunTask:
    run_id: str
    job_id: str
    params: records.RunParams


class OutputStore(Protocol):
    def put(self, run_id: str, step: str, output: str, value: Any) -> tuple[str, int, str]:
        """Store one output value; returns (uri, size, serializer)."""
        ...


class RunListener(Protocol):
    """Told, in the parent, what each run's process reports; ``flush`` ends each batch."""

    def run_started(self, run_id: str, *, worker: str, at: float) -> None: ...

    def step_started(self, run_id: str, step: str, at: float) -> None: ...

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
    pid: int
    conn: multiprocessing.connection.Connection
    out_fd: int
    started: float
    deadline: float | None
    finished_normally: bool = False
    conn_open: bool = True
    current_step: str | None = None
    out_partial: bytes = b""
    timed_out: bool = False
    exit_fd: int | None = None  # a pidfd: readable once the process has exited (Linux)
    exited: bool = False
    via_server: bool = False  # forked by the fork server, which reports its exit status
    status: int | None = None  # its waitpid status, once known

    @property
    def ended(self) -> bool:
        """Its process has exited (or, with neither a fork server nor a pidfd to say so,
        closed its end of the pipe)."""
        if self.via_server:
            return self.status is not None
        return self.exited if self.exit_fd is not None else not self.conn_open


class ProcessExecutor:
    """Runs up to ``max_parallel`` runs at once, each in a forked process.

    ``run_timeout`` (seconds) kills a run's whole process group when exceeded;
    ``memory_limit_mb`` caps each run's address space, so a blow-up is a MemoryError in
    that run rather than the machine's OOM killer choosing a victim. With
    ``use_fork_server`` (where the OS allows) runs are forked by a ``ForkServer`` rather
    than by the process calling ``execute``.
    """

    supports_cancel = False

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
        self._server: forkserver.ForkServer | None = None

    def execute(
        self,
        pipeline: pipelines.PipelineDefinition,
        claim: Callable[[int], Sequence[RunTask]],
        listener: RunListener,
    ) -> None:
        """Run what ``claim(n)`` hands out until it hands out fewer than asked for.

        Returns when every started run has ended. On an interrupt (or any error in the
        parent) every running run's process group is killed and reported KILLED first.
        """
        selector = selectors.DefaultSelector()
        children: dict[int, _Child] = {}
        exhausted = False
        server = self._server = (
            forkserver.ForkServer.start(functools.partial(self._child_from_fds, pipeline))
            if self.use_fork_server
            else None
        )
        if server is not None:
            selector.register(server.fileno(), selectors.EVENT_READ, None)
        try:
            while True:
                free = self.max_parallel - len(children)
                if free > 0 and not exhausted:
                    tasks = claim(free)
                    exhausted = len(tasks) < free
                    for task in tasks:
                        child = self._spawn(pipeline, task)
                        children[child.pid] = child
                        selector.register(child.conn, selectors.EVENT_READ, child)
                        selector.register(child.out_fd, selectors.EVENT_READ, child)
                        if child.exit_fd is not None:
                            selector.register(child.exit_fd, selectors.EVENT_READ, child)
                        listener.run_started(
                            task.run_id, worker=f"{_HOST}:{child.pid}", at=time.time()
                        )
                    if server is not None and tasks:
                        _note_exits(server, children)
                if not children:
                    break
                for key, _ in selector.select(self._select_timeout(children)):
                    # An earlier event of this batch may have closed this descriptor.
                    child = key.data
                    if child is None:
                        assert server is not None
                        _note_exits(server, children)
                    elif child.conn_open and key.fileobj is child.conn:
                        self._read_messages(child, listener, selector)
                    elif key.fd == child.exit_fd:
                        child.exited = True
                    elif key.fd == child.out_fd:
                        # Messages first: the step_started sent before these bytes says
                        # whose they are.
                        if child.conn_open:
                            self._read_messages(child, listener, selector)
                        self._read_output(child, listener, selector)
                self._enforce_deadlines(children)
                for child in [c for c in children.values() if c.ended]:
                    self._reap(child, listener, selector)
                    del children[child.pid]
                listener.flush()
            listener.flush(force=True)
        except BaseException:
            for child in children.values():
                _kill_group(child.pid)
            for child in children.values():
                self._reap(child, listener, selector, killed=True)
            listener.flush(force=True)
            raise
        finally:
            selector.close()
            if server is not None:
                server.close()
            self._server = None

    # -- parent side -------------------------------------------------------------------

    def _spawn(self, pipeline: pipelines.PipelineDefinition, task: RunTask) -> _Child:
        reader, writer = multiprocessing.Pipe(duplex=False)
        out_r, out_w = os.pipe()
        os.set_blocking(out_r, False)
        now = time.monotonic()
        deadline = now + self.run_timeout if self.run_timeout else None
        if self._server is not None:
            pid = self._server.spawn(task, writer.fileno(), out_w)
            writer.close()
            os.close(out_w)
            return _Child(task, pid, reader, out_r, now, deadline, via_server=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the run's process; never returns
            code = _CHILD_INTERNAL_ERROR
            try:
                reader.close()
                os.close(out_r)
                self._child(pipeline, task, writer, out_w)
                code = 0
            except BaseException:
                try:
                    import traceback

                    os.write(2, traceback.format_exc().encode(errors="replace"))
                except BaseException:
                    pass
            finally:
                os._exit(code)
        writer.close()
        os.close(out_w)
        with contextlib.suppress(OSError):  # the child did it first, or is already gone
            os.setpgid(pid, pid)
        return _Child(task, pid, reader, out_r, now, deadline, exit_fd=_pidfd(pid))

    def _select_timeout(self, children: dict[int, _Child]) -> float:
        """Wake at least every 50 ms, so the listener can flush what it holds."""
        deadlines = [c.deadline for c in children.values() if c.deadline is not None]
        if not deadlines:
            return 0.05
        return max(0.0, min(0.05, min(deadlines) - time.monotonic()))

    def _enforce_deadlines(self, children: dict[int, _Child]) -> None:
        now = time.monotonic()
        for child in children.values():
            if child.deadline is not None and now >= child.deadline and not child.timed_out:
                child.timed_out = True
                _kill_group(child.pid)

    def _read_messages(
        self, child: _Child, listener: RunListener, selector: selectors.BaseSelector
    ) -> None:
        run_id = child.task.run_id
        try:
            while child.conn.poll():
                message = child.conn.recv()
                kind = message[0]
                if kind == "step_finished" and child.out_fd != -1:
                    # Bytes written straight to fds 1/2 before a step finished are that
                    # step's; the runner writes nothing between steps.
                    self._read_output(child, listener, selector)
                if kind == "step_started":
                    child.current_step = message[1]
                    listener.step_started(run_id, message[1], message[2])
                elif kind == "step_finished":
                    child.current_step = None
                    listener.step_finished(
                        run_id, message[1], states.StepState(message[2]), message[3], message[4]
                    )
                elif kind == "output_stored":
                    listener.output_stored(run_id, *message[1:])
                elif kind == "log_lines":
                    listener.log_lines(run_id, message[1])
                elif kind == "done":
                    child.finished_normally = True
        except (EOFError, OSError):
            selector.unregister(child.conn)
            child.conn.close()
            child.conn_open = False

    def _read_output(
        self, child: _Child, listener: RunListener, selector: selectors.BaseSelector
    ) -> None:
        """Bytes the run's process wrote straight to fds 1 and 2 (C code, faulthandler)."""
        if child.out_fd == -1:
            return
        chunks = []
        while True:
            try:
                data = os.read(child.out_fd, 65536)
            except BlockingIOError:
                break
            if not data:
                selector.unregister(child.out_fd)
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
            listener.log_lines(child.task.run_id, out)

    def _reap(
        self,
        child: _Child,
        listener: RunListener,
        selector: selectors.BaseSelector,
        *,
        killed: bool = False,
    ) -> None:
        if not child.via_server:
            _, status = os.waitpid(child.pid, 0)
        elif child.status is not None:
            status = child.status
        else:  # killed just now: the fork server reaps it and says so
            assert self._server is not None
            status = self._server.wait_exit(child.pid, 5.0) or signal.SIGKILL
        if child.conn_open:  # what it sent just before exiting; a grandchild may hold it open
            self._read_messages(child, listener, selector)
        if child.conn_open:
            selector.unregister(child.conn)
            child.conn.close()
            child.conn_open = False
        if child.exit_fd is not None:
            selector.unregister(child.exit_fd)
            os.close(child.exit_fd)
            child.exit_fd = None
        if child.out_fd != -1:
            self._read_output(child, listener, selector)
            if child.out_fd != -1:
                selector.unregister(child.out_fd)
                os.close(child.out_fd)
                child.out_fd = -1
        _kill_group(child.pid)  # anything the run started and left behind
        problem = None
        if killed:
            problem = "run stopped: runyard was interrupted"
        elif child.timed_out:
            problem = f"run timed out after {self.run_timeout:g} s"
        elif not child.finished_normally or status != 0:
            problem = f"run process {describe_exit(status)}"
        listener.run_finished(child.task.run_id, at=time.time(), problem=problem, killed=killed)

    # -- child side --------------------------------------------------------------------

    def _child_from_fds(
        self,
        pipeline: pipelines.PipelineDefinition,
        task: RunTask,
        message_fd: int,
        output_fd: int,
    ) -> None:
        """The run's body as the fork server calls it, with the engine's descriptors."""
        writer = multiprocessing.connection.Connection(message_fd, readable=False)
        self._child(pipeline, task, writer, output_fd)

    def _child(
        self,
        pipeline: pipelines.PipelineDefinition,
        task: RunTask,
        writer: multiprocessing.connection.Connection,
        out_fd: int,
    ) -> None:
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
        if self.memory_limit_mb:
            limit = self.memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        lock = threading.Lock()

        def send(message: tuple[Any, ...]) -> None:
            with lock:
                writer.send(message)

        lines = capture.Capture(lambda batch: send(("log_lines", batch)))
        lines.install()
        observer = _ChildObserver(task.run_id, send, self.outputs, lines)
        runner.execute(
            pipeline,
            task.params,
            observer,
            run_id=task.run_id,
            job_id=task.job_id,
            keep_outputs=False,
        )
        lines.flush()
        send(("done",))
        writer.close()


class _ChildObserver:
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

    def step_started(self, step: str, at: float) -> None:
        self.send(("step_started", step, at))

    def output_ready(self, step: str, output: str, value: Any) -> None:
        uri, size, serializer = self.outputs.put(self.run_id, step, output, value)
        self.send(("output_stored", step, output, uri, size, serializer, time.time()))

    def step_finished(
        self, step: str, state: states.StepState, at: float, error: boundary.UserError | None
    ) -> None:
        self.lines.flush()
        self.send(("step_finished", step, state.value, at, error))


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
    if code == _CHILD_INTERNAL_ERROR:
        return f"exited with code {code} (a runyard error in the run's process; see its logs)"
    return f"exited with code {code}"


def _note_exits(server: forkserver.ForkServer, children: dict[int, _Child]) -> None:
    for pid, status in server.exits():
        child = children.get(pid)
        if child is not None:
            child.status = status


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits, where the OS has them."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
