"""Processing one datum: its input files copied into a private folder, the transform run in
its own process (``cmd`` with ``stdin``, or a python function), its output files stored.

Each try works in a folder holding ``in/<input name>/...`` (the datum's files at their repo
paths) and ``out/``, emptied before and after: one folder per thread of the pool, reused
(creating and removing folders costs more than the trivial transforms themselves). The
transform's process runs in its own session, so a timeout or a stop kills it and every
process it started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

from runyard.core import datapipelines as dp
from runyard.core import datarepos, datums

__all__ = ["Blobs", "DatumResult", "DatumRunner", "input_variable"]

_LOG_LIMIT = 1_000_000  # characters of a datum's logs kept (the end of them)


class Blobs(Protocol):
    """Where file contents live (``storage.snapshots.SnapshotStore``)."""

    def put_file(self, source: str) -> tuple[str, int, int]: ...

    def copy_blob(self, digest: str, target: str, *, copier: Any = None) -> None: ...

    def copier(self) -> Any: ...


@dataclasses.dataclass(frozen=True, slots=True)
class DatumResult:
    id: str
    state: dp.DatumState
    files: tuple[str, ...]
    outputs: tuple[datarepos.FileEntry, ...]
    tries: int
    seconds: float
    logs: str
    error: str | None
    download_bytes: int = 0
    upload_bytes: int = 0
    download_time: float = 0.0
    upload_time: float = 0.0


def input_variable(name: str) -> str:
    """The environment variable holding an input's matched path: ``RUNYARD_INPUT_<NAME>``."""
    return f"RUNYARD_INPUT_{name.upper().replace('-', '_')}"


