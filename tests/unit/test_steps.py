"""Step definitions: inputs, typed step parameters, versions and outputs from the signature."""

from typing import Annotated, Any

import pydantic
import pytest

import runyard
from runyard import errors
from runyard.core import params, steps


@runyard.step
def transform(rows: list[int], limit: int = 10, *, factor: int = 2, label: str) -> list[int]:
    """Multiply rows."""
    return [r * factor for r in rows][:limit]


def test_positional_parameters_are_inputs() -> None:
    assert [i.name for i in transform.inputs] == ["rows", "limit"]
    rows, limit = transform.inputs
    assert rows.annotation == list[int]
    assert rows.required
    assert not limit.required
    assert limit.default == 10


def test_keyword_only_parameters_are_typed_step_parameters() -> None:
    assert transform.params.names() == ["factor", "label"]
    factor = transform.params.spec("factor")
    assert factor.annotation is int
    assert factor.default == 2
    assert not factor.required
    label = transform.params.spec("label")
    assert label.annotation is str
    assert label.required
    assert label.default is params.MISSING
    assert transform.params.defaults() == {"factor": 2}


def test_step_parameter_types_are_enforced() -> None:
    with pytest.raises(errors.ParameterError, match=r"'factor'.*int.*'many'"):
        transform.params.to_json("factor", "many")


def test_annotated_constraints_on_step_parameters_are_enforced() -> None:
    @runyard.step
    def bounded(*, n: Annotated[int, pydantic.Field(gt=0)] = 1) -> int:
        return n

    assert bounded.params.to_json("n", 5) == 5
    with pytest.raises(errors.ParameterError, match=r"'n'.*0"):
        bounded.params.to_json("n", 0)


def test_unannotated_parameters_take_anything() -> None:
    @runyard.step
    def loose(x, *, y=None):  # type: ignore[no-untyped-def]
        return x

    assert loose.inputs[0].annotation is Any
    assert loose.params.spec("y").annotation is Any
    assert loose.params.to_json("y", {"a": [1]}) == {"a": [1]}


def test_name_description_and_default_output() -> None:
    assert transform.name == "transform"
    assert transform.description == "Multiply rows."
    assert transform.output_names == (steps.DEFAULT_OUTPUT,)
    assert transform.outputs[0].annotation == list[int]
    assert transform.kind == "python"


def test_explicit_name_and_version() -> None:
    @runyard.step(name="load_rows", version="1.2.0", description="Loads.")
    def load() -> list[int]:
        return [1]

    assert load.name == "load_rows"
    assert load.version == "1.2.0"
    assert load.description == "Loads."


def test_a_step_is_still_callable_as_a_function() -> None:
    assert transform([1, 2, 3], factor=3, label="x") == [3, 6, 9]


def test_default_version_is_a_code_hash_stable_across_definitions_of_the_same_code() -> None:
    def first(x: int, *, k: int = 1) -> int:
        total = x + k
        return total * 2

    def second(x: int, *, k: int = 1) -> int:
        total = x + k
        return total * 2

    a, b = runyard.step(first), runyard.step(second)
    assert a.version.startswith("sha-")
    assert a.version == b.version
    assert runyard.step(first).version == a.version


def test_default_version_changes_with_the_code() -> None:
    def first(x: int) -> int:
        return x * 2

    def second(x: int) -> int:
        return x * 3

    def third(x: int) -> int:
        return max(x, 2)

    versions = {runyard.step(f).version for f in (first, second, third)}
    assert len(versions) == 3


def test_default_version_sees_nested_code() -> None:
    def first(xs: list[int]) -> list[int]:
        return sorted(xs, key=lambda v: v % 3)

    def second(xs: list[int]) -> list[int]:
        return sorted(xs, key=lambda v: v % 4)

    assert runyard.step(first).version != runyard.step(second).version


def test_several_outputs_by_name() -> None:
    @runyard.step(outputs=["train", "test"])
    def split(rows: list[int]) -> tuple[list[int], list[int]]:
        return rows[:1], rows[1:]

    assert split.output_names == ("train", "test")


def test_typed_outputs_from_a_mapping() -> None:
    @runyard.step(outputs={"train": list[int], "test": list[int]})
    def split(rows: list[int]) -> tuple[list[int], list[int]]:
        return rows[:1], rows[1:]

    assert [o.annotation for o in split.outputs] == [list[int], list[int]]


@pytest.mark.parametrize("outputs", [[], ["a", "a"]])
def test_outputs_must_be_distinct_and_not_empty(outputs: list[str]) -> None:
    with pytest.raises(errors.DefinitionError, match=r"'bad'.*distinct"):

        @runyard.step(outputs=outputs)
        def bad() -> None:
            pass


def test_varargs_are_refused_naming_the_step_and_the_fix() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.step
        def spread(*rows: int) -> int:
            return sum(rows)

    assert "'spread'" in info.value.message
    assert "*rows" in info.value.message
    assert "keyword-only" in info.value.message


def test_kwargs_are_refused() -> None:
    with pytest.raises(errors.DefinitionError, match=r"'loose'.*options"):

        @runyard.step
        def loose(**options: int) -> int:
            return 0


def test_invalid_step_name_is_refused() -> None:
    with pytest.raises(errors.DefinitionError, match="'my step'"):

        @runyard.step(name="my step")
        def fine() -> None:
            pass


def test_invalid_alias_is_refused() -> None:
    with pytest.raises(errors.DefinitionError, match=r"'a-b'.*'transform'"):
        transform.alias("a-b")


def test_an_alias_cannot_run_outside_a_pipeline_body() -> None:
    with pytest.raises(errors.DefinitionError, match=r"'again'.*pipeline"):
        transform.alias("again")([1], label="x")


def test_unresolvable_annotation_is_a_definition_error() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\ndef odd(x: NoSuchType) -> int:\n    return 1\n",
        namespace,
    )
    with pytest.raises(errors.DefinitionError, match=r"'odd'.*annotations"):
        runyard.step(namespace["odd"])


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retry_delay": -1.0},
        {"retry_backoff": 0.5},
        {"retry_jitter": 2.0},
        {"timeout": 0},
    ],
)
def test_bad_retry_or_timeout_settings_are_refused(options: dict) -> None:
    with pytest.raises(errors.DefinitionError, match=r"not valid|must be a positive"):

        @runyard.step(**options)
        def work() -> None:
            pass
