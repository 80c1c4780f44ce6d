"""The environment user code runs in: the interpreter, the platform, what is installed."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys

from runyard.core import snapshots

__all__ = ["capture", "normalise"]


def normalise(name: str) -> str:
    """A distribution's name as packaging compares it (PEP 503): ``Foo_bar`` -> ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def capture() -> snapshots.Environment:
    """This process's environment: Python version and implementation, OS and machine, and
    every distribution ``importlib.metadata`` finds on ``sys.path`` (the first found wins
    when one is installed twice, as for imports)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        metadata = dist.metadata  # parsed on every access: read it once
        name, version = (metadata["Name"], metadata["Version"]) if metadata else (None, None)
        if name and version:
            found.setdefault(normalise(name), version)
    return snapshots.Environment(
        python_version=platform.python_version(),
        implementation=sys.implementation.name,
        platform=f"{platform.system()}-{platform.machine()}",
        distributions=dict(sorted(found.items())),
    )
