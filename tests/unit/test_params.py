"""Typed parameters: spaces from defaults, from Pydantic models, JSON round trips, CLI text."""

import datetime as dt
import inspect
from typing import Any

import pydantic
import pytest

from runyard import errors
from runyard.core import params


def space_from_dict() -> params.ParamSpace:
    return params.ParamSpace.from_mapping(
        "Pipeline 'etl'",
        {"n": 3, "ratio": 0.5, "flag": False, "name": "x", "tags": ["a"], "anything": None},
    )


class Settings(pydantic.BaseModel):
    rows: int = pydantic.Field(10, gt=0)
    ratio: float = pydantic.Field(0.5, ge=0, le=1)
    when: dt.datetime
    label: str = "run"


def space_from_model() -> params.ParamSpace:
    return params.ParamSpace.from_model("Pipeline 'etl'", Settings)


def test_types_come_from_the_defaults() -> None:
    space = space_from_dict()
    assert space.names() == ["n", "ratio", "flag", "name", "tags", "anything"]
    types = {s.name: s.annotation for s in space}
    assert types == {
        "n": int,
        "ratio": float,
        "flag": bool,
        "name": str,
        "tags": list,
        "anything": Any,
    }
    assert not any(s.required for s in space)
    assert space.defaults() == {
        "n": 3,
        "ratio": 0.5,
        "flag": False,
        "name": "x",
        "tags": ["a"],
        "anything": None,
    }


def test_values_are_checked_against_the_defaults_type() -> None:
    space = space_from_dict()
    assert space.to_json("n", 7) == 7
    assert space.to_json("ratio", 2) == 2.0
    assert space.to_json("anything", {"k": [1]}) == {"k": [1]}
    with pytest.raises(errors.ParameterError) as info:
        space.to_json("n", "seven")
    message = info.value.message
    assert "Pipeline 'etl'" in message
    assert "'n'" in message
    assert "int" in message
    assert "'seven'" in message


def test_unknown_parameter_suggests_the_known_ones() -> None:
    with pytest.raises(errors.ParameterError) as info:
        space_from_dict().spec("nme")
    assert "'nme'" in info.value.message
    assert "did you mean 'name'" in info.value.message


def test_model_fields_give_types_defaults_and_required() -> None:
    space = space_from_model()
    assert space.names() == ["rows", "ratio", "when", "label"]
    assert space.spec("rows").annotation is int
    assert space.spec("when").required
    assert not space.spec("rows").required
    assert space.defaults() == {"rows": 10, "ratio": 0.5, "label": "run"}


@pytest.mark.parametrize(("name", "value"), [("rows", 0), ("rows", -3), ("ratio", 1.5)])
def test_model_field_constraints_are_enforced(name: str, value: Any) -> None:
    with pytest.raises(errors.ParameterError) as info:
        space_from_model().to_json(name, value)
    assert repr(name) in info.value.message
    assert repr(value) in info.value.message


def test_model_field_constraints_let_good_values_through() -> None:
    space = space_from_model()
    assert space.to_json("rows", 1) == 1
    assert space.to_json("ratio", 1) == 1.0


def test_datetime_round_trips_through_json() -> None:
    space = space_from_model()
    when = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)
    stored = space.to_json("when", when)
    assert isinstance(stored, str)
    assert stored.startswith("2024-03-01T12:30:00")
    back = space.to_python("when", stored)
    assert back == when
    assert isinstance(back, dt.datetime)


