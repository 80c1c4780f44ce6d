"""The exchange folder between a file step's process and its runner: inputs, outputs,
names, and what a script's process imports."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

import runyard
from runyard import errors
from runyard.core import steps
from runyard.execution import context, exchange


@pytest.fixture
def step_process(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """This process made to look like a file step's: RUNYARD_STEP set, as the runner sets it."""
    step_file = exchange.prepare(
        tmp_path,
        step_name="clean",
        pipeline_name="sales",
        pipeline_params={"days": 3},
        step_params={"fruit": "apple"},
        inputs=[("rows", [1, 2]), ("result", 7), ("rows", [3])],
        run_id="r1",
        attempt=2,
    )
    monkeypatch.setenv(exchange.ENV_VAR, str(step_file))
    monkeypatch.setattr(exchange, "_loaded", [])
    yield step_file


def test_inputs_are_a_list_in_order_and_pick_by_name(step_process: pathlib.Path) -> None:
    inputs = runyard.get_inputs()
    assert list(inputs) == [[1, 2], 7, [3]]
    assert inputs.names == ("rows", "result", "rows")
    assert inputs[1] == 7 and inputs["result"] == 7
    with pytest.raises(KeyError, match=r"2 inputs are named 'rows'; pick one by position \(0, 2\)"):
        inputs["rows"]
    with pytest.raises(KeyError, match="No input named 'rsult'; did you mean 'result'"):
        inputs["rsult"]
    assert inputs.named == {"rows": [3], "result": 7}


def test_the_step_s_context_comes_from_the_exchange(step_process: pathlib.Path) -> None:
    ctx = context.current()
    assert (ctx.step_name, ctx.pipeline_name) == ("clean", "sales")
    assert (ctx.run_id, ctx.attempt) == ("r1", 2)
    assert runyard.get_params() == {"pipeline": {"days": 3}, "step": {"fruit": "apple"}}
    assert runyard.get_step_param("fruit") == "apple"
    assert runyard.get_pipeline_param("days") == 3
    assert runyard.get_step_param("missing", None) is None
    with pytest.raises(errors.ParameterError, match="Step 'clean' has no parameter 'fruits'"):
        runyard.get_step_param("fruits")


def test_outputs_come_back_in_the_order_first_made(step_process: pathlib.Path) -> None:
    runyard.output({"a": 1}, name="summary")
    runyard.output([1])
    runyard.output({"a": 2}, name="summary")  # made again: its place stays, its value is new
    assert exchange.read_outputs(step_process) == {"summary": {"a": 2}, "result": [1]}
    assert exchange.DEFAULT_OUTPUT == steps.DEFAULT_OUTPUT
    for bad in ("two words", "1st", "", "naïve"):
        with pytest.raises(errors.UsageError, match="use letters, digits and underscores"):
            runyard.output(1, name=bad)


def test_a_script_s_runyard_calls_import_only_what_they_need() -> None:
    # A script step's process pays for what `import runyard` and its calls load; pydantic
    # alone would be a third of its start-up, dataclasses and pathlib a tenth.
    heavy = ("pydantic", "dataclasses", "inspect", "pathlib", "sqlalchemy")
    probe = (
        "import sys, runyard; runyard.get_step_param; runyard.get_params; runyard.output; "
        f"runyard.get_inputs; print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
