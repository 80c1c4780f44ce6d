"""Executing a notebook step: run a ``.ipynb`` on a Jupyter kernel, keep it and its HTML.

``execute_notebook`` runs every cell of a notebook with nbclient, in a kernel whose current
directory is the run's working copy, and always leaves two files behind: the executed
notebook with its outputs, and the same rendered to HTML by nbconvert (what the run's page
links to). A cell that raises, runs past the timeout or kills its kernel ends it with
``NotebookFailed``, after both files are written with the outputs up to that cell.

The kernel is the one the notebook's metadata names, unless the caller names another. The
default Python kernel, ``python3``, always runs on the interpreter of the calling process
(``sys.executable``), so a notebook sees runyard and the packages of the environment runyard
runs in, whatever Python kernels happen to be installed elsewhere on the machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import types
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar, TypeVarTuple

import nbformat
import zmq
from jupyter_client import kernelspec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient import exceptions as nbclient_errors
from nbconvert import HTMLExporter
from nbconvert.filters import strip_ansi

from runyard import errors
from runyard.execution import pids

__all__ = [
    "DEFAULT_KERNEL",
    "NotebookFailed",
    "NotebookResult",
    "NotebookTimedOut",
    "execute_notebook",
]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

DEFAULT_KERNEL = "python3"  # ipykernel's name for the Python kernel (jupyter_client's too)

# Marks the error nbclient reports for a cell stopped by the timeout (see _Client below).
_TIMEOUT_MARK = "runyard_cell_timeout"

# The longest path a Unix socket can have, with room to spare (108 bytes on Linux, 104 on
# macOS, both counting the final NUL).
_SOCKET_PATH_MAX = 100

# Kernel folders are "<temporary folder>/runyard-kernel-<pid of the run's process>-<random>".
_KERNEL_DIR = "runyard-kernel-"


@dataclasses.dataclass(frozen=True)
class NotebookResult:
    """The files an executed notebook left behind."""

    executed: pathlib.Path  # the executed notebook (.ipynb) with its outputs; always written
    html: pathlib.Path | None  # the same rendered to HTML; None only if rendering failed
    note: str = ""  # why ``html`` is None, when it is


class NotebookFailed(Exception):
    """A cell of the notebook failed: it raised, ran past the timeout, or its kernel died.

    ``cell_index`` is the cell's position in the notebook, counted from 0 over all cells
    (markdown included), as nbformat and nbclient count them. ``result`` holds the executed
    notebook (outputs up to and including the failing cell's error) and its HTML.
    """

    def __init__(
        self,
        *,
        notebook: str,
        cell_index: int,
        cell_source: str,
        ename: str,
        evalue: str,
        traceback_text: str,
        result: NotebookResult,
    ) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.cell_source = cell_source
        self.ename = ename
        self.evalue = evalue
        self.traceback_text = traceback_text
        self.result = result
        super().__init__(self._describe())

    def _describe(self) -> str:
        headline = f"Cell {self.cell_index} of {self.notebook} failed: {self.ename}"
        if self.evalue:
            headline += f": {self.evalue}"
        source = textwrap.indent(self.cell_source.rstrip("\n") or "(empty)", "    ")
        text = f"{headline}\n\nThe cell:\n{source}"
        if self.traceback_text:
            text += f"\n\n{self.traceback_text.rstrip()}"
        return text

    @property
    def user_traceback(self) -> str:
        """The failing cell's traceback: the step's failure traceback (see boundary)."""
        return self.traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__: rebuild from the fields so the error survives pickling
        # (e.g. on its way out of a run's process).
        return (_rebuild, (type(self), self._fields()))

    def _fields(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "cell_index": self.cell_index,
            "cell_source": self.cell_source,
            "ename": self.ename,
            "evalue": self.evalue,
            "traceback_text": self.traceback_text,
            "result": self.result,
        }


class NotebookTimedOut(NotebookFailed):
    """A cell of the notebook ran longer than the per-cell timeout and was stopped."""


def _rebuild(cls: type[NotebookFailed], fields: dict[str, Any]) -> NotebookFailed:
    return cls(**fields)


def execute_notebook(
    path: pathlib.Path,
    *,
    cwd: pathlib.Path,
    out_dir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    kernel_name: str | None = None,
    timeout: float | None = None,
    stream: Callable[[str, str], None] | None = None,
) -> NotebookResult:
    """Execute the notebook at ``path`` and write it, executed, to ``out_dir``.

    The kernel is ``kernel_name`` if given, else the one the notebook's ``kernelspec``
    metadata names, else ``python3``; it starts in ``cwd`` with the caller's environment plus
    ``env``. Outputs the notebook held before are cleared first, so every output in the
    result comes from this execution. ``timeout`` limits each cell, in seconds (None: no
    limit). ``stream(name, text)``, if given, is called with each piece of ``"stdout"`` or
    ``"stderr"`` text as the kernel sends it while the cell runs (pieces, not necessarily
    whole lines); it must not raise.

    Writes ``out_dir/<stem>.ipynb`` and ``out_dir/<stem>.html`` whether the cells succeed
    or not, and returns them. Raises ``NotebookFailed`` (``NotebookTimedOut`` for a timeout)
    when a cell fails, after writing both; ``errors.DefinitionError`` when the notebook
    cannot be read or names a kernel that is not installed (nothing is written then);
    ``errors.RunyardError`` when the kernel does not start (both files are written, with
    no outputs); ``KeyboardInterrupt`` on Ctrl-C, after shutting the kernel down and writing
    the notebook. SIGINT and SIGTERM keep the caller's handlers throughout (see ``_run``).
    """
    nb = _read(path)
    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or DEFAULT_KERNEL
    specs = _KernelSpecs()
    _check_kernel(specs, name, path, given=kernel_name is not None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None

    # The kernel's connection file and sockets (see _kernel_manager).
    _remove_orphaned_kernel_dirs()
    with tempfile.TemporaryDirectory(
        prefix=f"{_KERNEL_DIR}{os.getpid()}-", ignore_cleanup_errors=True
    ) as kernel_dir:
        manager = _kernel_manager(name, specs, kernel_dir)
        client = _Client(nb, km=manager, kernel_name=name, stream=stream)
        # A graceful shutdown (about 0.2 s more than killing the kernel) lets the kernel's Python
        # exit normally: files a notebook left open are flushed, atexit handlers run.
        client.shutdown_kernel = "graceful"
        if timeout is not None and timeout > 0:
            # nbclient's `timeout` trait is an Integer; `timeout_func` may return a float (its
            # result only feeds a monotonic deadline and get_msg(timeout=...)).
            client.timeout_func = lambda cell: timeout  # type: ignore[assignment]
            # Interrupt the cell (a KeyboardInterrupt traceback in its outputs shows where it
            # was) and report the error below instead of nbclient's bare CellTimeoutError.
            client.interrupt_on_timeout = True
            client.error_on_timeout = {
                "ename": "TimeoutError",
                "evalue": f"the cell ran longer than the timeout of {timeout:g} s and was stopped",
                "traceback": [],
                _TIMEOUT_MARK: True,
            }

        failure: BaseException | None = None
        try:
            _run(
                client.async_execute(
                    cwd=str(cwd), env={**os.environ, **(env or {})}, cleanup_kc=True
                )
            )
        except KeyboardInterrupt:  # the kernel is shut down by then (see _run)
            _write(nb, path, out_dir)
            raise
        except (nbclient_errors.CellExecutionError, nbclient_errors.DeadKernelError) as exc:
            failure = exc
        except Exception as exc:  # the kernel did not start (or died before the first cell)
            if client.current_cell is not None:
                failure = exc
            else:
                result = _write(nb, path, out_dir)
                raise errors.RunyardError(
                    f"The kernel {name!r} for {path.name} did not start: "
                    f"{type(exc).__name__}: {exc}. The notebook was written without outputs "
                    f"to {result.executed}."
                ) from exc

        if failure is None:
            return _write(nb, path, out_dir)
        index = client.current_cell if client.current_cell is not None else 0
        cell = nb.cells[index]
        timed_out = bool(client.error_reply.get(_TIMEOUT_MARK))
        ename, evalue, traceback_text = _describe_failure(failure, client.error_reply, cell)
        if timed_out or not client.error_reply:
            # The kernel put no error in the cell's outputs: add one, so that the notebook and
            # its HTML show where and why execution stopped.
            cell.outputs.append(
                nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])
            )
        result = _write(nb, path, out_dir)
        error_class = NotebookTimedOut if timed_out else NotebookFailed
        raise error_class(
            notebook=path.name,
            cell_index=index,
            cell_source=cell.source,
            ename=ename,
            evalue=evalue,
            traceback_text=traceback_text,
            result=result,
        ) from failure


def _remove_orphaned_kernel_dirs() -> None:
    """Remove the kernel folders of processes that are gone.

    A run's process stopped by a signal ends without removing its kernel's folder (its
    kernel exits on its own, seeing its parent gone). The folder names that process.
    """
    for folder in pathlib.Path(tempfile.gettempdir()).glob(f"{_KERNEL_DIR}*-*"):
        pid = folder.name[len(_KERNEL_DIR) :].split("-", 1)[0]
        if pid.isdigit() and pids.gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _kernel_manager(name: str, specs: _KernelSpecs, kernel_dir: str) -> AsyncKernelManager:
    """A manager for one kernel, whose connection file is in ``kernel_dir`` (private, 0700).

    An ipykernel kernel talks over Unix sockets in that folder. Over TCP, jupyter_client
    picks free ports by binding and releasing them, and the kernel binds them a second
    later: two notebooks starting at once (runs in parallel) can pick the same port, and
    one kernel then dies at start or its client waits a minute for a reply that never
    comes. Sockets in a folder of their own cannot collide, and only this user reaches them.
    Other kernels (or a folder whose path is too long for a socket) keep TCP, encrypted
    with CurveZMQ when the kernel says it can.
    """
    connection_file = os.path.join(kernel_dir, "kernel.json")
    sockets = os.path.join(kernel_dir, "k")  # the kernel adds "-<n>" for each channel
    argv = specs.get_kernel_spec(name).argv
    if (
        os.name == "posix"
        and any("ipykernel" in arg for arg in argv)
        and len(sockets.encode()) + 3 <= _SOCKET_PATH_MAX
    ):
        return AsyncKernelManager(
            kernel_name=name,
            kernel_spec_manager=specs,
            connection_file=connection_file,
            transport="ipc",
            ip=sockets,
        )
    manager = AsyncKernelManager(
        kernel_name=name, kernel_spec_manager=specs, connection_file=connection_file
    )
    if manager.has_trait("transport_encryption") and zmq.has("curve"):
        # Encrypt the kernel's TCP sockets (CurveZMQ keys the manager makes) when the kernel
        # says it can; ipykernel otherwise warns on its stderr that they are plain text.
        manager.transport_encryption = "auto"
    return manager


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to its end on an event loop of its own.

    nbclient's own ``execute`` would run on a loop that lets it take SIGINT and SIGTERM
    while the notebook runs (it shuts the kernel down and lets the cell fail) and set them
    back to their defaults afterwards, not to the caller's handlers. Here signals stay the
    caller's: a run's process that is told to stop still stops at once (its kernel, which
    watches its parent, exits within a second or two), and Ctrl-C in the main thread
    cancels the execution, which shuts the kernel down before KeyboardInterrupt is raised.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coroutine)
    # Called from async code: one thread cannot run two loops, so run it in another thread,
    # with the caller's context variables (the step that is running, for its logs).
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, "runyard-notebook") as pool:
        return pool.submit(context.run, _run_here, coroutine).result()


def _run_here(coroutine: Coroutine[Any, Any, _T]) -> _T:
    with asyncio.Runner(loop_factory=_SignalFreeLoop) as runner:
        loop = runner.get_loop()
        task = loop.create_task(coroutine)
        interrupted = False

        def on_sigint(signum: int, frame: types.FrameType | None) -> None:
            nonlocal interrupted
            if interrupted:  # a second Ctrl-C: stop waiting for the kernel's shutdown
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wake the loop up

        # Like asyncio.Runner, only where Ctrl-C would raise KeyboardInterrupt anyway. Ours,
        # because nbclient turns the cancellation into DeadKernelError, and a Ctrl-C must
        # end as KeyboardInterrupt, not as a failed cell.
        takes_sigint = (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if takes_sigint:
            signal.signal(signal.SIGINT, on_sigint)
        try:
            return loop.run_until_complete(task)
        except BaseException as exc:
            if interrupted:
                raise KeyboardInterrupt from exc
            raise
        finally:
            if takes_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)


class _SignalFreeLoop(asyncio.SelectorEventLoop):
    """An event loop on which no signal handler can be installed (nbclient then does not)."""

    def add_signal_handler(self, sig: int, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        # nbclient installs its handlers under `except RuntimeError`, which this is.
        raise NotImplementedError("runyard leaves signal handling to the caller")

    def remove_signal_handler(self, sig: int) -> bool:
        return False


class _Client(NotebookClient):
    """nbclient's client, passing stdout/stderr on as it arrives and noting where it is.

    nbclient 0.11 has no per-output hook: ``on_cell_executed`` and the other ``on_cell_*``
    hooks fire once per cell, before or after it runs. ``output()`` is the public method it
    calls for each output message while the cell runs, so streaming overrides it.
    """

    def __init__(
        self,
        nb: nbformat.NotebookNode,
        *,
        km: AsyncKernelManager,
        kernel_name: str,
        stream: Callable[[str, str], None] | None,
    ) -> None:
        super().__init__(nb, km=km, kernel_name=kernel_name)
        self.stream = stream
        self.current_cell: int | None = None  # the code cell being executed, if any
        self.error_reply: dict[str, Any] = {}  # the failing cell's error reply content
        self.on_cell_execute = self._note_cell
        self.on_cell_error = self._note_error

    def _note_cell(self, *, cell: nbformat.NotebookNode, cell_index: int) -> None:
        self.current_cell = cell_index

    def _note_error(
        self, *, cell: nbformat.NotebookNode, cell_index: int, execute_reply: dict[str, Any]
    ) -> None:
        self.error_reply = dict(execute_reply.get("content", {}))

    def output(
        self,
        outs: list[nbformat.NotebookNode],
        msg: dict[str, Any],
        display_id: str | None,
        cell_index: int,
    ) -> nbformat.NotebookNode | None:
        if self.stream is not None and msg["msg_type"] == "stream":
            content = msg["content"]
            self.stream(content.get("name", "stdout"), content.get("text", ""))
        return super().output(outs, msg, display_id, cell_index)


class _KernelSpecs(kernelspec.KernelSpecManager):
    """The installed kernels, with ``python3`` always on this process's interpreter.

    A ``python3`` kernelspec installed for the user or the system may point at another
    Python (one without runyard, or without the project's packages); ipykernel's own spec
    runs ``sys.executable -m ipykernel_launcher``, the interpreter running runyard.
    """

    def get_kernel_spec(self, kernel_name: str) -> kernelspec.KernelSpec:
        if kernel_name == DEFAULT_KERNEL:
            from ipykernel import kernelspec as ipykernel_spec

            spec = ipykernel_spec.get_kernel_dict()
            spec["argv"][0] = sys.executable
            return kernelspec.KernelSpec(resource_dir=ipykernel_spec.RESOURCES, **spec)
        return super().get_kernel_spec(kernel_name)


def _read(path: pathlib.Path) -> nbformat.NotebookNode:
    try:
        nb: nbformat.NotebookNode = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise errors.DefinitionError(
            f"Notebook {str(path)!r} does not exist; check the step's path."
        ) from None
    except Exception as exc:
        raise errors.DefinitionError(
            f"Notebook {str(path)!r} cannot be read as a Jupyter notebook: "
            f"{type(exc).__name__}: {exc}. Open and save it in Jupyter to repair it."
        ) from exc
    return nb


def _check_kernel(
    specs: kernelspec.KernelSpecManager, name: str, path: pathlib.Path, *, given: bool
) -> None:
    try:
        specs.get_kernel_spec(name)
    except kernelspec.NoSuchKernel:
        asked = "The step asks" if given else f"Notebook {path.name} asks (in its metadata)"
        raise errors.DefinitionError(
            f"{asked} for kernel {name!r}, which is not installed"
            f"{errors.did_you_mean(name, specs.find_kernel_specs())}. Install that kernel "
            f"in runyard's environment, or give the step the name of a known kernel."
        ) from None


def _describe_failure(
    failure: BaseException, reply: Mapping[str, Any], cell: nbformat.NotebookNode
) -> tuple[str, str, str]:
    """The failure's exception name, value and traceback (without ANSI colours)."""
    if isinstance(failure, nbclient_errors.DeadKernelError):
        return (
            "DeadKernelError",
            "the kernel died while running this cell (the process exited or crashed, "
            "for example by os._exit, a fault in native code or running out of memory)",
            "",
        )
    ename = str(reply.get("ename") or getattr(failure, "ename", "") or type(failure).__name__)
    evalue = str(reply.get("evalue") or getattr(failure, "evalue", ""))
    lines = list(reply.get("traceback") or [])
    if not lines:
        # A timeout's reply has none; the interrupted cell's own traceback says where it was.
        for output in reversed(cell.get("outputs", [])):
            if output.get("output_type") == "error":
                lines = list(output.get("traceback") or [])
                break
    return ename, evalue, strip_ansi("\n".join(lines))


def _write(nb: nbformat.NotebookNode, path: pathlib.Path, out_dir: pathlib.Path) -> NotebookResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{path.stem}.ipynb"
    nbformat.write(nb, executed)
    html = out_dir / f"{path.stem}.html"
    try:
        html.write_text(_render_html(nb, path), encoding="utf-8")
    except Exception as exc:  # a rendering bug must not hide the run's own outcome
        html.unlink(missing_ok=True)
        return NotebookResult(executed, None, f"HTML rendering failed: {type(exc).__name__}: {exc}")
    return NotebookResult(executed, html)


def _render_html(nb: nbformat.NotebookNode, path: pathlib.Path) -> str:
    # The lab template inlines its CSS (theme and Pygments), and outputs carry their images
    # as base64; embed_images also inlines images that markdown cells link to, relative to
    # the notebook. What stays external (fetched from cdnjs/unpkg when the page is opened,
    # only needed for those features): require.js (JavaScript outputs), MathJax (LaTeX),
    # mermaid (mermaid diagrams) and the widget renderer (only for notebooks with widget
    # state). Text, tables, images, tracebacks and code read fine offline.
    exporter = HTMLExporter(embed_images=True)
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": path.stem, "path": str(path.parent)}}
    )
    return body
