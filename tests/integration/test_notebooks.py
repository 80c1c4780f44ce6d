"""Executing a notebook step on a real Jupyter kernel: outputs, HTML, failures, streaming.

Each kernel start costs about a second, so the successful and the failing notebook are each
executed once per module and several tests read the outcome.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import nbformat
import pytest

from runyard import errors
from runyard.execution import notebooks

from .. import processes

GREETING_VARIABLE = "RUNYARD_TEST_NOTEBOOK_GREETING"
INHERITED_VARIABLE = "RUNYARD_TEST_NOTEBOOK_INHERITED"
ANSI = re.compile("\x1b\\[")


def _write_notebook(
    path: pathlib.Path, cells: list[nbformat.NotebookNode], *, kernel: str | None = "python3"
) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    if kernel is not None:
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, path)
    return path


def _code(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def _texts(outputs: list[nbformat.NotebookNode]) -> str:
    """The text a reader sees in a cell's outputs: streams, results and errors."""
    parts = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "".join(parts)


def _install_kernelspec(kernels: pathlib.Path, name: str, python: str) -> None:
    spec = kernels / "kernels" / name
    spec.mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": name, "language": "python"})
    )


@pytest.fixture(scope="module")
def foreign_kernels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A Jupyter data dir whose ``python3`` kernelspec names a Python that does not exist
    (as a system-wide spec for another interpreter would), plus a kernel ``other-kernel``."""
    data = tmp_path_factory.mktemp("jupyter-data")
    _install_kernelspec(data, "python3", "/nonexistent/bin/python3")
    _install_kernelspec(data, "other-kernel", "/nonexistent/bin/python3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(data))
        yield data


@dataclasses.dataclass
class Executed:
    result: notebooks.NotebookResult
    workdir: pathlib.Path
    streamed: list[tuple[str, str]]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory, foreign_kernels: pathlib.Path) -> Executed:
    """A notebook that prints, computes, reads ``env`` and files in its working directory,
    executed once (with a stale output left in it from an earlier session)."""
    workdir = tmp_path_factory.mktemp("workdir")
    (workdir / "data").mkdir()
    (workdir / "data" / "input.txt").write_text("contents of the input file\n")
    (workdir / "helper.py").write_text("def triple(x):\n    return 3 * x\n")
    stale = _code("print('computing')\n21 * 2")
    stale.outputs = [nbformat.v4.new_output("stream", name="stdout", text="STALE OUTPUT\n")]
    stale.execution_count = 7
    cells = [
        nbformat.v4.new_markdown_cell("# Explore\nA notebook step."),
        _code("import os, sys\nprint('hello from the notebook')\nprint(sys.executable)"),
        stale,
        _code(
            f"print('greeting:', os.environ['{GREETING_VARIABLE}'])\n"
            f"print('inherited:', os.environ.get('{INHERITED_VARIABLE}'))"
        ),
        _code("print(open('data/input.txt').read().strip())\nprint('cwd:', os.getcwd())"),
        _code("import helper\nhelper.triple(5)"),
        _code("print('to stderr', file=sys.stderr, flush=True)"),
        _code("unclosed = open('unclosed.txt', 'w')\nunclosed.write('buffered, never closed')"),
        # Waits for the test's stream callback to answer 'first' (by creating the file 'go'):
        # it goes on only if 'first' reached the callback while this cell was still running.
        _code(
            "import pathlib, time\n"
            "print('first', flush=True)\n"
            "deadline = time.monotonic() + 10\n"
            "while not pathlib.Path('go').exists() and time.monotonic() < deadline:\n"
            "    time.sleep(0.02)\n"
            "print('second:', 'go seen' if pathlib.Path('go').exists() else 'go missing')"
        ),
    ]
    path = _write_notebook(workdir / "explore.ipynb", cells)
    streamed: list[tuple[str, str]] = []

    def stream(name: str, text: str) -> None:
        streamed.append((name, text))
        if "first" in text:
            (workdir / "go").touch()

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(INHERITED_VARIABLE, "from the caller")
        result = notebooks.execute_notebook(
            path,
            cwd=workdir,
            out_dir=workdir / "out",
            env={GREETING_VARIABLE: "good morning"},
            stream=stream,
        )
    return Executed(result, workdir, streamed)


def test_executed_notebook_is_written_with_its_outputs(executed: Executed) -> None:
    assert executed.result.executed == executed.workdir / "out" / "explore.ipynb"
    nb = nbformat.read(executed.result.executed, as_version=4)
    outputs = [_texts(cell.outputs) for cell in nb.cells if cell.cell_type == "code"]
    assert outputs[0].startswith("hello from the notebook\n")
    assert outputs[1] == "computing\n42"
    assert outputs[2] == "greeting: good morning\ninherited: from the caller\n"
    assert outputs[3] == f"contents of the input file\ncwd: {executed.workdir}\n"
    assert outputs[4] == "15"
    assert outputs[5] == "to stderr\n"
    assert outputs[7] == "first\nsecond: go seen\n"
    assert [cell.execution_count for cell in nb.cells if cell.cell_type == "code"] == list(
        range(1, 9)
    )


def test_the_kernel_exits_normally_so_open_files_are_flushed(executed: Executed) -> None:
    assert (executed.workdir / "unclosed.txt").read_text() == "buffered, never closed"


def test_outputs_from_before_the_execution_are_gone(executed: Executed) -> None:
    assert "STALE OUTPUT" not in executed.result.executed.read_text()


def test_the_python_kernel_runs_on_the_callers_interpreter(executed: Executed) -> None:
    # foreign_kernels installed a python3 kernelspec for a Python that does not exist: the
    # notebook ran anyway, on sys.executable.
    nb = nbformat.read(executed.result.executed, as_version=4)
    assert _texts(nb.cells[1].outputs).splitlines()[1] == sys.executable


def test_kernels_started_together_talk_over_sockets_of_their_own(
    tmp_path: pathlib.Path,
) -> None:
    # Over TCP, two kernels starting at once could pick the same free port, and one of them
    # then died or hung at start. Each kernel now has Unix sockets in a private folder.
    cell = _code(
        "import json, os\n"
        "from ipykernel.connect import get_connection_info\n"
        "info = json.loads(get_connection_info())\n"
        "folder = os.path.dirname(info['ip'])\n"
        "print(info['transport'], oct(os.stat(folder).st_mode & 0o777), folder)"
    )

    def execute(index: int) -> list[str]:
        workdir = tmp_path / str(index)
        workdir.mkdir()
        path = _write_notebook(workdir / "n.ipynb", [cell])
        result = notebooks.execute_notebook(path, cwd=workdir, out_dir=workdir / "out")
        return _texts(nbformat.read(result.executed, as_version=4).cells[0].outputs).split()

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        printed = list(pool.map(execute, range(3)))
    assert [(transport, mode) for transport, mode, _ in printed] == [("ipc", "0o700")] * 3
    folders = {folder for _, _, folder in printed}
    assert len(folders) == 3
    assert not any(pathlib.Path(folder).exists() for folder in folders)


def test_html_is_written_with_the_outputs(executed: Executed) -> None:
    assert executed.result.html == executed.workdir / "out" / "explore.html"
    assert executed.result.note == ""
    html = executed.result.html.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    for text in ("hello from the notebook", "greeting: good morning", "contents of the input"):
        assert text in html
    assert "STALE OUTPUT" not in html


def test_stream_receives_printed_text_as_it_is_produced(executed: Executed) -> None:
    stdout = "".join(text for name, text in executed.streamed if name == "stdout")
    stderr = "".join(text for name, text in executed.streamed if name == "stderr")
    assert stdout.startswith("hello from the notebook\n")
    for line in ("computing", "greeting: good morning", "contents of the input file"):
        assert f"{line}\n" in stdout
    assert stdout.endswith("first\nsecond: go seen\n")
    assert stderr == "to stderr\n"
    assert {name for name, _ in executed.streamed} == {"stdout", "stderr"}


@dataclasses.dataclass
class Failed:
    error: notebooks.NotebookFailed
    workdir: pathlib.Path


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Failed:
    """A notebook whose fourth cell (index 3) raises, executed once."""
    workdir = tmp_path_factory.mktemp("failing")
    cells = [
        nbformat.v4.new_markdown_cell("Loads a value."),
        _code("print('before the failure')"),
        _code("value = 'bad value'"),
        _code("def check(v):\n    raise ValueError(v)\n\ncheck(value)"),
        _code("print('after the failure')"),
    ]
    path = _write_notebook(workdir / "explore.ipynb", cells)
    with pytest.raises(notebooks.NotebookFailed) as caught:
        notebooks.execute_notebook(path, cwd=workdir, out_dir=workdir / "out")
    return Failed(caught.value, workdir)


def test_a_failing_cell_is_named_with_its_error(failed: Failed) -> None:
    error = failed.error
    assert type(error) is notebooks.NotebookFailed
    assert error.cell_index == 3
    assert error.cell_source == "def check(v):\n    raise ValueError(v)\n\ncheck(value)"
    assert (error.ename, error.evalue) == ("ValueError", "bad value")
    assert "raise ValueError(v)" in error.traceback_text
    assert error.traceback_text.rstrip().endswith("ValueError: bad value")
    assert not ANSI.search(error.traceback_text)


def test_a_failing_cell_gives_one_clear_message(failed: Failed) -> None:
    message = str(failed.error)
    assert message.startswith("Cell 3 of explore.ipynb failed: ValueError: bad value\n")
    assert "    raise ValueError(v)\n" in message  # the cell's source
    assert failed.error.traceback_text.rstrip() in message
    assert not ANSI.search(message)


def test_a_failed_notebook_is_still_written_up_to_the_error(failed: Failed) -> None:
    result = failed.error.result
    assert result.executed == failed.workdir / "out" / "explore.ipynb"
    nb = nbformat.read(result.executed, as_version=4)
    assert _texts(nb.cells[1].outputs) == "before the failure\n"
    assert _texts(nb.cells[3].outputs) == "ValueError: bad value"
    assert nb.cells[4].outputs == []
    assert result.html is not None
    html = result.html.read_text()
    assert "before the failure" in html
    assert "bad value" in html


def test_notebook_failed_survives_pickling(failed: Failed) -> None:
    copy = pickle.loads(pickle.dumps(failed.error))
    assert type(copy) is notebooks.NotebookFailed
    assert str(copy) == str(failed.error)
    assert (copy.cell_index, copy.result) == (3, failed.error.result)


def test_a_cell_past_the_timeout_is_stopped_and_named(tmp_path: pathlib.Path) -> None:
    cells = [
        _code("print('quick')"),
        _code("import time\nprint('sleeping', flush=True)\ntime.sleep(60)"),
        _code("print('never')"),
    ]
    path = _write_notebook(tmp_path / "slow.ipynb", cells)
    with pytest.raises(notebooks.NotebookTimedOut) as caught:
        notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "out", timeout=1)
    error = caught.value
    assert isinstance(error, notebooks.NotebookFailed)
    assert error.cell_index == 1
    assert str(error).startswith(
        "Cell 1 of slow.ipynb failed: TimeoutError: the cell ran longer than the timeout of 1 s"
    )
    assert "time.sleep(60)" in error.traceback_text  # where the interrupted cell was
    nb = nbformat.read(error.result.executed, as_version=4)
    assert _texts(nb.cells[1].outputs).startswith("sleeping\n")
    assert nb.cells[1].outputs[-1].ename == "TimeoutError"
    assert nb.cells[2].outputs == []


def test_a_kernel_that_dies_fails_its_cell(tmp_path: pathlib.Path) -> None:
    cells = [_code("print('alive')"), _code("import os\nos._exit(3)"), _code("print('never')")]
    path = _write_notebook(tmp_path / "crash.ipynb", cells)
    with pytest.raises(notebooks.NotebookFailed) as caught:
        notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "out")
    assert caught.value.cell_index == 1
    assert caught.value.ename == "DeadKernelError"
    nb = nbformat.read(caught.value.result.executed, as_version=4)
    assert _texts(nb.cells[0].outputs) == "alive\n"
    assert nb.cells[1].outputs[-1].ename == "DeadKernelError"


def test_kernel_name_overrides_the_notebooks_metadata(tmp_path: pathlib.Path) -> None:
    path = _write_notebook(tmp_path / "n.ipynb", [_code("print(1 + 1)")], kernel="no-such-kernel")
    result = notebooks.execute_notebook(
        path, cwd=tmp_path, out_dir=tmp_path / "out", kernel_name="python3"
    )
    nb = nbformat.read(result.executed, as_version=4)
    assert _texts(nb.cells[0].outputs) == "2\n"


def test_a_notebook_without_kernel_metadata_runs_on_python3(tmp_path: pathlib.Path) -> None:
    path = _write_notebook(tmp_path / "n.ipynb", [_code("print(2 + 2)")], kernel=None)
    result = notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "out")
    nb = nbformat.read(result.executed, as_version=4)
    assert _texts(nb.cells[0].outputs) == "4\n"


def test_an_unknown_kernel_in_the_metadata_is_named_with_the_known_ones(
    tmp_path: pathlib.Path, foreign_kernels: pathlib.Path
) -> None:
    path = _write_notebook(tmp_path / "n.ipynb", [_code("1")], kernel="pyton3")
    with pytest.raises(errors.DefinitionError) as caught:
        notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "out")
    message = str(caught.value)
    assert "Notebook n.ipynb asks (in its metadata) for kernel 'pyton3'" in message
    assert "did you mean 'python3'?" in message
    assert re.search(r"Known: .*other-kernel, .*python3", message)
    assert not (tmp_path / "out").exists()


def test_an_unknown_kernel_name_given_is_named(tmp_path: pathlib.Path) -> None:
    path = _write_notebook(tmp_path / "n.ipynb", [_code("1")])
    with pytest.raises(errors.DefinitionError, match=r"kernel 'julia-1\.10', which is not "):
        notebooks.execute_notebook(
            path, cwd=tmp_path, out_dir=tmp_path / "out", kernel_name="julia-1.10"
        )


def test_a_kernel_that_cannot_start_is_a_clear_error(
    tmp_path: pathlib.Path, foreign_kernels: pathlib.Path
) -> None:
    # other-kernel's spec names a Python that does not exist.
    path = _write_notebook(tmp_path / "n.ipynb", [_code("1")], kernel="other-kernel")
    with pytest.raises(errors.RunyardError) as caught:
        notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "out")
    assert type(caught.value) is errors.RunyardError
    assert str(caught.value).startswith(
        "The kernel 'other-kernel' for n.ipynb did not start: FileNotFoundError: "
    )
    assert "/nonexistent/bin/python3" in str(caught.value)
    assert (tmp_path / "out" / "n.ipynb").exists()


def test_a_missing_notebook_is_a_definition_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.DefinitionError, match=r"missing\.ipynb' does not exist"):
        notebooks.execute_notebook(
            tmp_path / "missing.ipynb", cwd=tmp_path, out_dir=tmp_path / "out"
        )


def test_a_file_that_is_not_a_notebook_is_a_definition_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text("{ not json")
    with pytest.raises(errors.DefinitionError, match="cannot be read as a Jupyter notebook"):
        notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "out")


def test_a_notebook_can_be_executed_from_async_code(tmp_path: pathlib.Path) -> None:
    path = _write_notebook(tmp_path / "n.ipynb", [_code("print('from async')")])
    streamed: list[str] = []

    async def caller() -> notebooks.NotebookResult:
        return notebooks.execute_notebook(
            path, cwd=tmp_path, out_dir=tmp_path / "out", stream=lambda _, t: streamed.append(t)
        )

    result = asyncio.run(caller())
    assert _texts(nbformat.read(result.executed, as_version=4).cells[0].outputs) == ("from async\n")
    assert streamed == ["from async\n"]


# A process executing a notebook whose cell writes the kernel's pid to kernel.pid and sleeps.
_SLEEPER = """
import pathlib, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started in the background
from runyard.execution import notebooks
workdir = pathlib.Path(sys.argv[1])
try:
    notebooks.execute_notebook(workdir / "sleep.ipynb", cwd=workdir, out_dir=workdir / "out")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
    sys.exit(130)
