"""Running file steps: scripts (``python file.py``), shell scripts (``bash file.sh``) and
notebooks (nbclient), each in the run's working copy, and ``runyard.script`` /
``runyard.notebook`` that make them steps of Python pipelines.

A file step's process reads its parameters and inputs, and writes its outputs, through an
exchange folder (``runyard.execution.exchange``). What it prints is the step's log: its
lines go through this process's ``sys.stdout`` / ``sys.stderr``, which a run's process
captures as the step's log lines. A script that exits non-zero fails the step with its exit
code; a notebook whose cell fails names the cell, its source and its traceback.
"""

from __future__ import annotations

import collections
import contextvars
import hashlib
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from runyard import errors
from runyard.core import filesteps
from runyard.execution import context, exchange, workspace

__all__ = ["StepProcessFailed", "make_step", "notebook", "project_root", "run", "script"]

MARKERS = ("runyard.toml", "pyproject.toml")  # a folder holding one is a project root
_TAIL = 30  # stderr lines kept as a failed script's traceback
_DRAIN = 2.0  # seconds to read what a finished script left in its pipes

# (step name, file) -> where the file is kept (a path or URL)
Keep = Callable[[str, pathlib.Path], str]


class StepProcessFailed(Exception):
    """A script's process exited with a non-zero code or was killed by a signal."""

    def __init__(self, message: str, *, exit_code: int, stderr_tail: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.user_traceback = stderr_tail  # the step's failure traceback (see boundary)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (str(self), self.exit_code, self.user_traceback))


def _rebuild(message: str, exit_code: int, stderr_tail: str) -> StepProcessFailed:
    return StepProcessFailed(message, exit_code=exit_code, stderr_tail=stderr_tail)


# -- defining ------------------------------------------------------------------------------


def project_root(file: pathlib.Path) -> pathlib.Path:
    """The project of ``file``: the nearest folder from the file's own upwards holding
    ``runyard.toml`` or ``pyproject.toml``, else the file's folder."""
    folder = file.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).is_file() for marker in MARKERS):
            return candidate
    return folder


def make_step(
    path: str | os.PathLike[str],
    *,
    base: pathlib.Path,
    root: pathlib.Path,
    kinds: Sequence[filesteps.FileKind],
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    timeout: float | None = None,
    kernel: str | None = None,
    description: str = "",
    owner: str = "",
    retries: int = 0,
    retry_delay: float = 0.0,
) -> filesteps.FileStep:
    """A file step of ``path``, relative to the folder ``base``, which must stay inside the
    project folder ``root``. Raises ``DefinitionError`` for a path that leaves the project,
    a missing file, or a file of another kind than ``kinds``."""
    where = f" in {owner}" if owner else ""
    given = pathlib.Path(path)
    found = (base / given).resolve()
    if not found.is_relative_to(root.resolve()):
        raise errors.DefinitionError(
            f"Step file {str(path)!r}{where} leads outside the project {root}; keep the "
            "step's files inside the project (they are snapshotted with it)"
        )
    if not found.is_file():
        raise errors.DefinitionError(
            f"Step file {str(path)!r}{where} does not exist (looked for {found}); check "
            "the path, which is relative to the pipeline's file"
        )
    kind = filesteps.kind_of(found)
    if kind not in kinds:
        wanted = " or ".join(str(k) for k in kinds)
        raise errors.DefinitionError(
            f"Step file {str(path)!r}{where} is a {kind}, not a {wanted}; use "
            f"runyard.{'notebook' if kind is filesteps.FileKind.NOTEBOOK else 'script'}()"
        )
    digest = hashlib.sha256(found.read_bytes()).hexdigest()[:12]
    return filesteps.FileStep(
        found,
        version=f"sha-{digest}",
        name=name,
        kind=kind,
        params=params,
        outputs=outputs,
        timeout=timeout,
        kernel=kernel,
        description=description,
        retries=retries,
        retry_delay=retry_delay,
    )


def _caller_folder() -> pathlib.Path:
    """The folder of the file calling ``script``/``notebook`` (a pipeline file), or the
    current directory when called interactively."""
    frame = sys._getframe(2)
    file = frame.f_globals.get("__file__")
    return pathlib.Path(file).resolve().parent if file else pathlib.Path.cwd()


def script(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
) -> filesteps.FileStep:
    """A step that runs the Python (``.py``) or shell (``.sh``) script ``path``, relative to
    the calling pipeline file, in the run's working copy.

    ``params`` are the step's parameters with their defaults (read with
    ``runyard.get_step_param``); ``outputs`` names the outputs the script must make, so
    Python steps downstream can pick them by name; ``timeout`` (seconds) fails a run whose
    step takes longer, ``retries`` runs a failed step again (after ``retry_delay`` seconds,
    growing as for Python steps). Call it in a pipeline body with upstream outputs as its
    inputs: ``clean(load())``. Raises ``DefinitionError`` for a missing file, one outside
    the project, or a notebook.
    """
    base = _caller_folder()
    return make_step(
        path,
        base=base,
        root=project_root(base / "_"),
        kinds=(filesteps.FileKind.SCRIPT, filesteps.FileKind.SHELL),
        name=name,
        params=params,
        outputs=outputs,
        timeout=timeout,
        retries=retries,
        retry_delay=retry_delay,
    )


