"""Where runyard keeps things, read from the environment."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping

__all__ = ["Settings"]


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """``RUNYARD_HOME`` (default ``./.runyard``) holds the SQLite database, artifacts and
    runs' working copies unless ``RUNYARD_DATABASE_URL`` / ``RUNYARD_ARTIFACTS_URL`` /
    ``RUNYARD_WORK_DIR`` point elsewhere. The working copies are always on this machine."""

    home: pathlib.Path
    database_url: str
    artifacts_url: str
    work_dir: pathlib.Path

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: str | os.PathLike[str] | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        root = pathlib.Path(home or env.get("RUNYARD_HOME") or ".runyard").expanduser()
        root = root.resolve()
        return cls(
            home=root,
            database_url=env.get("RUNYARD_DATABASE_URL") or f"sqlite:///{root / 'runyard.db'}",
            artifacts_url=env.get("RUNYARD_ARTIFACTS_URL") or str(root / "artifacts"),
            work_dir=pathlib.Path(env.get("RUNYARD_WORK_DIR") or root / "work").expanduser(),
        )
