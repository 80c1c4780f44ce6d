"""A fork server: one process, started before any run, that forks every run on request.

Forking each run straight from the engine costs the engine the fork itself and, while the
run lives, a copy-on-write fault for every page the engine then writes. A fork server takes
both off the engine's path: it holds the imported pipeline, never writes its own pages, has
no threads, and forks runs as the engine asks. The engine passes each run the two
descriptors it reads from (``socket.send_fds``), so the run talks to the engine directly;
the server reports each run's pid when forked and its exit status when reaped.

There are two ways to start one. ``ForkServer.start`` forks the engine: the server then
holds whatever the engine holds, a pipeline defined interactively included. ``ForkServer.
launch`` starts a new interpreter that imports only what runs need (no SQLAlchemy, no web
server, no CLI): a run's process then starts and ends with a third of the memory mapped,
which is most of what a short run costs. It serves pipelines that can be loaded by their
reference, which is what the long-running engines execute.

The server keeps one *spare* forked ahead: a process that has done what every run does
right after its fork, and the work ``ahead`` does for a run like the last one (its working
copy, say), and waits for a run. A request is then handed to the spare, and the server
forks the next spare while the run goes on, so neither the fork nor that work delays a run.
A request whose ``warm`` loads something new (a pipeline the spare was forked without) is
served by a fresh fork instead, and the spare is let go.

Linux (and any OS with ``SOCK_SEQPACKET`` Unix sockets): elsewhere ``ForkServer.start``
returns None and the executor forks runs itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["ForkServer", "exit_after"]

# Runs a run in the forked process: (what to run, message fd, output fd). Must not return
# into the server's loop: the server calls os._exit after it.
RunBody = Callable[[Any, int, int], None]
# Runs in the server before each fork (loading the run's pipeline, say); what it returns
# is the thing loaded: something it never returned before means a spare forked earlier
# lacks it.
Warm = Callable[[Any], object]
# Runs in a spare with the last run's task, before the spare waits for its own: work a run
# like it would do first. Returns a call that undoes it, for a spare let go unused.
Ahead = Callable[[Any], Callable[[], object] | None]
# Called once in a launched server: its run body, warm-up and work ahead. Pickled by
# reference, so a module-level function (or a functools.partial of one with picklable
# arguments).
Setup = Callable[[], tuple[RunBody, Warm | None, Ahead | None]]

_INTERNAL_ERROR = 70
_MAX_MESSAGE = 1 << 20


class ForkServer:
    """The engine's handle on its fork server."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self._exits: list[tuple[int, int]] = []
        self._spawned: dict[str, int] = {}
        self._gone = False

    @classmethod
    def start(
        cls, body: RunBody, warm: Warm | None = None, ahead: Ahead | None = None
    ) -> ForkServer | None:
        """Fork the server now; None where this OS cannot pass descriptors this way.

        ``warm(task)`` runs in the server before each fork (loading the run's pipeline,
        say), so what it loads is there, already, in every later run's process.
        ``ahead(task)`` runs in each spare with the last task (see the module's doc).
        """
        if not hasattr(socket, "SOCK_SEQPACKET") or not hasattr(socket, "send_fds"):
            return None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        pid = os.fork()
        if pid == 0:  # the server; never returns

            def server() -> None:
                ours.close()
                _serve(theirs, body, warm, ahead)

            exit_after(server)
        theirs.close()
        return cls(pid, ours)

    @classmethod
    def launch(cls, setup: Setup, *, path: list[str]) -> ForkServer | None:
        """Start the server as a new interpreter (this one's executable and environment,
        ``path`` as its ``sys.path``) that calls ``setup()`` for its run body and warm-up;
        None where this OS cannot pass descriptors this way.

        Never waits for the interpreter to start: requests wait in the socket until it
        serves them. The server is its own process group, so a Ctrl-C meant for the engine
        does not reach it while it starts; it stops, killing its runs, when the engine's
        end of the socket closes.
        """
        if not hasattr(socket, "SOCK_SEQPACKET") or not hasattr(socket, "send_fds"):
            return None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        try:
            theirs.set_inheritable(True)
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                os.environ,
                setpgroup=0,
            )
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        # sys.path first, on its own: unpickling ``setup`` may import from it.
        ours.send(pickle.dumps(path))
        ours.send(pickle.dumps(setup))
        return cls(pid, ours)

    def fileno(self) -> int:
        """Readable when reports wait: then call ``reports``."""
        return self.sock.fileno()

    def request(self, key: str, task: Any, message_fd: int, output_fd: int) -> None:
        """Ask for a run of ``task`` writing to the two descriptors; never waits for the
        fork. Its pid comes later, under ``key``, from ``reports`` or ``wait_spawned``.

        The caller keeps its own copies of the descriptors and should close them.
        """
        socket.send_fds(self.sock, [pickle.dumps((key, task))], [message_fd, output_fd])

    def reports(self) -> tuple[dict[str, int], list[tuple[int, int]]]:
        """Every report since the last call, read in one go and never blocking: the pid of
        each run forked, by key, and (pid, waitpid status) of each run reaped. Read
        together, so a run's exit never arrives before the pid it belongs to."""
        self._drain(block=False)
        spawned, self._spawned = self._spawned, {}
        exits, self._exits = self._exits, []
        return spawned, exits

    def wait_spawned(self, key: str, timeout: float = 60.0) -> int:
        """Block until the run requested under ``key`` has been forked; its pid.

        Raises ``RuntimeError`` when the server has gone or has not answered in ``timeout``
        seconds (a fork takes milliseconds).
        """
        deadline = time.monotonic() + timeout
        while key not in self._spawned:
            remaining = deadline - time.monotonic()
            if self._gone or remaining <= 0:
                raise RuntimeError(
                    f"the fork server did not start run {key}: "
                    + ("it has stopped" if self._gone else f"no answer in {timeout:g} s")
                )
            select.select([self.sock], [], [], remaining)
            self._drain(block=False)
        return self._spawned.pop(key)

    def wait_exit(self, pid: int, timeout: float) -> int | None:
        """Block until run ``pid`` is reaped; its status, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for index, (found, status) in enumerate(self._exits):
                if found == pid:
                    del self._exits[index]
                    return status
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._gone:
                return None
            select.select([self.sock], [], [], remaining)
            self._drain(block=False)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server (it kills any run still going) and reap it; kill it if it has
        not gone in ``timeout`` seconds."""
        with contextlib.suppress(OSError):
            self.sock.close()
        deadline = time.monotonic() + timeout
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.002)

    def _drain(self, *, block: bool) -> bool:
        """Read the server's reports: all that wait, and with ``block`` at least one.
        False once the server has gone."""
        while (message := self._receive(block=block)) is not None:
            if message[0] == "spawned":
                self._spawned[message[1]] = message[2]
            else:
                self._exits.append((message[1], message[2]))
            block = False
        return not self._gone

    def _receive(self, *, block: bool) -> tuple[Any, ...] | None:
        if self._gone:
            return None
        self.sock.setblocking(block)
        try:
            data = self.sock.recv(_MAX_MESSAGE)
        except BlockingIOError:
            return None
        except OSError:  # reset: it died with requests unread
            data = b""
        finally:
            self.sock.setblocking(True)
        if not data:
            self._gone = True
            return None
        message: tuple[Any, ...] = pickle.loads(data)
        return message


