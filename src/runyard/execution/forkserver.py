"""A fork server: one process, forked before any run, that forks every run on request.

Forking each run straight from the engine costs the engine the fork itself and, while the
run lives, a copy-on-write fault for every page the engine then writes. A fork server takes
both off the engine's path: it already holds the imported pipeline (it is a fork of the
engine), never writes its own pages, has no threads, and forks runs as the engine asks. The
engine passes each run the two descriptors it reads from (``socket.send_fds``), so the run
talks to the engine directly; the server reports each run's pid when forked and its exit
status when reaped.

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
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["ForkServer"]

# Runs a run in the forked process: (what to run, message fd, output fd). Must not return
# into the server's loop: the server calls os._exit after it.
RunBody = Callable[[Any, int, int], None]

_INTERNAL_ERROR = 70
_MAX_MESSAGE = 1 << 20


class ForkServer:
    """The engine's handle on its fork server."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self._exits: list[tuple[int, int]] = []

    @classmethod
    def start(cls, body: RunBody) -> ForkServer | None:
        """Fork the server now; None where this OS cannot pass descriptors this way."""
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
                _serve(theirs, body)
                code = 0
            except BaseException:
                with contextlib.suppress(BaseException):
                    os.write(2, traceback.format_exc().encode(errors="replace"))
            finally:
                os._exit(code)
        theirs.close()
        return cls(pid, ours)

    def fileno(self) -> int:
        """Readable when exit reports are waiting: then call ``exits``."""
        return self.sock.fileno()

    def spawn(self, task: Any, message_fd: int, output_fd: int) -> int:
        """Fork a run of ``task`` writing to the two descriptors; returns its pid.

        The caller keeps its own copies of the descriptors and should close them.
        """
        socket.send_fds(self.sock, [pickle.dumps(task)], [message_fd, output_fd])
        while True:
            message = self._receive(block=True)
            if message is None:
                raise RuntimeError("the fork server stopped; see the run logs")
            if message[0] == "spawned":
                return int(message[1])
            self._exits.append((message[1], message[2]))

    def exits(self) -> list[tuple[int, int]]:
        """(pid, waitpid status) of every run reaped since the last call; never blocks."""
        out, self._exits = self._exits, []
        while (message := self._receive(block=False)) is not None:
            if message[0] == "exit":
                out.append((message[1], message[2]))
        return out

    def wait_exit(self, pid: int, timeout: float) -> int | None:
        """Block until run ``pid`` is reaped; its status, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        others: list[tuple[int, int]] = []
        try:
            while True:
                for found, status in self.exits():
                    if found == pid:
                        return status
                    others.append((found, status))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                select.select([self.sock], [], [], remaining)
        finally:
            self._exits = others + self._exits

    def close(self) -> None:
        """Stop the server (it kills any run still going) and reap it."""
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _receive(self, *, block: bool) -> tuple[Any, ...] | None:
        self.sock.setblocking(block)
        try:
            data = self.sock.recv(_MAX_MESSAGE)
        except BlockingIOError:
            return None
        finally:
            self.sock.setblocking(True)
        if not data:
            return None
        message: tuple[Any, ...] = pickle.loads(data)
        return message


def _serve(sock: socket.socket, body: RunBody) -> None:
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
            pid = os.fork()
            if pid == 0:  # the run
                code = _INTERNAL_ERROR
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    sock.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    body(pickle.loads(data), fds[0], fds[1])
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
            sock.send(pickle.dumps(("spawned", pid)))
        while runs:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            runs.discard(pid)
            sock.send(pickle.dumps(("exit", pid, status)))
