"""Pipeline files in Orchest's ``.orchest`` format: JSON naming a pipeline's file steps and
their connections.

::

    {"name": "etl", "uuid": "...", "parameters": {"source": "a.csv"},
     "settings": {"max_steps_parallelism": 2},
     "steps": {"<uuid>": {"title": "Load", "file_path": "load.py",
                          "incoming_connections": [], "parameters": {"n": 10}}, ...}}

``parse`` checks a document and gives its steps in an order that runs parents first; fields
runyard does not use (positions, environments, services) are kept in ``extra`` and ignored.
Turning the checked document into a runnable pipeline (the files) is the loader's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from runyard import errors
from runyard.core import filesteps

__all__ = ["OrchestPipeline", "OrchestStep", "parse"]

_STEP_FIELDS = ("uuid", "title", "file_path", "incoming_connections", "parameters", "kernel")
_PIPELINE_FIELDS = ("name", "uuid", "parameters", "steps", "settings")


@dataclasses.dataclass(frozen=True, slots=True)
class OrchestStep:
    uuid: str
    title: str
    file_path: str  # relative to the pipeline file
    incoming: tuple[str, ...]  # the uuids of its parents, in order
    parameters: Mapping[str, Any]
    node: str  # its step name in runyard: made from its title, unique in the pipeline
    kernel: str | None = None  # the kernel its document names, if any
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class OrchestPipeline:
    name: str
    uuid: str
    parameters: Mapping[str, Any]
    steps: tuple[OrchestStep, ...]  # parents before children; else in document order
    max_steps_parallelism: int
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def step(self, uuid: str) -> OrchestStep:
        return next(s for s in self.steps if s.uuid == uuid)


def parse(document: Any, *, source: str) -> OrchestPipeline:
    """Check a parsed ``.orchest`` document. ``source`` names it in messages.

    Raises ``DefinitionError`` naming every problem found: a missing or mistyped field, a
    connection to a step that does not exist, or a cycle (with the steps on it).
    """
    if not isinstance(document, Mapping):
        raise errors.DefinitionError(
            f"{source} must hold a JSON object with name, steps and parameters; got "
            f"{type(document).__name__}"
        )
    problems: list[str] = []
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"'name' must be a non-empty string; got {name!r}")
        name = ""
    uuid = document.get("uuid", "")
    parameters = document.get("parameters", {})
    if not isinstance(parameters, Mapping):
        problems.append(f"'parameters' must be an object of defaults; got {parameters!r}")
        parameters = {}
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, Mapping) or not raw_steps:
        problems.append("'steps' must be an object of steps keyed by uuid, with one or more")
        raw_steps = {}
    settings = document.get("settings", {})
    if not isinstance(settings, Mapping):
        problems.append(f"'settings' must be an object; got {settings!r}")
        settings = {}
    parallel = settings.get("max_steps_parallelism", 1)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 0:
        problems.append(
            f"settings.max_steps_parallelism must be 0 (no limit) or more; got {parallel!r}"
        )
        parallel = 1

    steps: dict[str, OrchestStep] = {}
    taken: set[str] = set()
    for key, raw in raw_steps.items():
        step = _step(key, raw, taken, problems)
        if step is not None:
            steps[key] = step
    for step in steps.values():
        for parent in step.incoming:
            if parent not in raw_steps:
                problems.append(
                    f"step {step.title!r} ({step.uuid}) has an incoming connection from "
                    f"{parent!r}, which is not a step of the pipeline; remove the connection "
                    "or add the step"
                )
    if problems:
        raise errors.DefinitionError(_summary(source, problems))
    ordered = _order(steps, source)
    return OrchestPipeline(
        name=name,
        uuid=str(uuid),
        parameters=dict(parameters),
        steps=tuple(ordered),
        max_steps_parallelism=parallel or max(len(ordered), 1),
        extra={k: v for k, v in document.items() if k not in _PIPELINE_FIELDS},
    )


def _step(key: str, raw: Any, taken: set[str], problems: list[str]) -> OrchestStep | None:
    if not isinstance(raw, Mapping):
        problems.append(f"step {key!r} must be an object; got {raw!r}")
        return None
    title = raw.get("title") or key
    label = f"step {title!r} ({key})"
    uuid = raw.get("uuid", key)
    if uuid != key:
        problems.append(f"{label} is keyed by {key!r} but says uuid {uuid!r}; make them equal")
    file_path = raw.get("file_path")
    if not isinstance(file_path, str) or not file_path.strip():
        problems.append(f"{label} has no 'file_path'; give the script or notebook it runs")
        file_path = ""
    incoming = raw.get("incoming_connections", [])
    if not isinstance(incoming, list) or not all(isinstance(i, str) for i in incoming):
        problems.append(f"{label}: 'incoming_connections' must be a list of step uuids")
        incoming = []
    params = raw.get("parameters", {})
    if not isinstance(params, Mapping):
        problems.append(f"{label}: 'parameters' must be an object of defaults; got {params!r}")
        params = {}
    kernel = raw.get("kernel")
    kernel_name = kernel.get("name") if isinstance(kernel, Mapping) else None
    node = filesteps.node_name(str(title))
    base, count = node, 2
    while node in taken:
        node, count = f"{base}_{count}", count + 1
    taken.add(node)
    return OrchestStep(
        uuid=key,
        title=str(title),
        file_path=file_path,
        incoming=tuple(dict.fromkeys(incoming)),
        parameters=dict(params),
        node=node,
        kernel=kernel_name if isinstance(kernel_name, str) else None,
        extra={k: v for k, v in raw.items() if k not in _STEP_FIELDS},
    )


def _order(steps: Mapping[str, OrchestStep], source: str) -> list[OrchestStep]:
    """Parents before children, otherwise in document order; raises for a cycle."""
    done: dict[str, None] = {}
    waiting = dict(steps)
    while waiting:
        ready = [k for k, s in waiting.items() if all(p in done for p in s.incoming)]
        if not ready:
            cycle = _cycle(waiting)
            path = " -> ".join(f"{steps[k].title!r}" for k in cycle)
            raise errors.DefinitionError(
                f"{source}: the steps' connections make a cycle: {path}; remove one of its "
                "connections"
            )
        for key in ready:
            done[key] = None
            del waiting[key]
    return [steps[k] for k in done]


def _cycle(waiting: Mapping[str, OrchestStep]) -> list[str]:
    """One cycle among ``waiting`` (each of which has a waiting parent), first step again
    at its end."""
    key = next(iter(waiting))
    seen: list[str] = []
    while key not in seen:
        seen.append(key)
        key = next(p for p in waiting[key].incoming if p in waiting)
    start = seen.index(key)
    # Walking parents goes against the connections: reverse, to read in running order.
    loop = seen[start:][::-1]
    # Start at the step that comes first in the document, whichever step the walk began at.
    order = list(waiting)
    first = min(range(len(loop)), key=lambda i: order.index(loop[i]))
    loop = loop[first:] + loop[:first]
    return [*loop, loop[0]]


def _summary(source: str, problems: list[str]) -> str:
    count = f"{len(problems)} problems: " if len(problems) > 1 else ""
    return f"{source}: {count}{'; '.join(problems)}"
