"""Process ids left in names of files and folders, to tell whose owner is gone."""

from __future__ import annotations

import os

__all__ = ["gone"]


def gone(pid: int) -> bool:
    """Whether no process ``pid`` exists on this host (one of another user's counts as live)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