class DatumRunner:
    """Runs datums of one job's transform; safe to call from many threads at once.

    ``stop()`` kills every running transform and makes further tries fail at once.
    """

    def __init__(
        self,
        *,
        pipeline: str,
        job_id: str,
        spec: dp.PipelineSpec,
        blobs: Blobs,
        work_root: pathlib.Path,
        base_env: dict[str, str] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.job_id = job_id
        self.spec = spec
        self.blobs = blobs
        self.work_root = work_root
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.base_env.update(dict(spec.transform.env))
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._stopped = threading.Event()
        self._copier = blobs.copier()
        self._local = threading.local()
        self._slots = 0
        self._python: set[_PythonProcess] = set()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            running = list(self._running)
            python = list(self._python)
        for proc in running:
            _kill(proc)
        for process in python:
            process.kill()

    def run(self, datum: datums.Datum, datum_id: str) -> DatumResult:
        started = time.monotonic()
        logs: list[str] = []
        error: str | None = None
        totals = {"down": 0, "up": 0, "down_t": 0.0, "up_t": 0.0}
        tries = 0
        for attempt in range(1, self.spec.datum_tries + 1):
            if self._stopped.is_set():
                error = error or "the job was stopped"
                break
            tries = attempt
            if self.spec.datum_tries > 1:
                logs.append(f"--- try {attempt} of {self.spec.datum_tries} ---\n")
            outputs, error, text = self._try(datum, datum_id, attempt, totals)
            logs.append(text)
            if error is None:
                return DatumResult(
                    datum_id,
                    dp.DatumState.SUCCESS,
                    tuple(datum.paths),
                    outputs,
                    tries,
                    time.monotonic() - started,
                    _trim("".join(logs)),
                    None,
                    int(totals["down"]),
                    int(totals["up"]),
                    totals["down_t"],
                    totals["up_t"],
                )
            logs.append(f"[runyard] {error}\n")
        return DatumResult(
            datum_id,
            dp.DatumState.FAILURE,
            tuple(datum.paths),
            (),
            tries,
            time.monotonic() - started,
            _trim("".join(logs)),
            error,
            int(totals["down"]),
            0,
            totals["down_t"],
            0.0,
        )

    def _try(
        self, datum: datums.Datum, datum_id: str, attempt: int, totals: dict[str, float]
    ) -> tuple[tuple[datarepos.FileEntry, ...], str | None, str]:
        folder = self._folder()
        in_dir, out_dir = folder / "in", folder / "out"
        keep = {in_dir, out_dir, *(in_dir / p.name for p in datum.inputs)}
        _empty(folder, keep)
        try:
            t0 = time.monotonic()
            env = dict(self.base_env)
            env.update(
                RUNYARD_INPUT_DIR=str(in_dir),
                RUNYARD_OUTPUT_DIR=str(out_dir),
                RUNYARD_DATUM_ID=datum_id,
                RUNYARD_JOB_ID=self.job_id,
                RUNYARD_PIPELINE=self.pipeline,
                RUNYARD_INPUT_NAMES=",".join(p.name for p in datum.inputs),
            )
            out_dir.mkdir(parents=True, exist_ok=True)
            made: set[pathlib.Path] = set()
            for part in datum.inputs:
                base = in_dir / part.name
                base.mkdir(parents=True, exist_ok=True)
                env[input_variable(part.name)] = str(base / part.path.lstrip("/"))
                for f in part.files:
                    target = base / f.path.lstrip("/")
                    if target.parent not in made:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        made.add(target.parent)
                    self.blobs.copy_blob(f.digest, str(target), copier=self._copier)
                    totals["down"] += f.size
            totals["down_t"] += time.monotonic() - t0
            error, text = self._execute(env, folder)
            if error is not None:
                return (), error, text
            t1 = time.monotonic()
            outputs = []
            for path in _output_files(out_dir):
                digest, size, _ = self.blobs.put_file(str(path))
                where = "/" + path.relative_to(out_dir).as_posix()
                outputs.append(datarepos.FileEntry(where, digest, size))
                totals["up"] += size
            totals["up_t"] += time.monotonic() - t1
            return tuple(outputs), None, text
        except OSError as exc:
            return (), f"runyard could not prepare or collect the datum's files: {exc}", ""
        finally:
            _empty(folder, keep)

    def _folder(self) -> pathlib.Path:
        """This thread's working folder."""
        folder: pathlib.Path | None = getattr(self._local, "folder", None)
        if folder is None:
            with self._lock:
                self._slots += 1
                folder = self.work_root / f"slot{self._slots}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            self._local.folder = folder
        return folder

    def close(self) -> None:
        """End the python transform processes (call once the job's datums are done)."""
        with self._lock:
            processes = list(self._python)
            self._python.clear()
        for process in processes:
            process.close()

    def _python_process(self, folder: pathlib.Path) -> _PythonProcess:
        """This thread's python transform process, started when it has none (or its last
        one died)."""
        process: _PythonProcess | None = getattr(self._local, "python", None)
        if process is None or not process.alive:
            assert self.spec.transform.python is not None
            process = _PythonProcess(
                self.spec.transform.python, self.base_env, folder.with_suffix(".log")
            )
            self._local.python = process
            with self._lock:
                self._python.add(process)
        return process

    def _execute(self, env: dict[str, str], cwd: pathlib.Path) -> tuple[str | None, str]:
        transform = self.spec.transform
        if transform.python is not None:
            process = self._python_process(cwd)
            if self._stopped.is_set():
                return "the job was stopped", ""
            return process.run(env, cwd, self.spec.datum_timeout, self._stopped)
        argv = list(transform.cmd)
        stdin = ("\n".join(transform.stdin) + "\n").encode() if transform.stdin else None
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return f"cannot start {argv[0]!r}: {exc.strerror or exc}; check transform.cmd", ""
        with self._lock:
            self._running.add(proc)
        try:
            if self._stopped.is_set():
                _kill(proc)
            try:
                out, _ = proc.communicate(stdin, timeout=self.spec.datum_timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                out, _ = proc.communicate()
                text = out.decode("utf-8", "replace")
                return f"timed out after {self.spec.datum_timeout:g} s (datum_timeout)", text
        finally:
            with self._lock:
                self._running.discard(proc)
        text = out.decode("utf-8", "replace")
        if self._stopped.is_set() and proc.returncode != 0:
            return "the job was stopped", text
        if proc.returncode != 0:
            how = (
                f"killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"exited {proc.returncode}"
            )
            return f"the transform {how}", text
        return None, text


class _PythonProcess:
    """A long-lived process running one python transform, a datum per task (see
    ``execution.datumstep``): the function is imported once, not once per datum."""

    def __init__(self, reference: str, env: dict[str, str], log: pathlib.Path) -> None:
        self.log = log  # what the process wrote outside any datum (an import error, say)
        read, write = os.pipe()
        try:
            with open(log, "wb") as out:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "runyard.execution.datumstep",
                        reference,
                        "--answers",
                        str(write),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=(write,),
                    start_new_session=True,
                )
        finally:
            os.close(write)
        self.answers = os.fdopen(read, "rb")
        self.alive = True

    def run(
        self,
        env: dict[str, str],
        cwd: pathlib.Path,
        timeout: float | None,
        stopped: threading.Event,
    ) -> tuple[str | None, str]:
        """Run one datum; (an error or None, what it wrote)."""
        datum_log = cwd.with_name(cwd.name + ".datum.log")
        task = {"env": env, "cwd": str(cwd), "log": str(datum_log)}
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(task).encode() + b"\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.answers], [], [], timeout)
            line = self.answers.readline() if ready else None
        except (BrokenPipeError, OSError):
            line = b""
        text = _read(datum_log)
        if line is None:
            self.kill()
            return f"timed out after {timeout:g} s (datum_timeout)", text
        if not line:
            try:
                code = self.proc.wait(timeout=5)  # it ended, or is ending: say how
            except subprocess.TimeoutExpired:
                code = -9
            self.kill()
            if stopped.is_set():
                return "the job was stopped", text
            how = f"killed by signal {-code}" if code < 0 else f"exited {code}"
            return f"the transform's process {how}", text + _read(self.log)
        if json.loads(line).get("ok"):
            return None, text
        return "the transform raised an exception (its traceback is in the logs)", text

    def kill(self) -> None:
        self.alive = False
        _kill(self.proc)
        self.proc.wait()
        self.answers.close()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def close(self) -> None:
        """Let the process end by itself (its tasks end), else kill it."""
        if not self.alive:
            return
        self.alive = False
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill(self.proc)
            self.proc.wait()
        self.answers.close()


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _output_files(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """The regular files the transform left under ``out_dir``, by path; symlinks are not
    followed (they could point anywhere) and are left out."""
    found: list[pathlib.Path] = []
    for folder, _, names in os.walk(out_dir, followlinks=False):
        for name in names:
            path = pathlib.Path(folder, name)
            if not path.is_symlink() and path.is_file():
                found.append(path)
    return sorted(found)


def _empty(folder: pathlib.Path, keep: set[pathlib.Path]) -> None:
    """Remove everything under ``folder`` but the folders in ``keep`` (emptied too). A
    transform may have left unwritable folders or odd files: they are made removable."""
    for where, dirs, names in os.walk(folder, topdown=False, followlinks=False):
        base = pathlib.Path(where)
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(base / name)
        for name in dirs:
            path = base / name
            if path in keep:
                continue
            if path.is_symlink():
                os.unlink(path)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _trim(text: str) -> str:
    if len(text) <= _LOG_LIMIT:
        return text
    return "[runyard] earlier output left out\n" + text[-_LOG_LIMIT:]
