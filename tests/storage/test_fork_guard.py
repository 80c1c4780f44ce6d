"""A process forked while another thread reads SQLite can still use SQLite."""

from __future__ import annotations

import os
import pathlib
import signal
import threading
import time

import sqlalchemy as sa

from runyard.storage import engine as engine_mod
from runyard.storage import forkguard


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None (and the child killed) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_children_forked_under_sqlite_load_open_sqlite_again(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'load.db'}"
    engine = engine_mod.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES " + ",".join(f"({n})" for n in range(2000)))
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT sum(n) FROM t")).scalar()
                conn.execute(sa.text("SELECT n FROM t")).fetchall()

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    codes = []
    try:
        for _ in range(25):
            pid = os.fork()
            if pid == 0:  # a child: new connections, as a run's sub job makes them
                code = 1
                try:
                    fresh = engine_mod.create_engine(url)
                    with fresh.connect() as conn:
                        code = 0 if conn.execute(sa.text("SELECT count(*) FROM t")).scalar() else 2
                finally:
                    os._exit(code)
            codes.append(_wait(pid, timeout=20))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        engine.dispose()
    assert codes == [0] * 25


def test_a_fork_waits_for_a_thread_inside_sqlite_no_longer_than_its_limit() -> None:
    guard = forkguard._GUARD
    inside = threading.Event()
    leave = threading.Event()

    def stay_inside() -> None:
        with guard:
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=stay_inside, daemon=True)
    thread.start()
    assert inside.wait(10)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    waited = time.monotonic() - started
    leave.set()
    thread.join(10)
    assert _wait(pid, timeout=10) == 0
    assert forkguard.FORK_WAIT * 0.9 <= waited < forkguard.FORK_WAIT + 5
