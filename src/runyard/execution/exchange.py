"""The exchange folder: how a file step's process gets its parameters and inputs, and hands
back its outputs.

Before a script or notebook starts, its runner writes a folder holding ``step.pickle`` (the
step's context: names, both parameter namespaces, its inputs' files) and one file per input
value, and points ``RUNYARD_STEP`` at ``step.pickle`` in the process's environment. Inside the
process ``runyard.get_params()`` and friends read that context; ``runyard.get_inputs()`` reads
the inputs; ``runyard.output(value, name=...)`` writes a file and a line to
``outputs/index.jsonl``, which the runner reads back, in order, once the process has ended.

Values are pickled, except Arrow tables and pandas frames, which are written as Arrow IPC
files when pyarrow is installed (and read back as what they were).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pathlib

from runyard import errors

__all__ = [
    "ENV_VAR",
    "Inputs",
    "StepFile",
    "get_inputs",
    "output",
    "prepare",
    "read_outputs",
    "read_value",
    "write_value",
]

ENV_VAR = "RUNYARD_STEP"  # the path of the running file step's step.pickle
# core.steps.DEFAULT_OUTPUT, not imported from there: a script's process imports this
# module, and core.steps would bring pydantic with it.
DEFAULT_OUTPUT = "result"
_INDEX = "index.jsonl"
PICKLE = "pickle"
ARROW = "arrow"  # a pyarrow.Table
ARROW_PANDAS = "arrow-pandas"  # a pandas.DataFrame, through an Arrow table


# The step's side of this module runs in every script step's process: it imports only
# what it must (no dataclasses, pathlib or re), to start fast.


class StepFile(NamedTuple):
    """What a file step's process is told (``step.pickle``)."""

    step_name: str
    pipeline_name: str
    pipeline_params: Mapping[str, Any]
    step_params: Mapping[str, Any]
    inputs: tuple[tuple[str, str, str], ...]  # (name, file, serializer), in order
    outputs_dir: str
    run_id: str | None = None
    job_id: str | None = None
    attempt: int = 1


# -- values ------------------------------------------------------------------------------


def _arrow_kind(value: Any) -> str | None:
    """ARROW / ARROW_PANDAS for a value Arrow can hold when pyarrow is installed."""
    module = type(value).__module__
    if not module.startswith(("pyarrow", "pandas")):
        return None  # never import pyarrow for other values
    try:
        import pyarrow
    except ImportError:
        return None
    if isinstance(value, pyarrow.Table):
        return ARROW
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return ARROW_PANDAS
    return None


