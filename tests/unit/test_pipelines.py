"""Pipeline definitions: wiring steps by data, and refusing wrong wiring with a clear fix."""

from collections.abc import Sequence
from typing import Any

import pytest

import runyard
from runyard import errors
from runyard.core import pipelines


@runyard.step
def load(*, n: int = 3) -> list[int]:
    return list(range(1, n + 1))


@runyard.step
def scale(rows: list[int], *, factor: int = 2) -> list[int]:
    return [r * factor for r in rows]


@runyard.step
def total(rows: list[int]) -> int:
    return sum(rows)


@runyard.step
def name() -> str:
    return "x"


@runyard.step(outputs=["train", "test"])
def split(rows: list[int]) -> tuple[list[int], list[int]]:
    return rows[:1], rows[1:]


@runyard.step
def combine(parts: list[int]) -> list[int]:
    return list(parts)


def test_nodes_in_call_order_with_their_upstream() -> None:
    @runyard.pipeline
    def etl() -> None:
        total(scale(load()))

    assert etl.name == "etl"
    assert etl.step_names == ["load", "scale", "total"]
    assert etl.node("scale").upstream == ("load",)
    assert etl.downstream("load") == ("scale",)
    assert etl.downstream("total") == ()
    assert etl.run().output("total") == 12


def test_pipeline_version_is_stable_and_follows_the_shape() -> None:
    def body() -> None:
        total(scale(load()))

    a = runyard.pipeline(name="p")(body)
    b = runyard.pipeline(name="p")(body)
    assert a.version == b.version
    assert a.version.startswith("sha-")

    def other() -> None:
        total(load())

    assert runyard.pipeline(name="p")(other).version != a.version
    assert runyard.pipeline(name="p", params={"x": 1})(body).version != a.version
    assert runyard.pipeline(name="p", version="7")(body).version == "7"


def test_several_outputs_unpack_and_by_name() -> None:
    @runyard.pipeline
    def by_unpacking() -> None:
        train, test = split(load())
        total.alias("total_train")(train)
        total.alias("total_test")(test)

    @runyard.pipeline
    def by_name() -> None:
        parts = split(load())
        total(parts.test)

    result = by_unpacking.run()
    assert result.output("split", "train") == [1]
    assert result.output("total_train") == 1
    assert result.output("total_test") == 5
    assert by_name.run().output("total") == 5
    binding = by_name.node("total").bindings[0]
    assert [(r.node, r.output) for r in binding.refs] == [("split", "test")]


def test_unknown_output_name_suggests_the_known_ones() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def typo() -> None:
            total(split(load()).tset)

    assert "'split'" in info.value.message
    assert "'tset'" in info.value.message
    assert "did you mean 'test'" in info.value.message


def test_passing_all_outputs_of_a_multi_output_step_is_refused() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def whole() -> None:
            total(split(load()))

    assert "'total'" in info.value.message
    assert "split(...).train" in info.value.message


def test_output_named_like_a_tuple_method_is_refused() -> None:
    # Several outputs are picked by attribute (stats(...).mean), so a name that is a tuple
    # method would not be reachable; it is refused where the step is defined.
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.step(outputs=["count", "mean"])
        def stats(rows: list[int]) -> tuple[int, float]:
            return len(rows), sum(rows) / len(rows)

    assert "'count'" in info.value.message and "tuple method" in info.value.message


def test_fan_out_one_output_feeds_several_steps() -> None:
    @runyard.pipeline
    def fan_out() -> None:
        rows = load()
        total(rows)
        scale(rows)

    assert fan_out.downstream("load") == ("total", "scale")
    result = fan_out.run()
    assert result.output("total") == 6
    assert result.output("scale") == [2, 4, 6]


def test_fan_in_a_list_of_outputs_into_one_input_keeps_order() -> None:
    @runyard.pipeline
    def fan_in() -> None:
        parts = [total.alias(f"t{n}")(load.alias(f"l{n}")(n=n)) for n in (3, 1, 2)]
        combine(parts)

    node = fan_in.node("combine")
    assert node.bindings[0].many
    assert node.upstream == ("t3", "t1", "t2")
    assert fan_in.run().output("combine") == [6, 1, 3]


def test_same_step_twice_needs_an_alias() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def twice() -> None:
            total(load())
            total(load.alias("load_again")())

    message = info.value.message
    assert "'total'" in message
    assert "twice" in message
    assert "total.alias('total_2')" in message


def test_same_step_twice_with_an_alias_runs_both() -> None:
    @runyard.pipeline
    def twice() -> None:
        rows = load()
        scale(rows)
        scale.alias("scale_more")(rows, factor=10)

    assert twice.step_names == ["load", "scale", "scale_more"]
    result = twice.run()
    assert result.output("scale") == [2, 4, 6]
    assert result.output("scale_more") == [10, 20, 30]
    assert result["scale_more"].name == "scale_more"
    assert twice.node("scale_more").params.owner == "Step 'scale_more'"
    changed = twice.run(step_params={"scale_more": {"factor": 1}})
    assert changed.output("scale_more") == [1, 2, 3]
    assert changed.output("scale") == [2, 4, 6]


def test_two_different_steps_with_the_same_name_are_refused() -> None:
    @runyard.step(name="load")
    def other_load() -> list[int]:
        return [0]

    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def clash() -> None:
            total(load())
            total.alias("total_2")(other_load())

    message = info.value.message
    assert "Two different steps are named 'load'" in message
    assert "'clash'" in message
    assert "name=" in message
    assert ".alias(" in message


