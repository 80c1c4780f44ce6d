"""File steps: a Python script, a shell script or a notebook used as a step.

A file step is a file, not a function: it runs in a process of its own, reads its inputs with
``runyard.get_inputs()`` and hands on outputs with ``runyard.output(value, name=...)``. It
takes any number of inputs (its incoming connections, in order), and its outputs are the
values it outputs, by name, unless its definition declares them.

This module only describes a file step; running one is ``runyard.execution.filesteps``'s.
"""

from __future__ import annotations

import enum
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from runyard import errors
from runyard.core import params, steps

__all__ = ["ALL_OUTPUTS", "FileKind", "FileStep", "kind_of", "node_name"]

# The output name of a reference to every output a file step made, in the order it made
# them. A Python step reading it gets the step's one output (and fails if there are more).
ALL_OUTPUTS = "*"


class FileKind(enum.StrEnum):
    SCRIPT = "script"  # a .py file, run as ``python file.py``
    SHELL = "shell"  # a .sh file, run by bash
    NOTEBOOK = "notebook"  # a .ipynb file, executed cell by cell on a Jupyter kernel


_SUFFIXES = {".py": FileKind.SCRIPT, ".sh": FileKind.SHELL, ".ipynb": FileKind.NOTEBOOK}


def kind_of(path: str | pathlib.PurePath) -> FileKind:
    """The kind of file step ``path`` is, by its suffix; raises ``DefinitionError``."""
    suffix = pathlib.PurePath(path).suffix.lower()
    try:
        return _SUFFIXES[suffix]
    except KeyError:
        raise errors.DefinitionError(
            f"Step file {str(path)!r} is not a script or a notebook; give a .py or .sh "
            "script or a .ipynb notebook"
        ) from None


def node_name(text: str) -> str:
    """A step name made from a title or a file name: ``"Load data"`` -> ``"load_data"``."""
    name = re.sub(r"\W+", "_", text.strip()).strip("_").lower()
    if not name:
        name = "step"
    return f"step_{name}" if name[0].isdigit() else name


class FileStep(steps.StepDefinition):
    """A step whose code is a file. ``path`` is absolute: where the file is in the project
    the step was defined in; a run looks it up in its own working copy.

    ``version`` is given by the caller (a hash of the file's bytes), since this layer reads
    no files. ``outputs`` (names), when given, are the outputs the file must make; Python
    steps downstream can then pick one by name.
    """

    variadic = True

    def __init__(
        self,
        path: pathlib.PurePath,
        *,
        version: str,
        name: str | None = None,
        kind: FileKind | None = None,
        params: Mapping[str, Any] | None = None,
        outputs: Sequence[str] | None = None,
        description: str = "",
        timeout: float | None = None,
        kernel: str | None = None,
        retries: int = 0,
        retry_delay: float = 0.0,
    ) -> None:
        self.path = path
        self.kind = kind or kind_of(path)
        self.kernel = kernel  # a notebook's kernel; None: the one its metadata names
        self.name = name or node_name(path.stem)
        if not self.name.isidentifier():
            raise errors.DefinitionError(
                f"Step name {self.name!r} is not valid; use letters, digits and underscores"
            )
        if timeout is not None and timeout <= 0:
            raise errors.DefinitionError(
                f"Step {self.name!r}: timeout={timeout} must be a positive number of seconds"
            )
        self.fn = self._not_callable
        self.version = version
        self.description = description or f"{self.kind} {path.name}"
        self.timeout = timeout
        if retries < 0 or retry_delay < 0:
            raise errors.DefinitionError(
                f"Step {self.name!r}: retries={retries}, retry_delay={retry_delay} are not "
                "valid; give retries >= 0 and a delay >= 0"
            )
        self.retries = retries  # further attempts after a failure (a non-zero exit, a cell)
        self.retry_delay = retry_delay
        self.retry_backoff = 2.0
        self.retry_jitter = 0.1
        self.retry_on = (Exception,)
        self.inputs: tuple[steps.InputSpec, ...] = ()
        self.params = _param_space(self.name, params or {})
        names = list(outputs or ())
        if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
            raise errors.DefinitionError(
                f"Step {self.name!r} outputs {names} must be distinct identifiers"
            )
        self.declared_outputs = tuple(names)
        self.outputs = tuple(steps.OutputSpec(n) for n in names) or (steps.OutputSpec(ALL_OUTPUTS),)

    def _not_callable(self, *args: Any, **kwargs: Any) -> Any:
        raise errors.DefinitionError(
            f"Step {self.name!r} is the {self.kind} {self.path.name}; it runs inside a "
            "pipeline (or with Pipeline.run), not by calling it"
        )

    def __repr__(self) -> str:
        return f"<{self.kind} step {self.name} {self.path.name} {self.version}>"


def _param_space(step: str, defaults: Mapping[str, Any]) -> params.ParamSpace:
    if not isinstance(defaults, Mapping):
        raise errors.DefinitionError(
            f"Step {step!r}: parameters must be a JSON object of defaults; got {defaults!r}"
        )
    return params.ParamSpace.from_mapping(f"Step {step!r}", defaults)
