"""Reading grid files (``<pipeline>.parameters.json``) and finding them beside a pipeline."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from runyard import errors

__all__ = ["find_grid_file", "read_grid_file"]

SUFFIX = ".parameters.json"


def find_grid_file(pipeline_file: pathlib.Path, pipeline_name: str) -> pathlib.Path | None:
    """``<pipeline name>.parameters.json`` beside the pipeline's file, if there is one; for
    a ``.orchest`` file, else ``<file name without .orchest>.parameters.json`` (Orchest's)."""
    names = [pipeline_name]
    if pipeline_file.suffix == ".orchest":
        names.append(pipeline_file.stem)
    for name in names:
        candidate = pipeline_file.parent / f"{name}{SUFFIX}"
        if candidate.is_file():
            return candidate
    return None


def read_grid_file(path: pathlib.Path) -> Any:
    """The JSON in ``path``; raises ``GridError`` naming the line and column of bad JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise errors.GridError(f"No grid file {str(path)!r}; check the --params path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.GridError(f"Cannot read grid file {str(path)!r}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.GridError(
            f"Grid file {path.name}, line {exc.lineno}, column {exc.colno}: {exc.msg}; fix the JSON"
        ) from None