# What a launched server runs: as little as possible before ``_launched`` takes over.
_BOOT = "import runyard.execution.forkserver as f; f._launched()"


def _launched() -> None:
    """The main of a server started by ``ForkServer.launch``; never returns."""

    def main() -> None:
        sock = socket.socket(fileno=int(sys.argv[1]))
        sys.argv[1:] = []
        sys.path[:] = pickle.loads(sock.recv(_MAX_MESSAGE))
        setup: Setup = pickle.loads(sock.recv(_MAX_MESSAGE))
        body, warm, ahead = setup()
        _serve(sock, body, warm, ahead)

    exit_after(main)


class _Spare:
    """A process forked ahead of the run it will be, waiting on ``sock`` for its task."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    def hand(self, data: bytes, fds: list[int]) -> bool:
        """Give it a run (the request as it came, with its descriptors); False when it has
        gone (then it serves nobody, and the run is forked afresh)."""
        try:
            socket.send_fds(self.sock, [data], fds)
        except OSError:
            return False
        finally:
            self.sock.close()
        return True

    def let_go(self) -> None:
        """Tell it no run is coming (it undoes its work ahead and exits; reaped later)."""
        with contextlib.suppress(OSError):
            self.sock.close()


def _serve(sock: socket.socket, body: RunBody, warm: Warm | None, ahead: Ahead | None) -> None:
    """The server's loop: hand each request to the spare (or fork one), report each run's
    pid and exit status, and keep a spare ready."""
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    try:
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        wait = None
    except ValueError:  # not the main thread: poll for exits instead
        wait = 0.005
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    death_signal = _death_signal()
    server = os.getpid()
    own_fds = [sock.fileno(), wake_r, wake_w, selector.fileno()]
    runs: set[int] = set()
    spare: _Spare | None = None
    spares: set[int] = set()  # spares forked and not yet reaped, used or not
    last: Any = None  # the last task: the next one is most likely like it
    want_spare = False  # set by each request; a spare that dies waiting is not replaced
    loaded: set[int] = set()  # ids of what ``warm`` returned (kept alive by ``warm``)

    def fork_run(task: Any, fds: list[int]) -> int:
        pid = os.fork()
        if pid == 0:  # the run
            _child(server, death_signal, own_fds, lambda: body(task, fds[0], fds[1]))
        return pid

    def fork_spare(hint: Any) -> _Spare | None:
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        pid = os.fork()
        if pid == 0:  # the spare
            ours.close()
            _child(server, death_signal, own_fds, lambda: _wait_as_spare(theirs, body, ahead, hint))
        theirs.close()
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        spares.add(pid)
        return _Spare(pid, ours)

    try:
        while True:
            for key, _ in selector.select(wait):
                if key.fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 512):
                            pass
                    continue
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 2)
                if not data:  # the engine has gone: nobody would record what runs do
                    for pid in runs:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(pid, signal.SIGKILL)
                    for pid in runs:
                        with contextlib.suppress(ChildProcessError):
                            os.waitpid(pid, 0)
                    return
                run_key, task = pickle.loads(data)
                if warm is not None:
                    with contextlib.suppress(Exception):  # the run itself will say what failed
                        found = id(warm(task))
                        if found not in loaded:  # new here: a spare forked before lacks it
                            loaded.add(found)
                            if spare is not None:
                                spare.let_go()
                                spare = None
                pid = 0
                if spare is not None:
                    if spare.hand(data, list(fds)):
                        pid = spare.pid
                    spare = None
                if not pid:
                    pid = fork_run(task, list(fds))
                    with contextlib.suppress(OSError):  # the run does it too; whoever is first
                        os.setpgid(pid, pid)
                for fd in fds:
                    os.close(fd)
                runs.add(pid)
                sock.send(pickle.dumps(("spawned", run_key, pid)))
                last = task
                want_spare = True
            while runs or spares:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                spares.discard(pid)
                if spare is not None and pid == spare.pid:  # it died waiting
                    spare.let_go()
                    spare = None
                if pid in runs:
                    runs.discard(pid)
                    sock.send(pickle.dumps(("exit", pid, status)))
            if want_spare and spare is None:
                want_spare = False
                spare = fork_spare(last)
    finally:
        if spare is not None:
            spare.let_go()
        for pid in spares - runs:  # let go: each undoes its work ahead and exits
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _child(
    server: int,
    death_signal: Callable[[], object] | None,
    fds: list[int],
    then: Callable[[], object],
) -> None:
    """In a process just forked from the server: leave the server's ways and descriptors
    behind, then ``then()``; never returns."""

    def child() -> None:
        _die_with(server, death_signal)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        then()

    exit_after(child)


def exit_after(then: Callable[[], object]) -> NoReturn:
    """End this (forked or launched) process once ``then()`` returns: exit code 0, or 70
    with the traceback on fd 2 when it raised. Never returns into the caller, whose stack
    is the parent's."""
    code = _INTERNAL_ERROR
    try:
        then()
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            os.write(2, traceback.format_exc().encode(errors="replace"))
    finally:
        os._exit(code)


