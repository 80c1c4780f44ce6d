"""Finding a pipeline's project and reading its settings (``runyard.toml`` / ``pyproject.toml``).

Settings, at the top level of ``runyard.toml`` or under ``[tool.runyard]`` in
``pyproject.toml`` (``runyard.toml`` wins when a folder holds both):

``data_dir``          folder of large inputs and outputs, shared by all runs and never
                      snapshotted; relative to the project root (default ``data``)
``snapshot_max_mb``   the largest snapshot accepted, in MB (default 200)
"""

from __future__ import annotations

import os
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Any

from runyard import errors
from runyard.core import projects
from runyard.execution import filesteps

__all__ = ["MARKERS", "find_project", "project_at"]

MARKERS = filesteps.MARKERS  # a folder holding one is a project root
_KNOWN = ("data_dir", "snapshot_max_mb")


def find_project(pipeline_file: str | os.PathLike[str]) -> projects.Project:
    """The project of ``pipeline_file``: the nearest folder, from the file's own upwards,
    holding ``runyard.toml`` or ``pyproject.toml``; else the file's folder.

    Raises ``UsageError`` when the settings found there are not valid.
    """
    return project_at(filesteps.project_root(pathlib.Path(pipeline_file)))


def project_at(root: str | os.PathLike[str]) -> projects.Project:
    """The project whose root is the folder ``root``, with the settings found there.

    Raises ``UsageError`` when ``root`` is not a folder or its settings are not valid.
    """
    path = pathlib.Path(root).resolve()
    if not path.is_dir():
        raise errors.UsageError(
            f"Project folder {str(root)!r} does not exist or is not a folder; give the folder "
            "holding the pipeline and its code"
        )
    settings_file, values = _read_settings(path)
    for key in values:
        if key not in _KNOWN:
            raise errors.UsageError(
                f"{_where(settings_file)} has an unknown runyard setting {key!r}"
                f"{errors.did_you_mean(key, _KNOWN)}"
            )
    data_dir = values.get("data_dir", projects.DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir.strip():
        raise errors.UsageError(
            f"{_where(settings_file)}: data_dir = {data_dir!r} is not valid; give a folder "
            'path relative to the project, such as "data"'
        )
    data_path = (path / data_dir).resolve()
    if data_path == path or path.is_relative_to(data_path):
        raise errors.UsageError(
            f"{_where(settings_file)}: data_dir = {data_dir!r} is the project itself (or "
            "holds it), so nothing would be snapshotted; give a folder inside it, such as "
            '"data"'
        )
    limit = values.get("snapshot_max_mb", projects.DEFAULT_SNAPSHOT_MAX_MB)
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
        raise errors.UsageError(
            f"{_where(settings_file)}: snapshot_max_mb = {limit!r} is not valid; give a "
            "number of megabytes above 0, such as 200"
        )
    return projects.Project(
        root=path,
        data_dir=data_path,
        snapshot_max_mb=float(limit),
        settings_file=settings_file,
    )


def _where(settings_file: pathlib.Path | None) -> str:
    if settings_file is None:
        return "The project settings"
    if settings_file.name == "pyproject.toml":
        return f"[tool.runyard] in {settings_file}"
    return str(settings_file)


def _read_settings(root: pathlib.Path) -> tuple[pathlib.Path | None, Mapping[str, Any]]:
    """The settings file in ``root`` (or None) and its runyard table."""
    for marker in MARKERS:
        path = root / marker
        if not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                document = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise errors.UsageError(
                f"Cannot read project settings from {path}: {exc}; fix the file's TOML"
            ) from exc
        if marker == "runyard.toml":
            return path, document
        table = document.get("tool", {}).get("runyard", {})
        if not isinstance(table, dict):
            raise errors.UsageError(
                f"{path}: tool.runyard = {table!r} is not a table; write the settings under "
                "a [tool.runyard] header"
            )
        return (path if table else None), table
    return None, {}
