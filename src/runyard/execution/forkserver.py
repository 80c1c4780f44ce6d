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
from typing import Any

__all__ = ["ForkServer"]

# Runs a run in the forked process: (what to run, message fd, output fd). Must not return
# into the server's loop: the server calls os._exit after it.
RunBody = Callable[[Any, int, int], None]
# Runs in the server before each fork (loading the run's pipeline, say).
Warm = Callable[[Any], object]
# Called once in a launched server: its run body and warm-up. Pickled by reference, so a
# module-level function (or a functools.partial of one with picklable arguments).
Setup = Callable[[], tuple[RunBody, Warm | None]]

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
    def start(cls, body: RunBody, warm: Warm | None = None) -> ForkServer | None:
        """Fork the server now; None where this OS cannot pass descriptors this way.

        ``warm(task)`` runs in the server before each fork (loading the run's pipeline,
        say), so what it loads is there, already, in every later run's process.
        """
        if not hasattr(socket, "SOCK_SEQPACKET") or not hasattr(socket, "send_fds"):
            return None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        pid = os.fork()
        if pid == 0:  # the server; never returns
            code = _INTERNAL_ERROR
            try:
                ours.close()
                _serve(theirs, body, warm)
                code = 0
            except BaseException:
                with contextlib.suppress(BaseException):
                    os.write(2, traceback.format_exc().encode(errors="replace"))
            finally:
                os._exit(code)
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
    code = _INTERNAL_ERROR
    try:
        sock = socket.socket(fileno=int(sys.argv[1]))
        sys.argv[1:] = []
        sys.path[:] = pickle.loads(sock.recv(_MAX_MESSAGE))
        setup: Setup = pickle.loads(sock.recv(_MAX_MESSAGE))
        body, warm = setup()
        _serve(sock, body, warm)
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            os.write(2, traceback.format_exc().encode(errors="replace"))
    finally:
        os._exit(code)


def _serve(sock: socket.socket, body: RunBody, warm: Warm | None) -> None:
    """The server's loop: fork a run per request, report each run's pid and exit status."""
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
    runs: set[int] = set()
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
            key, task = pickle.loads(data)
            if warm is not None:
                with contextlib.suppress(Exception):  # the run itself will say what failed
                    warm(task)
            server = os.getpid()
            pid = os.fork()
            if pid == 0:  # the run
                code = _INTERNAL_ERROR
                try:
                    _die_with(server, death_signal)
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    sock.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    body(task, fds[0], fds[1])
                    code = 0
                except BaseException:
                    with contextlib.suppress(BaseException):
                        os.write(2, traceback.format_exc().encode(errors="replace"))
                finally:
                    os._exit(code)
            with contextlib.suppress(OSError):  # the run does it too; whoever is first
                os.setpgid(pid, pid)
            for fd in fds:
                os.close(fd)
            runs.add(pid)
            sock.send(pickle.dumps(("spawned", key, pid)))
        while runs:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            runs.discard(pid)
            sock.send(pickle.dumps(("exit", pid, status)))


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
