"""Whether a process is still running, for tests that check that none is left behind."""

from __future__ import annotations

import os
import pathlib
import time


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process. A zombie nobody has reaped yet counts as ended, and
    so does a process that exits while it is looked at."""
    try:
        os.kill(pid, 0)
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def ended(pid: int, *, within: float = 5.0) -> bool:
    """Whether process ``pid`` ends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
