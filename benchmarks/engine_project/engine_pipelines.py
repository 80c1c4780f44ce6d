"""The pipelines the engine benchmarks (benchmarks/engine.py) queue, in a real module so a
``runyard serve`` / ``runyard worker`` process can load them by their reference.

The module is the whole of its project (with ``runyard.toml``), so a run's working copy is
what a trivial pipeline's would be: two small files.
"""

from __future__ import annotations

import os
import pathlib
import signal
import time

import runyard

# -- E1 and E2: a one-step no-op ---------------------------------------------------------


@runyard.step
def nop(*, i: int = 0) -> int:
    return i


@runyard.pipeline
def trivial() -> None:
    nop()


def trivial_grid(runs: int) -> dict[str, dict[str, list[int]]]:
    """``runs`` runs of ``trivial``, one per value of ``nop``'s ``i``."""
    return {"nop": {"i": list(range(runs))}}


# -- E3: a step that never ends on its own -------------------------------------------------


@runyard.step
def sleep_forever(*, pid_dir: str = "", slot: int = 0, ignore_term: bool = False) -> None:
    """Write this process's pid to ``<pid_dir>/<slot>.pid``, then sleep until killed; with
    ``ignore_term`` SIGTERM is ignored, so only the worker's SIGKILL (after its grace
    period) ends it."""
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = pathlib.Path(pid_dir) / f"{slot}.pid"
    partial = path.with_suffix(".tmp")
    partial.write_text(str(os.getpid()))
    partial.rename(path)  # whole, or not there at all
    while True:
        time.sleep(0.05)


@runyard.pipeline
def sleeper() -> None:
    sleep_forever()


def sleeper_grid(pid_dir: str, runs: int, *, ignore_term: bool = False) -> dict[str, object]:
    return {
        "sleep_forever": {
            "pid_dir": [pid_dir],
            "slot": list(range(runs)),
            "ignore_term": [ignore_term],
        }
    }