def notebook(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    timeout: float | None = None,
    kernel: str | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
) -> filesteps.FileStep:
    """A step that executes the notebook ``path`` (relative to the calling pipeline file)
    on ``kernel`` (default: the one its metadata names, else ``python3``); the executed
    notebook and its HTML are kept with the run. Otherwise as ``script``."""
    base = _caller_folder()
    return make_step(
        path,
        base=base,
        root=project_root(base / "_"),
        kinds=(filesteps.FileKind.NOTEBOOK,),
        name=name,
        params=params,
        outputs=outputs,
        timeout=timeout,
        kernel=kernel,
        retries=retries,
        retry_delay=retry_delay,
    )


# -- running -------------------------------------------------------------------------------


def run(
    step: filesteps.FileStep,
    *,
    ctx: context.StepContext,
    inputs: Sequence[tuple[str, Any]],
    keep: Keep | None = None,
) -> dict[str, Any]:
    """Run one attempt of ``step`` with ``inputs`` ((output name, value) pairs, in order);
    returns the outputs it made, by name, in order.

    Raises ``StepProcessFailed`` for a script that fails, ``NotebookFailed`` for a notebook
    cell that fails (after keeping the executed notebook), ``LoadError`` when the file is
    not in the run's working copy.
    """
    place = workspace.current()
    path = place.locate(step.path)
    if not path.is_file():
        raise errors.LoadError(
            f"Step {ctx.step_name!r}: its file {step.path.name} is not in the run's working "
            f"copy (looked for {path}); it was deleted, or left out of the snapshot by "
            ".gitignore"
        )
    folder = pathlib.Path(tempfile.mkdtemp(prefix="runyard-step-"))
    try:
        step_file = exchange.prepare(
            folder,
            step_name=ctx.step_name,
            pipeline_name=ctx.pipeline_name,
            pipeline_params=ctx.pipeline_params,
            step_params=ctx.step_params,
            inputs=inputs,
            run_id=ctx.run_id,
            job_id=ctx.job_id,
            attempt=ctx.attempt,
        )
        env = {exchange.ENV_VAR: str(step_file), "PYTHONUNBUFFERED": "1"}
        if step.kind is filesteps.FileKind.NOTEBOOK:
            _run_notebook(step, path, place.workdir, env, ctx.step_name, keep)
        else:
            _run_script(step, path, place.workdir, env)
        return exchange.read_outputs(step_file)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_script(
    step: filesteps.FileStep, path: pathlib.Path, cwd: pathlib.Path, env: Mapping[str, str]
) -> None:
    if step.kind is filesteps.FileKind.SHELL:
        command = ["bash", str(path)]
    else:
        command = [sys.executable, str(path)]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
    )
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
    assert process.stdout is not None and process.stderr is not None
    pumps = [
        # Each pump runs in a copy of this thread's context: its lines are the step's.
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(_pump, process.stdout, "stdout", None),
            daemon=True,
        ),
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(_pump, process.stderr, "stderr", tail),
            daemon=True,
        ),
    ]
    for pump in pumps:
        pump.start()
    try:
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        # The pipes close when the script's process exits, unless something it started in
        # the background (``cmd &``) holds them: then its lines are still read (they are the
        # step's), but the step does not wait for it.
        for pump in pumps:
            pump.join(_DRAIN)
    if code == 0:
        return
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    raise StepProcessFailed(
        f"{step.kind.capitalize()} {path.name} {how}",
        exit_code=code,
        stderr_tail="".join(tail),
    )


def _pump(stream: IO[str], name: str, tail: collections.deque[str] | None) -> None:
    for line in iter(stream.readline, ""):
        if tail is not None:
            tail.append(line)
        target = sys.stdout if name == "stdout" else sys.stderr
        target.write(line)
    stream.close()


def _run_notebook(
    step: filesteps.FileStep,
    path: pathlib.Path,
    cwd: pathlib.Path,
    env: Mapping[str, str],
    step_name: str,
    keep: Keep | None,
) -> None:
    from runyard.execution import notebooks  # nbclient: only where notebooks run

    quiet = logging.getLogger("traitlets")  # nbclient's "Executing notebook with kernel"
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)

    # Without a store to keep them in (Pipeline.run), the files stay in a folder of their
    # own, which the step's log names.
    out_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"runyard-notebook-{step_name}-"))

    def stream(name: str, text: str) -> None:
        target = sys.stderr if name == "stderr" else sys.stdout
        target.write(text)

    try:
        result = notebooks.execute_notebook(
            path, cwd=cwd, out_dir=out_dir, env=env, kernel_name=step.kernel, stream=stream
        )
    except notebooks.NotebookFailed as exc:
        _keep_notebook(exc.result, step_name, keep, out_dir)
        raise
    _keep_notebook(result, step_name, keep, out_dir)


def _keep_notebook(result: Any, step_name: str, keep: Keep | None, out_dir: pathlib.Path) -> None:
    sys.stdout.flush()
    kept = [(result.executed, "Executed notebook")]
    if result.html is not None:
        kept.append((result.html, "Executed notebook as HTML"))
    for file, label in kept:
        where = keep(step_name, file) if keep is not None else str(file)
        print(f"{label}: {where}", file=sys.stderr)
    if result.html is None:
        print(f"No HTML of the executed notebook: {result.note}", file=sys.stderr)
    if keep is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