def write_value(folder: str | os.PathLike[str], stem: str, value: Any) -> tuple[str, str]:
    """Write ``value`` to ``folder/<stem>.<serializer>``; returns (file name, serializer).

    Raises what pickling or Arrow raises for a value that cannot be written.
    """
    kind = _arrow_kind(value)
    if kind is not None:
        import pyarrow
        from pyarrow import ipc

        table = pyarrow.Table.from_pandas(value) if kind == ARROW_PANDAS else value
        name = f"{stem}.{kind}"
        with (
            pyarrow.OSFile(os.path.join(folder, name), "wb") as sink,
            ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
        return name, kind
    name = f"{stem}.{PICKLE}"
    with open(os.path.join(folder, name), "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return name, PICKLE


def read_value(path: str | os.PathLike[str], serializer: str) -> Any:
    """Read back a value ``write_value`` wrote."""
    if serializer in (ARROW, ARROW_PANDAS):
        import pyarrow
        from pyarrow import ipc

        with pyarrow.memory_map(os.fspath(path), "r") as source:
            table = ipc.open_file(source).read_all()
        return table.to_pandas() if serializer == ARROW_PANDAS else table
    with open(path, "rb") as fh:
        return pickle.load(fh)


# -- the runner's side -------------------------------------------------------------------


def prepare(
    folder: pathlib.Path,
    *,
    step_name: str,
    pipeline_name: str,
    pipeline_params: Mapping[str, Any],
    step_params: Mapping[str, Any],
    inputs: Iterable[tuple[str, Any]],
    run_id: str | None = None,
    job_id: str | None = None,
    attempt: int = 1,
) -> pathlib.Path:
    """Write the exchange folder for one attempt of a file step; returns ``step.pickle``'s
    path, for ``RUNYARD_STEP``. ``folder`` must exist and be empty."""
    written = []
    for index, (name, value) in enumerate(inputs):
        file, serializer = write_value(folder, f"input-{index}", value)
        written.append((name, file, serializer))
    outputs_dir = folder / "outputs"
    outputs_dir.mkdir()
    step_file = StepFile(
        step_name=step_name,
        pipeline_name=pipeline_name,
        pipeline_params=dict(pipeline_params),
        step_params=dict(step_params),
        inputs=tuple(written),
        outputs_dir=str(outputs_dir),
        run_id=run_id,
        job_id=job_id,
        attempt=attempt,
    )
    path = folder / "step.pickle"
    with open(path, "wb") as fh:
        pickle.dump(step_file, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def read_outputs(step_file: pathlib.Path) -> dict[str, Any]:
    """The outputs the step's process made, by name, in the order it first made each (a
    name output again keeps its place and takes the new value)."""
    folder = step_file.parent / "outputs"
    index = folder / _INDEX
    values: dict[str, Any] = {}
    if not index.is_file():
        return values
    for line in index.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        try:
            values[entry["name"]] = read_value(folder / entry["file"], entry["serializer"])
        except Exception as exc:
            raise errors.UsageError(
                f"Output {entry['name']!r} cannot be read back outside the step's process: "
                f"{type(exc).__name__}: {exc}. Output built-in values, or objects of classes "
                "defined in a module the pipeline can import (not in the script itself)"
            ) from exc
    return values


# -- the step's side (inside the script or notebook) -------------------------------------

_loaded: list[StepFile] = []


def current() -> StepFile | None:
    """The context this process was started with as a file step, if it was."""
    if _loaded:
        return _loaded[0]
    where = os.environ.get(ENV_VAR)
    if not where:
        return None
    try:
        with open(where, "rb") as fh:
            found = pickle.load(fh)
    except OSError as exc:
        raise errors.OutsideStepError(
            f"{ENV_VAR}={where!r} cannot be read ({exc}); this process was not started by "
            "runyard as a step, or its step has ended"
        ) from None
    _loaded.append(found)
    return found  # type: ignore[no-any-return]


def _required(call: str) -> StepFile:
    found = current()
    if found is None:
        raise errors.OutsideStepError(
            f"runyard.{call} works only in a script or notebook that runyard runs as a step; "
            "a Python step takes its inputs as arguments and returns its outputs"
        )
    return found


class Inputs(list[Any]):
    """A file step's inputs: a list, in the order of its incoming connections (and of each
    upstream step's outputs); ``inputs["name"]`` picks one by its output name."""

    def __init__(self, values: Iterable[Any], names: Iterable[str]) -> None:
        super().__init__(values)
        self.names: tuple[str, ...] = tuple(names)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, str):
            return super().__getitem__(key)
        places = [i for i, n in enumerate(self.names) if n == key]
        if len(places) == 1:
            return super().__getitem__(places[0])
        if not places:
            raise KeyError(
                f"No input named {key!r}{errors.did_you_mean(key, self.names)}; "
                f"inputs: {', '.join(self.names) or 'none'}"
            )
        raise KeyError(
            f"{len(places)} inputs are named {key!r}; pick one by position "
            f"({', '.join(str(p) for p in places)})"
        )

    @property
    def named(self) -> dict[str, Any]:
        """The inputs by name (of inputs sharing a name, the last)."""
        return dict(zip(self.names, self, strict=True))


def get_inputs() -> Inputs:
    """The running file step's inputs (see ``Inputs``); raises ``OutsideStepError``."""
    found = _required("get_inputs()")
    folder = os.path.dirname(found.outputs_dir)
    values = [
        read_value(os.path.join(folder, file), serializer) for _, file, serializer in found.inputs
    ]
    return Inputs(values, [name for name, _, _ in found.inputs])


def output(value: Any, name: str | None = None) -> None:
    """Hand ``value`` on to the steps downstream as output ``name`` (``result`` when not
    given). Raises ``OutsideStepError`` outside a file step, ``UsageError`` for a name that
    is not an identifier."""
    found = _required("output()")
    name = DEFAULT_OUTPUT if name is None else name
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise errors.UsageError(
            f"Output name {name!r} is not valid; use letters, digits and underscores"
        )
    folder = found.outputs_dir
    count = len(os.listdir(folder))
    file, serializer = write_value(folder, f"{count:04d}-{name}", value)
    with open(os.path.join(folder, _INDEX), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"name": name, "file": file, "serializer": serializer}) + "\n")
        fh.flush()
    sys.stdout.flush()  # so the step's lines and its outputs keep their order in the logs
