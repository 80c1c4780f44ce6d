"""The artifact store: step outputs as files under a local directory or any fsspec URL."""

from __future__ import annotations

import pickle
from typing import Any

import fsspec

__all__ = ["ArtifactStore", "StoredOutput"]

SERIALIZER = "pickle"


class StoredOutput(tuple[str, int, str]):
    """(uri, size in bytes, serializer) of one stored output."""


class ArtifactStore:
    """Writes and reads step outputs; ``url`` is a directory path or an fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self._protocol = url.split("://", 1)[0] + "://" if "://" in url else ""

    def _path(self, run_id: str, step: str, output: str) -> str:
        return f"{self.root}/runs/{run_id}/{step}/{output}.{SERIALIZER}"

    def put(self, run_id: str, step: str, output: str, value: Any) -> StoredOutput:
        """Store ``value`` as the output ``output`` of ``step`` in run ``run_id``.

        Raises whatever pickling raises for a value that cannot be stored.
        """
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        path = self._path(run_id, step, output)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as fh:
            fh.write(data)
        return StoredOutput((self._protocol + path, len(data), SERIALIZER))

    def get(self, uri: str) -> Any:
        """Read back a value stored by ``put``."""
        with fsspec.open(uri, "rb") as fh:
            return pickle.load(fh)

    def delete_run(self, run_id: str) -> None:
        path = f"{self.root}/runs/{run_id}"
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
