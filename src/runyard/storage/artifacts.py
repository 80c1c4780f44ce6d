"""The artifact store: step outputs as files under a local directory or any fsspec URL.

An output whose pickle is small (at most ``INLINE_MAX`` bytes: a number, a name, a short
list) is kept in its URI itself, as an RFC 2397 ``data:`` URI, rather than in a file of its
own: a run of small steps then writes no file, and the URI reads back like any other.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import pickle
import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from runyard import errors

if TYPE_CHECKING:
    import fsspec

__all__ = ["INLINE_MAX", "ArtifactStore", "StoredOutput", "is_inline"]

SERIALIZER = "pickle"
INLINE_MAX = 1024  # bytes of pickle kept in the URI itself
_DATA_PREFIX = "data:application/x-python-pickle;base64,"


def is_inline(uri: str) -> bool:
    """Whether ``uri`` holds its value itself (a ``data:`` URI): no file to read or delete."""
    return uri.startswith("data:")


class StoredOutput(tuple[str, int, str]):
    """(uri, size in bytes, serializer) of one stored output."""


class ArtifactStore:
    """Writes and reads step outputs; ``url`` is a directory path or an fsspec URL.

    A local directory is written with plain file calls, and fsspec is imported only for
    other URLs (or the operations that need its listing): it is most of the memory a run's
    process would otherwise start with, and fsspec's local layer costs twice as much per
    output.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._protocol = url.split("://", 1)[0] + "://" if "://" in url else ""
        self._local = self._protocol in ("", "file://")
        self._fs: fsspec.AbstractFileSystem | None = None
        if self._local:
            path = self.url[len(self._protocol) :] or "/"
            self.root = os.path.abspath(os.path.expanduser(path)).replace(os.sep, "/")
        else:
            import fsspec

            self._fs, self.root = fsspec.core.url_to_fs(self.url)
        self._made: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a fork server: a local store goes without its fsspec filesystem.
        state = self.__dict__.copy()
        if self._local:
            state["_fs"] = None
        return state

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of the store (made when first needed, for a local one)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def _folder(self, run_id: str) -> str:
        return f"{self.root}/runs/{run_id}"

    def put(self, run_id: str, step: str, output: str, value: Any) -> StoredOutput:
        """Store ``value`` as the output ``output`` of ``step`` in run ``run_id``.

        Raises whatever pickling raises for a value that cannot be stored.
        """
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) <= INLINE_MAX:
            uri = _DATA_PREFIX + base64.b64encode(data).decode("ascii")
            return StoredOutput((uri, len(data), SERIALIZER))
        folder = self._folder(run_id)
        path = f"{folder}/{step}.{output}.{SERIALIZER}"
        if self._local:
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            with open(path, "wb") as fh:
                fh.write(data)
        else:
            if folder not in self._made:
                self.fs.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            with self.fs.open(path, "wb") as fh:
                fh.write(data)
        return StoredOutput((self._protocol + path, len(data), SERIALIZER))

    def keep_file(self, run_id: str, step: str, path: pathlib.Path) -> str:
        """Keep a file a step of run ``run_id`` made (an executed notebook, its HTML) with
        the run's outputs, deleted with the run; returns where it is kept (a path, for a
        local store)."""
        folder = f"{self._folder(run_id)}/files/{step}"
        target = f"{folder}/{path.name}"
        if self._local:
            os.makedirs(folder, exist_ok=True)
            shutil.copyfile(path, target)
        else:
            self.fs.makedirs(folder, exist_ok=True)
            self.fs.put_file(str(path), target)
        return self._protocol + target

    def kept_files(self, run_id: str) -> list[tuple[str, str]]:
        """The files ``keep_file`` kept for run ``run_id``: (step, uri), by step and name."""
        folder = f"{self._folder(run_id)}/files"
        if not self.fs.isdir(folder):
            return []
        found = []
        for path in sorted(self.fs.find(folder)):
            relative = str(path)[len(folder) + 1 :]
            step, _, _ = relative.partition("/")
            found.append((step, self._protocol + str(path)))
        return found

    def read_kept(self, run_id: str, step: str, name: str) -> bytes:
        """The content of the file ``name`` that ``keep_file`` kept for ``step`` of run
        ``run_id``. Raises ``NotFoundError`` when no such file was kept (a name is never
        taken as a path)."""
        for kept_step, uri in self.kept_files(run_id):
            if kept_step == step and uri.rsplit("/", 1)[-1] == name:
                with self.open_uri(uri) as fh:
                    data: bytes = fh.read()
                    return data
        raise errors.NotFoundError(
            f"Run {run_id} kept no file {name!r} of step {step!r}; `runyard run inspect "
            f"{run_id}` lists the files it kept"
        )

    def get(self, uri: str) -> Any:
        """Read back a value stored by ``put``."""
        if is_inline(uri):
            _, _, encoded = uri.partition(",")
            return pickle.loads(base64.b64decode(encoded))
        with self.open_uri(uri) as fh:
            return pickle.load(fh)

    def discard(
        self, run_ids: Sequence[str], unused: Sequence[str], still_used: Sequence[str]
    ) -> None:
        """Delete what deleted runs leave: their folders (but the files in ``still_used``,
        which other runs reuse) and the ``unused`` files they reused from other runs."""
        kept_in = {uri.rsplit("/", 1)[0] for uri in still_used if not is_inline(uri)}
        for run_id in run_ids:
            if self._protocol + self._folder(run_id) not in kept_in:
                self.delete_run(run_id)
        for uri in unused:
            if is_inline(uri):
                continue  # kept in the store's rows only
            path = uri[len(self._protocol) :]
            if self.fs.exists(path):
                self.fs.rm(path)
            folder = path.rsplit("/", 1)[0]
            if (
                folder.startswith(f"{self.root}/runs/")
                and self.fs.exists(folder)
                and not self.fs.ls(folder)
            ):
                self.fs.rmdir(folder)
            self._made.discard(folder)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int, str]:
        """Store the bytes of ``chunks`` under ``<root>/workdata/<key>``; returns (uri,
        size, sha256 hex). A failure leaves no file behind."""
        folder = f"{self.root}/workdata"
        path = f"{folder}/{key}"
        self.fs.makedirs(folder, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(path, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
        except BaseException:
            if self.fs.exists(path):
                self.fs.rm(path)
            raise
        return self._protocol + path, size, digest.hexdigest()

    def open_uri(self, uri: str) -> BinaryIO:
        """A stored file, for reading."""
        if self._local and uri.startswith(self._protocol):
            return open(uri[len(self._protocol) :], "rb")
        import fsspec

        opened: BinaryIO = fsspec.open(uri, "rb").open()
        return opened

    def delete_uri(self, uri: str) -> None:
        if is_inline(uri):
            return
        path = uri[len(self._protocol) :]
        if self.fs.exists(path):
            self.fs.rm(path)

    def delete_run(self, run_id: str) -> None:
        path = self._folder(run_id)
        self._made.discard(path)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