def test_input_not_wired_names_the_step_and_input() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def unwired() -> None:
            total()

    message = info.value.message
    assert "'total'" in message
    assert "'rows'" in message
    assert "not wired" in message
    assert "'unwired'" in message


def test_plain_value_passed_as_an_input_is_refused_with_the_fix() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def plain() -> None:
            total([1, 2, 3])

    message = info.value.message
    assert "'total'" in message
    assert "'rows'" in message
    assert "[1, 2, 3]" in message
    assert "keyword-only step parameter" in message


def test_too_many_inputs_are_refused() -> None:
    with pytest.raises(errors.DefinitionError, match=r"'total' takes 1 input.*rows.*got 2"):

        @runyard.pipeline
        def extra() -> None:
            rows = load()
            total(rows, rows)


def test_input_given_twice_is_refused() -> None:
    with pytest.raises(errors.DefinitionError, match="'total' input 'rows' is given twice"):

        @runyard.pipeline
        def doubled() -> None:
            rows = load()
            total(rows, rows=rows)


def test_unknown_keyword_suggests_the_known_names() -> None:
    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def typo() -> None:
            scale(load(), factr=3)

    message = info.value.message
    assert "'scale'" in message
    assert "'factr'" in message
    assert "did you mean 'factor'" in message
    assert "Known: factor, rows" in message


def test_input_by_keyword_is_wired() -> None:
    @runyard.pipeline
    def by_keyword() -> None:
        total(rows=load())

    assert by_keyword.run().output("total") == 6


def test_constant_step_parameter_becomes_that_nodes_default() -> None:
    @runyard.pipeline
    def tripled() -> None:
        rows = load()
        scale(rows, factor=3)
        scale.alias("plain_scale")(rows)

    assert tripled.node("scale").params.defaults() == {"factor": 3}
    assert tripled.node("plain_scale").params.defaults() == {"factor": 2}
    assert scale.params.defaults() == {"factor": 2}  # the step itself is untouched
    assert tripled.run().output("scale") == [3, 6, 9]
    overridden = tripled.run(step_params={"scale": {"factor": 5}})
    assert overridden.output("scale") == [5, 10, 15]


def test_constant_step_parameter_is_validated_at_definition() -> None:
    with pytest.raises(errors.UsageError) as info:

        @runyard.pipeline
        def wrong() -> None:
            scale(load(), factor="lots")

    message = info.value.message
    assert "'scale'" in message
    assert "'factor'" in message
    assert "'lots'" in message
    assert "int" in message


def test_incompatible_annotated_types_are_refused() -> None:
    @runyard.step
    def numbers(values: list[int]) -> int:
        return len(values)

    with pytest.raises(errors.DefinitionError) as info:

        @runyard.pipeline
        def mismatch() -> None:
            numbers(name())

    message = info.value.message
    assert "'numbers'" in message
    assert "'values'" in message
    assert "list[int]" in message
    assert "'name'" in message
    assert "str" in message
    assert "change one of the annotations" in message


def test_incompatible_types_in_a_fan_in_are_refused() -> None:
    with pytest.raises(errors.DefinitionError, match="'combine' input 'parts' expects int"):

        @runyard.pipeline
        def mixed() -> None:
            combine([total(load()), name()])


@runyard.step
def as_float(x: float) -> float:
    return x


@runyard.step
def as_sequence(xs: Sequence[int]) -> int:
    return len(xs)


@runyard.step
def as_any(x: Any) -> Any:
    return x


@runyard.step
def as_optional(x: int | None) -> int:
    return x or 0


@runyard.step
def untyped():  # type: ignore[no-untyped-def]
    return 1


def test_compatible_annotated_types_are_accepted() -> None:
    @runyard.pipeline
    def compatible() -> None:
        rows = load()
        count = total(rows)
        as_float(count)  # int into float
        as_sequence(rows)  # list[int] into Sequence[int]
        as_any(name())  # anything into Any
        as_optional(count)  # int into int | None
        as_float.alias("float_2")(untyped())  # unannotated into float

    result = compatible.run()
    assert result.success
    assert result.output("as_float") == 6
    assert result.output("as_sequence") == 3


def test_pipeline_without_steps_is_refused() -> None:
    with pytest.raises(errors.DefinitionError, match="'empty' has no steps"):

        @runyard.pipeline
        def empty() -> None:
            pass


def test_max_step_parallelism_must_be_positive() -> None:
    with pytest.raises(errors.DefinitionError, match="max_step_parallelism=0"):

        @runyard.pipeline(max_step_parallelism=0)
        def zero() -> None:
            load()


def test_pipeline_params_must_be_a_dict_or_a_model() -> None:
    with pytest.raises(errors.DefinitionError, match=r"'odd'.*Pydantic model"):

        @runyard.pipeline(params=["a"])  # type: ignore[arg-type]
        def odd() -> None:
            load()


def test_unknown_step_lookup_suggests_the_known_ones() -> None:
    @runyard.pipeline
    def etl() -> None:
        total(load())

    with pytest.raises(errors.ParameterError, match=r"'etl' has no step 'lod'.*mean 'load'"):
        etl.node("lod")


def test_the_decorator_returns_a_runnable_pipeline_definition() -> None:
    @runyard.pipeline(name="named", description="Does things.")
    def body() -> None:
        load()

    assert isinstance(body, pipelines.PipelineDefinition)
    assert isinstance(body, runyard.Pipeline)
    assert body.name == "named"
    assert body.description == "Does things."
