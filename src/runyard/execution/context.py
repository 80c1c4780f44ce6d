"""The running step's context, and the parameter calls user code makes inside a step."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any, NamedTuple

from runyard import errors
from runyard.execution import exchange

__all__ = [
    "StepContext",
    "current",
    "current_step_name",
    "get_params",
    "get_pipeline_param",
    "get_step_param",
]


class StepContext(NamedTuple):
    """What a running step can see: its name, its run, and both parameter namespaces.

    A named tuple rather than a dataclass: a script step's process imports this module,
    and ``dataclasses`` (with ``inspect``) would add a tenth to its start-up.
    """

    step_name: str
    pipeline_name: str
    pipeline_params: Mapping[str, Any]
    step_params: Mapping[str, Any]
    run_id: str | None = None
    job_id: str | None = None
    attempt: int = 1


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


# Not core.params.MISSING: a script's process imports this module, and core.params would
# bring pydantic with it (a third of a script step's start-up).
_NO_DEFAULT: Any = _NoDefault()

_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "runyard_step", default=None
)


def current() -> StepContext:
    """The context of the step running in this thread; raises ``OutsideStepError``."""
    ctx = _current.get()
    if ctx is None:
        ctx = _file_step()
    if ctx is None:
        raise errors.OutsideStepError(
            "No step is running here; runyard.get_step_param(), get_pipeline_param() and "
            "get_params() work only inside a step that runyard executes"
        )
    return ctx


def _file_step() -> StepContext | None:
    """The context of this process when runyard started it as a script or notebook step."""
    found = exchange.current()
    if found is None:
        return None
    return StepContext(
        found.step_name,
        found.pipeline_name,
        found.pipeline_params,
        found.step_params,
        found.run_id,
        found.job_id,
        found.attempt,
    )


def current_step_name() -> str | None:
    ctx = _current.get()
    return ctx.step_name if ctx is not None else None


def get_step_param(name: str, default: Any = _NO_DEFAULT) -> Any:
    """The value of step parameter ``name`` of the running step.

    Raises ``ParameterError`` naming the known ones when there is no such parameter and no
    ``default`` was given.
    """
    ctx = current()
    return _lookup(ctx.step_params, name, default, f"Step {ctx.step_name!r}")


def get_pipeline_param(name: str, default: Any = _NO_DEFAULT) -> Any:
    """The value of pipeline parameter ``name`` in the running step's run."""
    ctx = current()
    return _lookup(ctx.pipeline_params, name, default, f"Pipeline {ctx.pipeline_name!r}")


def get_params() -> dict[str, dict[str, Any]]:
    """Both namespaces of the running step: ``{"pipeline": {...}, "step": {...}}``."""
    ctx = current()
    return {"pipeline": dict(ctx.pipeline_params), "step": dict(ctx.step_params)}


def _lookup(values: Mapping[str, Any], name: str, default: Any, owner: str) -> Any:
    try:
        return values[name]
    except KeyError:
        if default is not _NO_DEFAULT:
            return default
        raise errors.ParameterError(
            f"{owner} has no parameter {name!r}{errors.did_you_mean(name, values)}"
        ) from None
