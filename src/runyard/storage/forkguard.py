"""Forking safely while other threads use SQLite.

SQLite keeps process-wide mutexes (its allocator's, its file-system layer's). A process forked
while another thread is inside SQLite gets those mutexes locked, with no thread left to unlock
them: the first SQLite call in the child (a run's step making a sub job, say) hangs forever.
The engine forks runs and fork servers while API and hook threads read the store, so that is
a real hazard.

Every call into SQLite made through runyard's engines goes through a guarded connection
(``GuardedConnection``, passed to ``sqlite3.connect`` as its ``factory``), which counts the
threads inside SQLite. ``os.register_at_fork`` hooks hold new callers back and wait, before
each fork, until the count is zero; a thread stuck on a lock for longer than
``FORK_WAIT`` (a busy timeout waits in SQLite's sleep, holding no process-wide mutex) does not
hold the fork up beyond that.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["FORK_WAIT", "GuardedConnection", "GuardedCursor"]

# Seconds a fork waits at most for the threads inside SQLite to leave it.
FORK_WAIT = 2.0


class _Guard:
    """How many threads are inside SQLite, and whether a fork is waiting for them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside: dict[int, int] = {}  # thread id -> depth
        self._forking = False

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            depth = self._inside.get(me, 0)
            while self._forking and depth == 0:
                self._cond.wait()
            self._inside[me] = depth + 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        me = threading.get_ident()
        with self._cond:
            depth = self._inside.pop(me) - 1
            if depth:
                self._inside[me] = depth
            elif not self._inside:
                self._cond.notify_all()

    def before_fork(self) -> None:
        """Hold new callers back and wait for those inside; keeps the lock until after."""
        self._cond.acquire()
        self._forking = True
        me = threading.get_ident()
        deadline = time.monotonic() + FORK_WAIT
        while any(ident != me for ident in self._inside):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_in_child(self) -> None:
        # The other threads did not come along: nobody is inside SQLite here.
        me = threading.get_ident()
        depth = self._inside.get(me, 0)
        self.reset()
        if depth:
            self._inside[me] = depth


_GUARD = _Guard()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_GUARD.before_fork,
        after_in_parent=_GUARD.after_fork_in_parent,
        after_in_child=_GUARD.after_fork_in_child,
    )


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose calls into SQLite are counted by the fork guard."""

    def execute(self, sql: str, parameters: Any = (), /) -> GuardedCursor:
        with _GUARD:
            super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, parameters: Any, /) -> GuardedCursor:
        with _GUARD:
            super().executemany(sql, parameters)
        return self

    def executescript(self, script: str, /) -> GuardedCursor:
        with _GUARD:
            super().executescript(script)
        return self

    def fetchone(self) -> Any:
        with _GUARD:
            return super().fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        with _GUARD:
            return super().fetchmany(self.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        with _GUARD:
            return super().fetchall()

    def __next__(self) -> Any:
        with _GUARD:
            return super().__next__()

    def close(self) -> None:
        with _GUARD:
            super().close()


class GuardedConnection(sqlite3.Connection):
    """A connection whose calls into SQLite, and its cursors', are counted by the guard."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with _GUARD:
            super().__init__(*args, **kwargs)

    def cursor(self, factory: Any = None) -> Any:
        with _GUARD:
            return super().cursor(factory or GuardedCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def commit(self) -> None:
        with _GUARD:
            super().commit()

    def rollback(self) -> None:
        with _GUARD:
            super().rollback()

    def close(self) -> None:
        with _GUARD:
            super().close()
