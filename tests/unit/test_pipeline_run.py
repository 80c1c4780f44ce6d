"""``Pipeline.run``: one run in this process, with both parameter namespaces and failures
reported in the result."""

import datetime as dt
import sys
import threading
from typing import Any

import pydantic
import pytest

import runyard
from runyard import errors
from runyard.core import states

S = states.StepState

# --- seed 000's example: pipeline and step parameters with the same name ---------------


@runyard.step
def candy(*, candy: str = "chocolate", fruit: str = "apple") -> dict[str, Any]:
    return {
        "step fruit": runyard.get_step_param("fruit"),
        "step candy": runyard.get_step_param("candy"),
        "vegetable": runyard.get_pipeline_param("vegetable"),
        "pipeline fruit": runyard.get_pipeline_param("fruit"),
        "argument fruit": fruit,
        "all": runyard.get_params(),
    }


@runyard.pipeline(params={"vegetable": "carrot", "fruit": "banana"})
def orchest_example() -> None:
    candy()


def test_seed_example_both_namespaces_are_visible_and_neither_overwrites() -> None:
    result = orchest_example.run()
    assert result.success
    assert result.state is runyard.RunState.SUCCESS
    seen = result.output("candy")
    assert seen["step fruit"] == "apple"
    assert seen["step candy"] == "chocolate"
    assert seen["vegetable"] == "carrot"
    assert seen["pipeline fruit"] == "banana"
    assert seen["argument fruit"] == "apple"
    assert seen["all"] == {
        "pipeline": {"vegetable": "carrot", "fruit": "banana"},
        "step": {"candy": "chocolate", "fruit": "apple"},
    }
    assert result.params == {
        "pipeline": {"vegetable": "carrot", "fruit": "banana"},
        "steps": {"candy": {"candy": "chocolate", "fruit": "apple"}},
    }


def test_run_overrides_pipeline_and_step_parameters() -> None:
    result = orchest_example.run(
        params={"fruit": "kiwi"}, step_params={"candy": {"fruit": "cherry"}}
    )
    seen = result.output("candy")
    assert seen["pipeline fruit"] == "kiwi"
    assert seen["vegetable"] == "carrot"
    assert seen["step fruit"] == "cherry"
    assert seen["argument fruit"] == "cherry"
    assert seen["step candy"] == "chocolate"


def test_parameter_lookup_inside_a_step_falls_back_to_a_default() -> None:
    @runyard.step
    def look() -> tuple[Any, Any]:
        return (
            runyard.get_step_param("missing", default=1),
            runyard.get_pipeline_param("missing", None),
        )

    @runyard.pipeline
    def looking() -> None:
        look()

    assert looking.run().output("look") == (1, None)


def test_unknown_parameter_inside_a_step_fails_that_step_naming_the_known_ones() -> None:
    @runyard.step
    def typo(*, fruit: str = "apple") -> str:
        return str(runyard.get_step_param("friut"))

    @runyard.pipeline
    def typing_error() -> None:
        typo()

    error = typing_error.run()["typo"].error
    assert error is not None
    assert error.type == "runyard.errors.ParameterError"
    assert "'friut'" in error.message
    assert "did you mean 'fruit'" in error.message


# --- parameters refused before any step runs -------------------------------------------

ran: list[str] = []


@runyard.step
def record(*, n: int = 1) -> int:
    ran.append("record")
    return n


@runyard.pipeline(params={"size": 2})
def recording() -> None:
    record()


@pytest.mark.parametrize(
    ("kwargs", "parts"),
    [
        ({"params": {"sise": 3}}, ["'sise'", "did you mean 'size'"]),
        ({"step_params": {"recrod": {"n": 1}}}, ["'recrod'", "did you mean 'record'"]),
        ({"step_params": {"record": {"m": 1}}}, ["'m'", "'record'"]),
        ({"params": {"size": "big"}}, ["'size'", "'big'", "int"]),
        ({"step_params": {"record": {"n": [1]}}}, ["'n'", "[1]", "int"]),
    ],
)
def test_bad_parameters_raise_before_any_step_runs(
    kwargs: dict[str, Any], parts: list[str]
) -> None:
    ran.clear()
    with pytest.raises(errors.ParameterError) as info:
        recording.run(**kwargs)
    for part in parts:
        assert part in info.value.message
    assert ran == []


