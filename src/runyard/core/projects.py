"""A project: the directory holding pipelines and their code, and how it is snapshotted."""

from __future__ import annotations

import dataclasses
import pathlib

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_SNAPSHOT_MAX_MB", "Project"]

DEFAULT_DATA_DIR = "data"
DEFAULT_SNAPSHOT_MAX_MB = 200.0


@dataclasses.dataclass(frozen=True, slots=True)
class Project:
    """A project directory and its snapshot settings.

    ``data_dir`` (large inputs and outputs, shared by all runs) is never copied into a
    snapshot; a snapshot bigger than ``snapshot_max_mb`` is refused. ``settings_file`` is the
    file the settings were read from, None when they are the defaults.
    """

    root: pathlib.Path  # absolute
    data_dir: pathlib.Path  # absolute; usually inside root
    snapshot_max_mb: float = DEFAULT_SNAPSHOT_MAX_MB
    settings_file: pathlib.Path | None = None

    @property
    def snapshot_max_bytes(self) -> int:
        return int(self.snapshot_max_mb * 1024 * 1024)