def test_to_python_refuses_a_stored_value_of_the_wrong_type() -> None:
    with pytest.raises(errors.ParameterError, match="'when'"):
        space_from_model().to_python("when", "not a date")


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(errors.ParameterError, match=r"'anything'.*JSON"):
        space_from_dict().to_json("anything", object())


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("n", "3", 3),
        ("flag", "true", True),
        ("flag", "false", False),
        ("ratio", "0.25", 0.25),
        ("tags", "[1, 2]", [1, 2]),
        ("name", "3", "3"),  # a str parameter takes the text as it is
        ("name", "true", "true"),
        ("name", "[1,2]", "[1,2]"),
        ("name", "carrot", "carrot"),
        ("anything", "3", 3),
        ("anything", "carrot", "carrot"),
    ],
)
def test_parse_text_reads_command_line_values(name: str, text: str, expected: Any) -> None:
    value = space_from_dict().parse_text(name, text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_text_of_a_typed_list() -> None:
    space = params.ParamSpace.from_parameters(
        "Step 's'",
        [inspect.Parameter("ids", inspect.Parameter.KEYWORD_ONLY, annotation=list[int])],
    )
    assert space.parse_text("ids", "[1,2]") == [1, 2]
    with pytest.raises(errors.ParameterError, match="'ids'"):
        space.parse_text("ids", '[1, "x"]')


def test_parse_text_refuses_a_value_of_the_wrong_type() -> None:
    with pytest.raises(errors.ParameterError) as info:
        space_from_dict().parse_text("n", "three")
    assert "'n'" in info.value.message
    assert "'three'" in info.value.message


def test_resolve_overlays_values_on_defaults() -> None:
    assert space_from_dict().resolve({"n": 5}) == {
        "n": 5,
        "ratio": 0.5,
        "flag": False,
        "name": "x",
        "tags": ["a"],
        "anything": None,
    }


def test_resolve_refuses_a_missing_required_parameter() -> None:
    with pytest.raises(errors.ParameterError) as info:
        space_from_model().resolve({"rows": 2})
    assert "'etl'" in info.value.message
    assert "when" in info.value.message
    assert "required" in info.value.message


def test_resolve_with_the_required_one_given() -> None:
    resolved = space_from_model().resolve({"when": "2024-03-01T00:00:00Z"})
    assert resolved["when"] == "2024-03-01T00:00:00Z"
    assert resolved["rows"] == 10


def test_resolve_refuses_an_unknown_name() -> None:
    with pytest.raises(errors.ParameterError, match=r"'rws'.*did you mean 'rows'"):
        space_from_model().resolve({"rws": 2, "when": "2024-03-01T00:00:00Z"})


def test_json_schema_lists_types_and_required() -> None:
    schema = space_from_model().json_schema()
    assert schema["required"] == ["when"]
    assert schema["properties"]["rows"]["type"] == "integer"
    assert schema["properties"]["rows"]["exclusiveMinimum"] == 0


def test_missing_is_a_sentinel() -> None:
    assert repr(params.MISSING) == "MISSING"
    assert params.ParamSpec("x").required
    assert not params.ParamSpec("x", int, None).required


def test_plain_values_of_plain_types_pass_as_they_are_and_others_are_still_checked() -> None:
    space = space_from_dict()
    assert space.to_json("n", 3) == 3 and space.to_python("n", 3) == 3
    assert space.to_json("ratio", 0.25) == 0.25 and space.to_python("tags", ["a"]) == ["a"]
    # Not of the parameter's own type: Pydantic decides, as before.
    assert space.to_python("ratio", 1) == 1.0 and isinstance(space.to_python("ratio", 1), float)
    with pytest.raises(errors.ParameterError, match="'n'"):
        space.to_json("n", True)
    # A constrained field is always checked, whatever the value's type.
    with pytest.raises(errors.ParameterError, match="'rows'"):
        space_from_model().to_python("rows", -1)


def test_a_run_of_plain_parameters_never_loads_pydantic() -> None:
    # A run's process is forked from one that holds only what runs need: Pydantic is a
    # third of that, and plain parameters never need it.
    import subprocess
    import sys

    code = (
        "import sys, runyard\n"
        "@runyard.step\n"
        "def add(*, x: int = 1, name: str = 'a') -> int:\n"
        "    return x + len(name)\n"
        "@runyard.pipeline(params={'scale': 2.0})\n"
        "def p() -> None:\n"
        "    add()\n"
        "result = p.run(step_params={'add': {'x': 4, 'name': 'abc'}})\n"
        "assert result.output('add') == 7, result\n"
        "print('pydantic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
