"""``python -m runyard.execution.datumstep FILE.py:FUNCTION``: a python transform's process.

It loads the function once, then runs one datum per task it reads: a JSON line on stdin
(``{"env": {...}, "cwd": "...", "log": "/path"}``); it answers on the file descriptor given
by ``--answers FD`` with a JSON line (``{"ok": true}``). While a datum runs, its stdout and
stderr go to the task's log file, its environment holds the task's variables and its working
folder is the task's; an exception is printed (with its traceback) to the log and answered
``{"ok": false}``. The function is called with the keyword arguments it declares among
``input_dir``, ``output_dir`` (``pathlib.Path``), ``inputs`` (input name -> the datum's
matched path) and ``datum_id``.

Without ``--answers`` it runs the one datum its environment describes and exits 0 or 1.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from runyard import errors
from runyard.execution import loader

__all__ = ["main", "run_datum", "serve"]


def run_datum(function: Callable[..., Any], env: Mapping[str, str]) -> bool:
    """Call ``function`` for the datum ``env`` describes; False (traceback printed) when it
    raised."""
    input_dir = pathlib.Path(env["RUNYARD_INPUT_DIR"])
    offered = {
        "input_dir": input_dir,
        "output_dir": pathlib.Path(env["RUNYARD_OUTPUT_DIR"]),
        "inputs": {
            name: pathlib.Path(env[f"RUNYARD_INPUT_{name.upper().replace('-', '_')}"])
            for name in env.get("RUNYARD_INPUT_NAMES", "").split(",")
            if name
        },
        "datum_id": env.get("RUNYARD_DATUM_ID", ""),
    }
    try:
        wanted = set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        wanted = set()
    try:
        function(**{k: v for k, v in offered.items() if k in wanted})
    except Exception:
        traceback.print_exc()
        return False
    return True


def serve(function: Callable[..., Any], tasks: Any, answers: Any) -> None:
    """Run datums read from ``tasks`` until it ends; answer each on ``answers``."""
    base_env = dict(os.environ)
    for line in tasks:
        task = json.loads(line)
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update(task["env"])
        os.chdir(task["cwd"])
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        log = os.open(task["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        try:
            ok = run_datum(function, os.environ)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        answers.write(json.dumps({"ok": ok}) + "\n")
        answers.flush()


def main(argv: list[str]) -> int:
    reference = argv[0]
    try:
        function = loader.load_function(reference)
    except errors.RunyardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if len(argv) == 3 and argv[1] == "--answers":
        # Tasks come on stdin; user code gets /dev/null there instead.
        tasks = os.fdopen(os.dup(0), "r")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        with tasks, os.fdopen(int(argv[2]), "w") as answers:
            serve(function, tasks, answers)
        return 0
    return 0 if run_datum(function, os.environ) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
