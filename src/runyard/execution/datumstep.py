"""``python -m runyard.execution.datumstep FILE.py:FUNCTION``: one datum of a python transform.

The function is called with the keyword arguments it declares among ``input_dir``,
``output_dir`` (``pathlib.Path``), ``inputs`` (input name -> the datum's matched path under
``input_dir``) and ``datum_id``, from the environment a data job sets. An exception exits 1
with its traceback on stderr, which the datum's logs keep.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import sys
import traceback

from runyard import errors
from runyard.execution import loader

__all__ = ["main"]


def main(reference: str) -> int:
    try:
        function = loader.load_function(reference)
    except errors.RunyardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    env = os.environ
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
        wanted = inspect.signature(function).parameters
    except (TypeError, ValueError):
        wanted = {}  # type: ignore[assignment]
    kwargs = {k: v for k, v in offered.items() if k in wanted}
    try:
        function(**kwargs)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