def _wait_as_spare(sock: socket.socket, body: RunBody, ahead: Ahead | None, hint: Any) -> None:
    """A spare's life: work ahead for a run like ``hint``, wait for a run, be it."""
    undo = None
    if ahead is not None:
        with contextlib.suppress(Exception):  # the run itself does what was not done
            undo = ahead(hint)
    try:
        data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 2)
    except OSError:
        data, fds = b"", []
    sock.close()
    if not data:  # let go
        if undo is not None:
            undo()
        return
    _, task = pickle.loads(data)
    body(task, fds[0], fds[1])


def _death_signal() -> Callable[[], object] | None:
    """A call that has the kernel SIGKILL the calling process when its parent dies (Linux's
    ``prctl(PR_SET_PDEATHSIG, SIGKILL)``), or None where there is none.

    Looked up once, in the server: loading the C library in every run's process cost it
    about a millisecond and a hundred copy-on-write faults.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _die_with(parent: int, death_signal: Callable[[], object] | None) -> None:
    """Have the kernel SIGKILL this process if ``parent`` dies (Linux): should the fork
    server itself be killed, it cannot stop its runs, and they must not live on unseen."""
    if death_signal is not None:
        with contextlib.suppress(Exception):
            death_signal()
    if os.getppid() != parent:  # it died before the request took hold
        os._exit(_INTERNAL_ERROR)