# --- failures -------------------------------------------------------------------------

raised: list[BaseException] = []


@runyard.step
def source() -> list[int]:
    return [1, 2, 3]


@runyard.step
def explode(rows: list[int]) -> list[int]:
    error = ValueError(f"boom at row {rows[-1]}")
    raised.append(error)
    raise error  # the user's line


@runyard.step
def downstream(rows: list[int]) -> int:
    return len(rows)


@runyard.step
def independent(rows: list[int]) -> int:
    return sum(rows)


@runyard.pipeline
def failing() -> None:
    rows = source()
    downstream(explode(rows))
    independent(rows)


def test_a_failure_is_reported_in_the_result() -> None:
    result = failing.run()
    assert not result.success
    assert result.state is runyard.RunState.FAILURE
    assert result.failed_step is result["explode"]
    failed = result["explode"]
    assert failed.state is S.FAILURE
    assert failed.outputs == {}
    assert failed.error is not None
    assert failed.error.type == "ValueError"
    assert failed.error.message == "boom at row 3"
    assert str(failed.error) == "ValueError: boom at row 3"
    assert "raise error  # the user's line" in failed.error.traceback
    assert "test_pipeline_run.py" in failed.error.traceback
    assert "runyard/execution/runner.py" not in failed.error.traceback
    assert result["downstream"].state is S.UPSTREAM_FAILED
    assert result["independent"].state is S.SUCCESS
    assert result.output("independent") == 6
    assert result["source"].state is S.SUCCESS
    assert result["source"].duration is not None


def test_raise_on_error_raises_the_users_original_exception() -> None:
    raised.clear()
    with pytest.raises(ValueError, match="boom at row 3") as info:
        failing.run(raise_on_error=True)
    assert info.value is raised[-1]


def test_a_step_calling_sys_exit_is_a_failure_not_an_exit() -> None:
    @runyard.step
    def quits() -> None:
        sys.exit(3)

    @runyard.pipeline
    def quitting() -> None:
        quits()

    error = quitting.run()["quits"].error
    assert error is not None
    assert error.type == "SystemExit"
    assert "sys.exit(3)" in error.message


def test_returning_the_wrong_number_of_outputs_fails_the_step() -> None:
    @runyard.step(outputs=["a", "b"])
    def two() -> tuple[int, int, int]:
        return 1, 2, 3

    @runyard.pipeline
    def mismatched() -> None:
        two()

    error = mismatched.run()["two"].error
    assert error is not None
    assert "'two'" in error.message
    assert "a, b" in error.message


def test_several_outputs_can_be_returned_as_a_dict() -> None:
    @runyard.step(outputs=["a", "b"])
    def two() -> dict[str, int]:
        return {"b": 2, "a": 1}

    @runyard.pipeline
    def as_dict() -> None:
        two()

    result = as_dict.run()
    assert result["two"].outputs == {"a": 1, "b": 2}
    with pytest.raises(KeyError, match=r"read one with .outputs"):
        _ = result["two"].output


@pytest.mark.parametrize(
    "call", [runyard.get_step_param, runyard.get_pipeline_param], ids=["step", "pipeline"]
)
def test_parameter_calls_outside_a_step_raise(call: Any) -> None:
    with pytest.raises(errors.OutsideStepError, match="only inside a step"):
        call("fruit")


def test_get_params_outside_a_step_raises() -> None:
    with pytest.raises(errors.OutsideStepError):
        runyard.get_params()


def test_parameter_calls_after_a_run_raise_again() -> None:
    orchest_example.run()
    with pytest.raises(errors.OutsideStepError):
        runyard.get_step_param("fruit")


# --- steps running concurrently -------------------------------------------------------


