"""Parameter grids: lists of values per parameter, expanded into one run per combination.

The grid format is the one of ``<pipeline>.parameters.json`` files::

    {"pipeline_parameters": {"fruit": ["apple", "pear"]},
     "candy": {"fruit": ["banana"], "sweetness": [1, 2, 3]}}

Parameters the grid leaves out take their defaults. Runs are the cartesian product, in
a stable order: pipeline parameters first, then each step in pipeline order.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from runyard import errors
from runyard.core import pipelines, records

__all__ = [
    "MAX_RUNS",
    "PIPELINE_KEY",
    "Deselection",
    "Grid",
    "grid_of_one",
    "parse_grid",
    "select_runs",
]

PIPELINE_KEY = "pipeline_parameters"
MAX_RUNS = 100_000

# A run is left out when its index is listed, a filter matches all its values, or a callable
# returns True for its parameters. Filter keys: "name" (pipeline parameter) or "step.name".
Deselection = int | Mapping[str, Any] | Callable[[records.RunParams], bool]


@dataclasses.dataclass(frozen=True)
class Grid:
    """A validated grid: JSON values per pipeline parameter and per step parameter."""

    pipeline: Mapping[str, Sequence[Any]]
    steps: Mapping[str, Mapping[str, Sequence[Any]]]

    @property
    def size(self) -> int:
        """How many runs the grid expands to (before deselection)."""
        lengths = [len(v) for v in self.pipeline.values()]
        lengths += [len(v) for s in self.steps.values() for v in s.values()]
        return math.prod(lengths)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pipeline:
            out[PIPELINE_KEY] = {k: list(v) for k, v in self.pipeline.items()}
        for step, values in self.steps.items():
            out[step] = {k: list(v) for k, v in values.items()}
        return out

    def expand(self, pipeline: pipelines.PipelineDefinition) -> Iterator[records.RunParams]:
        """Every combination, each a full assignment with defaults filled in.

        Raises ``ParameterError`` when a required parameter has no value.
        """
        base_pipeline = pipeline.params.resolve({k: v[0] for k, v in self.pipeline.items()})
        base_steps = {
            node.name: node.params.resolve(
                {k: v[0] for k, v in self.steps.get(node.name, {}).items()}
            )
            for node in pipeline
        }
        axes: list[tuple[str | None, str, Sequence[Any]]] = [
            (None, k, v) for k, v in self.pipeline.items() if len(v) > 1
        ]
        for node in pipeline:
            axes += [
                (node.name, k, v) for k, v in self.steps.get(node.name, {}).items() if len(v) > 1
            ]
        for combo in itertools.product(*(values for _, _, values in axes)):
            pipe = dict(base_pipeline)
            steps = {name: dict(values) for name, values in base_steps.items()}
            for (scope, key, _), value in zip(axes, combo, strict=True):
                if scope is None:
                    pipe[key] = value
                else:
                    steps[scope][key] = value
            yield {"pipeline": pipe, "steps": steps}


def parse_grid(
    pipeline: pipelines.PipelineDefinition,
    raw: Mapping[str, Any] | None,
    *,
    source: str = "Grid",
    allow_large: bool = False,
) -> Grid:
    """Check a grid against ``pipeline`` and validate every value against its type.

    Raises ``GridError`` naming every unknown step or key, bare (non-list) value and value of
    the wrong type, or a grid of more than ``MAX_RUNS`` runs unless ``allow_large``.
    """
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise errors.GridError(
            f"{source} must be a JSON object of parameter lists; got {type(raw).__name__}"
        )
    problems: list[str] = []
    pipe: dict[str, list[Any]] = {}
    steps: dict[str, dict[str, list[Any]]] = {}
    for scope, entries in raw.items():
        scope = pipeline.step_keys.get(scope, scope)
        if scope == PIPELINE_KEY:
            space, label, target = pipeline.params, "pipeline parameter", pipe
        elif scope in pipeline.nodes:
            space = pipeline.nodes[scope].params
            label, target = f"step {scope!r} parameter", steps.setdefault(scope, {})
        else:
            known = [PIPELINE_KEY, *pipeline.nodes]
            problems.append(
                f"{scope!r} is neither {PIPELINE_KEY!r} nor a step of pipeline "
                f"{pipeline.name!r}{errors.did_you_mean(scope, known)}"
            )
            continue
        if not isinstance(entries, Mapping):
            problems.append(f"{scope!r} must map parameter names to lists; got {entries!r}")
            continue
        for key, values in entries.items():
            if key not in space:
                problems.append(f"unknown {label} {key!r}{errors.did_you_mean(key, space.names())}")
                continue
            if not isinstance(values, list):
                problems.append(
                    f"{label} {key!r} must be a list of values, even for one value, "
                    f"e.g. [{_json(values)}]; got {_json(values)}"
                )
                continue
            if not values:
                problems.append(f"{label} {key!r} has an empty list; give at least one value")
                continue
            checked = []
            for value in values:
                try:
                    checked.append(space.to_json(key, value))
                except errors.ParameterError as exc:
                    problems.append(exc.message)
            target[key] = checked
    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise errors.GridError(f"{source}: {count}{'; '.join(problems)}")
    grid = Grid(pipe, {k: v for k, v in steps.items() if v})
    if grid.size > MAX_RUNS and not allow_large:
        raise errors.GridError(
            f"{source} expands to {grid.size:,} runs, above the limit of {MAX_RUNS:,}; "
            "shrink it, or allow it explicitly (allow_large_grid=True / --allow-large-grid)"
        )
    return grid


def select_runs(
    assignments: Iterable[records.RunParams],
    deselect: Iterable[Deselection],
    *,
    size: int,
) -> list[tuple[int, records.RunParams]]:
    """Pair each run with its grid index, leaving out the deselected ones.

    Raises ``GridError`` for an index outside the grid, a filter on an unknown parameter,
    or a deselection that leaves no run.
    """
    indices: set[int] = set()
    filters: list[Mapping[str, Any]] = []
    predicates: list[Callable[[records.RunParams], bool]] = []
    for item in deselect:
        if isinstance(item, bool):
            raise errors.GridError(f"Cannot deselect {item!r}; give a run index or a filter")
        if isinstance(item, int):
            if not 0 <= item < size:
                raise errors.GridError(
                    f"Cannot deselect run {item}: the grid has runs 0..{size - 1}"
                )
            indices.add(item)
        elif isinstance(item, Mapping):
            filters.append(item)
        elif callable(item):
            predicates.append(item)
        else:
            raise errors.GridError(
                f"Cannot deselect {item!r}; give a run index, a filter like "
                "{'fruit': 'apple'} / {'step.key': value}, or a function of the run's params"
            )
    selected = []
    for index, params in enumerate(assignments):
        if index in indices:
            continue
        if any(_matches(params, f) for f in filters):
            continue
        if any(p(params) for p in predicates):
            continue
        selected.append((index, params))
    if not selected:
        raise errors.GridError("Every run of the grid is deselected; keep at least one")
    return selected


def _matches(params: records.RunParams, flt: Mapping[str, Any]) -> bool:
    for key, wanted in flt.items():
        step, _, name = key.rpartition(".")
        scope = params["steps"].get(step) if step else params["pipeline"]
        if scope is None or name not in scope:
            raise errors.GridError(
                f"Deselect filter key {key!r} names no parameter; use 'name' for a pipeline "
                "parameter or 'step.name' for a step parameter"
            )
        if scope[name] != wanted:
            return False
    return True


def _json(value: Any) -> str:
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def grid_of_one(
    pipeline: pipelines.PipelineDefinition, parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """The grid of one run with ``parameters``: ``{"pipeline": {...}, "steps": {"step":
    {...}}}``, or, for a step run alone, that step's ``{"name": value}``.

    Raises ``ParameterError`` for a structure that is neither (values are checked when the
    grid is parsed).
    """
    nodes = list(pipeline.nodes)
    alone = len(nodes) == 1 and nodes[0] == pipeline.name and not len(pipeline.params)
    if alone and not set(parameters) <= {"pipeline", "steps"}:
        return {nodes[0]: {k: [v] for k, v in parameters.items()}}
    unknown = sorted(set(parameters) - {"pipeline", "steps"})
    if unknown:
        raise errors.ParameterError(
            f"Parameters of pipeline {pipeline.name!r} take the keys pipeline and steps "
            f'({{"pipeline": {{...}}, "steps": {{"step": {{...}}}}}}); got {", ".join(unknown)}'
        )
    out: dict[str, Any] = {
        PIPELINE_KEY: {k: [v] for k, v in dict(parameters.get("pipeline") or {}).items()}
    }
    for step, given in dict(parameters.get("steps") or {}).items():
        if not isinstance(given, Mapping):
            raise errors.ParameterError(
                f"Parameters of step {step!r} must be an object of values; got {given!r}"
            )
        out[step] = {k: [v] for k, v in given.items()}
    return out
