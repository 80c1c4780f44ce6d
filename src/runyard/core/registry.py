"""The registry of processing steps: every pipeline and step runyard has seen in a project,
by name and version, with the JSON Schema of its parameters.

A registration says where the code can be loaded from again (``reference``, in the project
as it was, and the snapshot it was taken in), so a job can be made from a name and version
alone, through the API, long after the project changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from typing import Any

from runyard import errors
from runyard.core import params, pipelines, steps

__all__ = ["Kind", "Registration", "pick", "registrations_of"]


class Kind(enum.StrEnum):
    PIPELINE = "pipeline"  # a DAG of steps over pipeline and step parameters
    STEP = "step"  # one step, run alone as a one-step pipeline


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    kind: Kind
    name: str
    version: str
    reference: str  # "/project/file.py:attribute"
    snapshot_id: str | None  # the snapshot its file is in; None: run from the file as it is
    description: str
    params_schema: dict[str, Any]  # {"pipeline": schema, "steps": {node: schema}} or a step's
    registered_at: dt.datetime


def registrations_of(
    found: Iterable[tuple[str, pipelines.PipelineDefinition | steps.StepDefinition]],
    *,
    file: str,
    snapshot_id: str | None,
    at: dt.datetime,
) -> list[Registration]:
    """Registrations of the pipelines and steps a file defines, given as (attribute, object)."""
    out: list[Registration] = []
    for attribute, thing in found:
        reference = f"{file}:{attribute}"
        if isinstance(thing, pipelines.PipelineDefinition):
            schema = {
                "pipeline": _schema(thing.params),
                "steps": {n.name: _schema(n.params) for n in thing},
            }
            kind = Kind.PIPELINE
        else:
            schema = _schema(thing.params)
            kind = Kind.STEP
        out.append(
            Registration(
                kind,
                thing.name,
                thing.version,
                reference,
                snapshot_id,
                thing.description,
                schema,
                at,
            )
        )
    return out


def pick(name: str, version: str | None, found: Sequence[Registration]) -> Registration:
    """The registration ``name`` at ``version`` among ``found`` (all of that name).

    Without a version, the only one; raises ``NotFoundError`` naming the versions when there
    are several, or none.
    """
    if not found:
        raise errors.NotFoundError(
            f"No processing step {name!r} is registered; load or snapshot the project that "
            "defines it (runyard register FILE.py)"
        )
    if version is not None:
        for registration in found:
            if registration.version == version:
                return registration
        listed = ", ".join(r.version for r in found)
        raise errors.NotFoundError(
            f"Processing step {name!r} has no version {version!r}; registered: {listed}"
        )
    if len(found) > 1:
        listed = ", ".join(f"{r.version} ({r.registered_at:%Y-%m-%d %H:%M})" for r in found)
        raise errors.UsageError(
            f"Processing step {name!r} has {len(found)} versions: {listed}; choose one"
        )
    return found[0]


def _schema(space: params.ParamSpace) -> dict[str, Any]:
    try:
        return space.json_schema()
    except Exception as exc:  # a parameter type JSON Schema cannot express
        return {"type": "object", "description": f"no JSON Schema: {exc}"}