def barrier_pipeline(parallelism: int, barrier: threading.Barrier) -> runyard.Pipeline:
    """``left`` and ``right`` each wait for the other at ``barrier`` before returning."""

    @runyard.step
    def give() -> list[int]:
        return [1, 2, 3]

    @runyard.step
    def left(rows: list[int], *, bonus: int = 0) -> int:
        barrier.wait()
        return sum(rows) + runyard.get_step_param("bonus")

    @runyard.step
    def right(rows: list[int]) -> int:
        barrier.wait()
        factor = runyard.get_pipeline_param("factor")
        if factor < 0:
            raise ValueError(f"negative factor {factor}")
        return len(rows) * factor

    @runyard.step
    def after_right(value: int) -> int:
        return value + 1

    @runyard.step
    def join(a: int, b: int) -> tuple[int, int]:
        return a, b

    @runyard.pipeline(name="barrier", params={"factor": 10}, max_step_parallelism=parallelism)
    def body() -> None:
        rows = give()
        b = right(rows)
        join(left(rows, bonus=100), b)
        after_right(b)

    return body


def test_independent_steps_run_concurrently_with_max_step_parallelism() -> None:
    barrier = threading.Barrier(2, timeout=5)
    result = barrier_pipeline(2, barrier).run(step_params={"left": {"bonus": 7}})
    assert result.success, result.failed_step
    assert result.output("left") == 13
    assert result.output("right") == 30
    assert result.output("join") == (13, 30)
    assert result.output("after_right") == 31
    assert set(result.steps) == {"give", "right", "left", "join", "after_right"}


def test_concurrent_steps_report_a_failure_and_its_downstream() -> None:
    barrier = threading.Barrier(2, timeout=5)
    result = barrier_pipeline(2, barrier).run(params={"factor": -1})
    assert result["right"].state is S.FAILURE
    assert result["right"].error is not None
    assert result["right"].error.message == "negative factor -1"
    assert result["left"].state is S.SUCCESS
    assert result["join"].state is S.UPSTREAM_FAILED
    assert result["after_right"].state is S.UPSTREAM_FAILED


def test_the_barrier_would_time_out_if_steps_ran_one_at_a_time() -> None:
    barrier = threading.Barrier(2, timeout=0.2)
    result = barrier_pipeline(1, barrier).run()
    first = result["right"]
    assert first.state is S.FAILURE
    assert first.error is not None
    assert first.error.type == "threading.BrokenBarrierError"
    assert result["join"].state is S.UPSTREAM_FAILED


def test_concurrent_results_are_in_pipeline_order() -> None:
    second_done = threading.Event()

    @runyard.step
    def first() -> int:
        assert second_done.wait(5)
        return 1

    @runyard.step
    def second() -> int:
        second_done.set()
        return 2

    @runyard.pipeline(max_step_parallelism=2)
    def ordered() -> None:
        first()
        second()

    result = ordered.run()
    assert result.success
    assert list(result.steps) == ordered.step_names == ["first", "second"]


# --- typed parameters inside a step ---------------------------------------------------


class When(pydantic.BaseModel):
    when: dt.datetime
    rows: int = pydantic.Field(3, gt=0)


@runyard.step
def typed(*, at: dt.date = dt.date(2024, 1, 1)) -> tuple[Any, Any, Any]:
    return runyard.get_pipeline_param("when"), runyard.get_step_param("at"), at


@runyard.pipeline(params=When)
def dated() -> None:
    typed()


def test_parameters_arrive_in_a_step_with_their_python_types() -> None:
    when = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    result = dated.run(params={"when": when}, step_params={"typed": {"at": "2024-06-02"}})
    assert result.params["pipeline"] == {"when": "2024-05-01T10:00:00Z", "rows": 3}
    assert result.params["steps"]["typed"] == {"at": "2024-06-02"}
    seen_when, seen_at, argument = result.output("typed")
    assert seen_when == when
    assert seen_at == dt.date(2024, 6, 2)
    assert argument == dt.date(2024, 6, 2)


def test_a_model_parameters_required_field_and_constraints_are_enforced_by_run() -> None:
    with pytest.raises(errors.ParameterError, match="when"):
        dated.run()
    with pytest.raises(errors.ParameterError, match="'rows'"):
        dated.run(params={"when": "2024-05-01T00:00:00Z", "rows": 0})
