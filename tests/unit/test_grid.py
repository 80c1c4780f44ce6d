"""Parameter grids in the ``<pipeline>.parameters.json`` format: checks, size, expansion,
deselection."""

import json

import pytest

import runyard
from runyard import errors
from runyard.core import grid


@runyard.step
def candy(*, candy: str = "chocolate", fruit: str = "apple", sweetness: int = 1) -> str:
    return f"{candy} {fruit} {sweetness}"


@runyard.step
def eat(snack: str, *, bites: int = 1) -> str:
    return snack * bites


@runyard.pipeline(params={"vegetable": "carrot", "fruit": "banana"})
def snacks() -> None:
    eat(candy())


def parse(raw: object, **kwargs: object) -> grid.Grid:
    return grid.parse_grid(snacks, raw, **kwargs)  # type: ignore[arg-type]


SEED_FILE = """
{
  "pipeline_parameters": {"fruit": ["banana", "kiwi"]},
  "candy": {"sweetness": [1, 2, 3], "candy": ["toffee"]}
}
"""


def test_seed_file_format_is_read() -> None:
    checked = parse(json.loads(SEED_FILE))
    assert checked.pipeline == {"fruit": ["banana", "kiwi"]}
    assert checked.steps == {"candy": {"sweetness": [1, 2, 3], "candy": ["toffee"]}}
    assert checked.size == 6
    assert checked.to_json() == json.loads(SEED_FILE)


def test_no_grid_is_one_run_of_the_defaults() -> None:
    for raw in (None, {}):
        checked = parse(raw)
        assert checked.size == 1
        assert list(checked.expand(snacks)) == [
            {
                "pipeline": {"vegetable": "carrot", "fruit": "banana"},
                "steps": {
                    "candy": {"candy": "chocolate", "fruit": "apple", "sweetness": 1},
                    "eat": {"bites": 1},
                },
            }
        ]


def test_a_bare_value_is_refused_even_for_one_value() -> None:
    with pytest.raises(errors.GridError) as info:
        parse({"pipeline_parameters": {"fruit": "kiwi"}})
    message = info.value.message
    assert "'fruit'" in message
    assert "must be a list" in message
    assert '["kiwi"]' in message


def test_an_unknown_step_is_refused_with_did_you_mean() -> None:
    with pytest.raises(errors.GridError) as info:
        parse({"cnady": {"sweetness": [1]}})
    message = info.value.message
    assert "'cnady'" in message
    assert "did you mean 'candy'" in message
    assert "'snacks'" in message


def test_an_unknown_key_is_refused_with_did_you_mean() -> None:
    with pytest.raises(errors.GridError) as info:
        parse({"candy": {"sweetnes": [1]}})
    message = info.value.message
    assert "'sweetnes'" in message
    assert "did you mean 'sweetness'" in message
    assert "'candy'" in message


def test_an_unknown_pipeline_parameter_is_refused() -> None:
    with pytest.raises(errors.GridError, match=r"'vegetables'.*did you mean 'vegetable'"):
        parse({"pipeline_parameters": {"vegetables": ["leek"]}})


def test_a_wrong_typed_value_is_refused_naming_parameter_and_value() -> None:
    with pytest.raises(errors.GridError) as info:
        parse({"candy": {"sweetness": [1, "very"]}})
    message = info.value.message
    assert "'sweetness'" in message
    assert "'very'" in message
    assert "int" in message


def test_a_boolean_for_an_int_parameter_is_refused() -> None:
    with pytest.raises(errors.GridError, match="'sweetness'"):
        parse({"candy": {"sweetness": [True]}})


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(errors.GridError) as info:
        parse({"eat": {"bites": []}})
    assert "'bites'" in info.value.message
    assert "empty list" in info.value.message


def test_a_step_entry_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(errors.GridError, match="'candy' must map parameter names to lists"):
        parse({"candy": [1, 2]})


def test_a_grid_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(errors.GridError, match=r"JSON object.*list"):
        parse([{"fruit": ["kiwi"]}])


def test_several_problems_are_reported_in_one_message() -> None:
    with pytest.raises(errors.GridError) as info:
        parse(
            {
                "pipeline_parameters": {"fruit": "kiwi"},
                "cnady": {"sweetness": [1]},
                "candy": {"sweetness": ["very"], "colour": ["red"]},
                "eat": {"bites": []},
            },
            source="Grid file snacks.parameters.json",
        )
    message = info.value.message
    assert message.startswith("Grid file snacks.parameters.json: 5 problems")
    for part in ("'fruit'", "'cnady'", "'very'", "'colour'", "'bites'"):
        assert part in message


def test_size_is_the_product_of_the_list_lengths() -> None:
    checked = parse(
        {
            "pipeline_parameters": {"fruit": ["a", "b"], "vegetable": ["c", "d", "e"]},
            "candy": {"sweetness": [1, 2]},
            "eat": {"bites": [1]},
        }
    )
    assert checked.size == 2 * 3 * 2 * 1


def test_expand_is_the_cartesian_product_with_defaults_in_a_stable_order() -> None:
    checked = parse(
        {
            "eat": {"bites": [1, 2]},
            "pipeline_parameters": {"fruit": ["kiwi", "pear"]},
            "candy": {"candy": ["toffee"]},
        }
    )
    runs = list(checked.expand(snacks))
    assert len(runs) == checked.size == 4
    # Pipeline parameters vary slowest, then each step in pipeline order.
    assert [(r["pipeline"]["fruit"], r["steps"]["eat"]["bites"]) for r in runs] == [
        ("kiwi", 1),
        ("kiwi", 2),
        ("pear", 1),
        ("pear", 2),
    ]
    for run in runs:
        assert run["pipeline"]["vegetable"] == "carrot"
        assert run["steps"]["candy"] == {"candy": "toffee", "fruit": "apple", "sweetness": 1}
    assert list(checked.expand(snacks)) == runs