"""


def _start_sleeper(workdir: pathlib.Path) -> tuple[subprocess.Popen[str], int]:
    cell = "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(60)"
    _write_notebook(workdir / "sleep.ipynb", [_code(cell)])
    process = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER, str(workdir)], stdout=subprocess.PIPE, text=True
    )
    pid_file = workdir / "kernel.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert process.poll() is None, "the process ended before its kernel ran the cell"
        assert time.monotonic() < deadline, "the kernel did not run the cell within 30 s"
        time.sleep(0.05)
    return process, int(pid_file.read_text())


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="reads /proc")
def test_ctrl_c_shuts_the_kernel_down_and_raises_keyboard_interrupt(
    tmp_path: pathlib.Path,
) -> None:
    process, kernel = _start_sleeper(tmp_path)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert (process.returncode, out) == (130, "KeyboardInterrupt\n")
    assert processes.ended(kernel, within=5)
    assert (tmp_path / "out" / "sleep.ipynb").exists()


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_keeps_its_default_meaning_and_the_kernel_follows(
    tmp_path: pathlib.Path,
) -> None:
    # A run's process is stopped with SIGTERM: nbclient must not take the signal over.
    process, kernel = _start_sleeper(tmp_path)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGTERM
    assert processes.ended(kernel, within=10)  # ipykernel polls for its parent once a second
    # The stopped process could not remove its kernel's folder: the next execution does.
    left = list(pathlib.Path(tempfile.gettempdir()).glob(f"runyard-kernel-{process.pid}-*"))
    assert len(left) == 1
    path = _write_notebook(tmp_path / "next.ipynb", [_code("1")])
    notebooks.execute_notebook(path, cwd=tmp_path, out_dir=tmp_path / "next")
    assert not left[0].exists()
