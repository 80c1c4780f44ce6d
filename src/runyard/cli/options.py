"""Reading parameter and selection options typed on the command line."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from runyard import errors
from runyard.core import grid as grid_mod
from runyard.core import pipelines

__all__ = ["apply_overrides", "parse_deselect", "parse_exclude", "parse_limits"]


def _split(option: str, text: str, example: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise errors.UsageError(f"{option} {text!r} is not KEY=VALUE; e.g. {option} {example}")
    return key.strip(), value


def _step_key(option: str, key: str, example: str) -> tuple[str, str]:
    step, dot, name = key.rpartition(".")
    if not dot or not step or not name:
        raise errors.UsageError(
            f"{option} {key!r} must name a step and a parameter as STEP.KEY=VALUE; "
            f"e.g. {option} {example}"
        )
    return step, name


def apply_overrides(
    pipeline: pipelines.PipelineDefinition,
    grid: Any,
    pipeline_values: Sequence[str],
    step_values: Sequence[str],
) -> dict[str, Any]:
    """The grid with ``-p key=value`` / ``-s step.key=value`` values put in place.

    Repeating a key gives it several values (a grid axis). Values are JSON where they parse
    as JSON, else text; each is checked against the parameter's type. Raises ``UsageError``
    / ``ParameterError`` naming the option.
    """
    out: dict[str, Any] = copy.deepcopy(grid) if isinstance(grid, dict) else {}
    given: dict[tuple[str, str], list[Any]] = {}
    for text in pipeline_values:
        key, value = _split("-p", text, "fruit=apple")
        given.setdefault((grid_mod.PIPELINE_KEY, key), []).append(
            pipeline.params.parse_text(key, value)
        )
    for text in step_values:
        key, value = _split("-s", text, "transform.factor=3")
        step, name = _step_key("-s", key, "transform.factor=3")
        node = pipeline.node(step)
        given.setdefault((step, name), []).append(node.params.parse_text(name, value))
    for (scope, key), values in given.items():
        section = out.setdefault(scope, {})
        if not isinstance(section, dict):
            raise errors.GridError(f"Grid entry {scope!r} must map parameter names to lists")
        section[key] = values
    return out


def parse_deselect(values: Sequence[str]) -> list[int]:
    """Run indices from ``--deselect 3,7`` (repeatable)."""
    out = []
    for text in values:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise errors.UsageError(
                    f"--deselect {text!r}: {part!r} is not a run index; give indices like 3,7 "
                    "(see them with --dry-run)"
                ) from None
    return out


def parse_exclude(
    pipeline: pipelines.PipelineDefinition, values: Sequence[str]
) -> list[dict[str, Any]]:
    """Filters from ``--exclude fruit=apple`` / ``--exclude step.key=value``."""
    filters = []
    for text in values:
        key, value = _split("--exclude", text, "fruit=apple")
        if "." in key:
            step, name = _step_key("--exclude", key, "transform.factor=3")
            parsed = pipeline.node(step).params.parse_text(name, value)
        else:
            parsed = pipeline.params.parse_text(key, value)
        filters.append({key: parsed})
    return filters


def parse_limits(values: Sequence[str]) -> dict[str, int]:
    """Tag limits from ``--limit-tag db=1`` (repeatable)."""
    limits = {}
    for text in values:
        tag, value = _split("--limit-tag", text, "db=1")
        try:
            limits[tag] = int(value)
        except ValueError:
            raise errors.UsageError(
                f"--limit-tag {text!r}: {value!r} is not a number of runs; e.g. --limit-tag db=1"
            ) from None
    return limits