def test_expand_fills_defaults_and_does_not_share_dicts_between_runs() -> None:
    runs = list(parse({"candy": {"sweetness": [1, 2]}}).expand(snacks))
    runs[0]["steps"]["eat"]["bites"] = 99
    runs[0]["pipeline"]["fruit"] = "changed"
    assert runs[1]["steps"]["eat"]["bites"] == 1
    assert runs[1]["pipeline"]["fruit"] == "banana"


def test_expand_refuses_a_missing_required_parameter() -> None:
    @runyard.step
    def needs(*, level: int) -> int:
        return level

    @runyard.pipeline
    def strict() -> None:
        needs()

    with pytest.raises(errors.ParameterError, match=r"'needs'.*level"):
        list(grid.parse_grid(strict, {}).expand(strict))
    runs = list(grid.parse_grid(strict, {"needs": {"level": [4]}}).expand(strict))
    assert runs == [{"pipeline": {}, "steps": {"needs": {"level": 4}}}]


def test_a_grid_above_max_runs_is_refused_unless_allowed() -> None:
    side = 400  # 400 * 400 = 160,000 runs
    assert side * side > grid.MAX_RUNS
    raw = {
        "candy": {"sweetness": list(range(side))},
        "eat": {"bites": list(range(side))},
    }
    with pytest.raises(errors.GridError) as info:
        parse(raw)
    assert "160,000 runs" in info.value.message
    assert "allow_large_grid" in info.value.message
    assert parse(raw, allow_large=True).size == side * side


def test_a_grid_at_max_runs_is_accepted() -> None:
    checked = parse({"candy": {"sweetness": list(range(grid.MAX_RUNS))}})
    assert checked.size == grid.MAX_RUNS


def runs_of(raw: dict[str, object]) -> tuple[grid.Grid, list]:  # type: ignore[type-arg]
    checked = parse(raw)
    return checked, list(checked.expand(snacks))


FOUR = {"pipeline_parameters": {"fruit": ["apple", "pear"]}, "candy": {"sweetness": [1, 2]}}


def test_select_runs_without_deselection_keeps_every_run_with_its_index() -> None:
    checked, runs = runs_of(FOUR)
    assert grid.select_runs(runs, [], size=checked.size) == list(enumerate(runs))


def test_deselect_by_index() -> None:
    checked, runs = runs_of(FOUR)
    selected = grid.select_runs(runs, [0, 3], size=checked.size)
    assert [i for i, _ in selected] == [1, 2]
    assert [p for _, p in selected] == [runs[1], runs[2]]


def test_deselect_by_pipeline_parameter_filter() -> None:
    checked, runs = runs_of(FOUR)
    selected = grid.select_runs(runs, [{"fruit": "apple"}], size=checked.size)
    assert [i for i, _ in selected] == [2, 3]
    assert all(p["pipeline"]["fruit"] == "pear" for _, p in selected)


def test_deselect_by_step_parameter_filter() -> None:
    checked, runs = runs_of(FOUR)
    selected = grid.select_runs(runs, [{"candy.sweetness": 2}], size=checked.size)
    assert [i for i, _ in selected] == [0, 2]


def test_a_filter_with_several_keys_needs_all_to_match() -> None:
    checked, runs = runs_of(FOUR)
    selected = grid.select_runs(runs, [{"fruit": "pear", "candy.sweetness": 1}], size=checked.size)
    assert [i for i, _ in selected] == [0, 1, 3]


def test_deselect_by_callable() -> None:
    checked, runs = runs_of(FOUR)
    selected = grid.select_runs(
        runs,
        [lambda p: p["pipeline"]["fruit"] == "pear" and p["steps"]["candy"]["sweetness"] == 2],
        size=checked.size,
    )
    assert [i for i, _ in selected] == [0, 1, 2]


def test_deselections_combine() -> None:
    checked, runs = runs_of(FOUR)
    selected = grid.select_runs(runs, [0, {"candy.sweetness": 2}], size=checked.size)
    assert [i for i, _ in selected] == [2]


@pytest.mark.parametrize("index", [4, -1, 100])
def test_deselecting_an_index_outside_the_grid_is_refused(index: int) -> None:
    checked, runs = runs_of(FOUR)
    with pytest.raises(errors.GridError) as info:
        grid.select_runs(runs, [index], size=checked.size)
    assert str(index) in info.value.message
    assert "0..3" in info.value.message


def test_deselecting_every_run_is_refused() -> None:
    checked, runs = runs_of(FOUR)
    with pytest.raises(errors.GridError, match=r"Every run.*deselected"):
        grid.select_runs(runs, [0, 1, {"fruit": "pear"}], size=checked.size)


def test_a_filter_on_an_unknown_parameter_is_refused() -> None:
    checked, runs = runs_of(FOUR)
    with pytest.raises(errors.GridError, match=r"'candy.colour'"):
        grid.select_runs(runs, [{"candy.colour": "red"}], size=checked.size)


@pytest.mark.parametrize("item", [True, "0", 1.5])
def test_a_deselection_of_another_kind_is_refused(item: object) -> None:
    checked, runs = runs_of(FOUR)
    with pytest.raises(errors.GridError, match="Cannot deselect"):
        grid.select_runs(runs, [item], size=checked.size)  # type: ignore[list-item]
