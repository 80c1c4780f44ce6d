"""Parsing ``.orchest`` documents, and file steps in traced pipelines (no files read)."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest

import runyard
from runyard import errors
from runyard.core import filesteps, grid, orchest, pipelines

DOC: dict[str, Any] = {
    "name": "sales",
    "uuid": "p-1",
    "version": "1.0.0",
    "parameters": {"days": 3},
    "settings": {"max_steps_parallelism": 2, "auto_eval_dependencies": True},
    "services": {},
    "steps": {
        # Children before parents in the document: the order must not matter.
        "u-report": {
            "uuid": "u-report",
            "title": "Report",
            "file_path": "report.ipynb",
            "incoming_connections": ["u-clean", "u-load"],
            "parameters": {},
            "kernel": {"name": "python", "display_name": "Python 3"},
            "meta_data": {"position": [1, 2]},
        },
        "u-clean": {
            "uuid": "u-clean",
            "title": "Clean data",
            "file_path": "clean.py",
            "incoming_connections": ["u-load"],
            "parameters": {"min": 0.5},
        },
        "u-load": {
            "uuid": "u-load",
            "title": "Load",
            "file_path": "load.sh",
            "incoming_connections": [],
            "parameters": {"n": 3},
        },
    },
}


def doc(**changes: Any) -> dict[str, Any]:
    made = copy.deepcopy(DOC)
    made.update(changes)
    return made


def test_a_document_parses_with_parents_first_and_unknown_fields_kept() -> None:
    parsed = orchest.parse(DOC, source="main.orchest")
    assert parsed.name == "sales" and parsed.uuid == "p-1"
    assert parsed.parameters == {"days": 3}
    assert [s.uuid for s in parsed.steps] == ["u-load", "u-clean", "u-report"]
    assert [s.node for s in parsed.steps] == ["load", "clean_data", "report"]
    report = parsed.step("u-report")
    assert report.incoming == ("u-clean", "u-load")
    assert report.kernel == "python"
    assert report.extra == {"meta_data": {"position": [1, 2]}}
    assert parsed.step("u-clean").parameters == {"min": 0.5}
    assert parsed.max_steps_parallelism == 2
    assert parsed.extra == {"version": "1.0.0", "services": {}}


def test_no_parallelism_limit_is_zero_and_a_missing_one_is_one() -> None:
    unlimited = orchest.parse(doc(settings={"max_steps_parallelism": 0}), source="m")
    assert unlimited.max_steps_parallelism == 3
    assert orchest.parse(doc(settings={}), source="m").max_steps_parallelism == 1


def test_titles_that_make_the_same_name_get_numbered() -> None:
    made = doc()
    made["steps"]["u-clean"]["title"] = "Load"
    names = {s.uuid: s.node for s in orchest.parse(made, source="m").steps}
    # Named in document order: the clean step comes first there.
    assert names == {"u-clean": "load", "u-load": "load_2", "u-report": "report"}


def test_a_cycle_is_refused_naming_its_steps() -> None:
    made = doc()
    made["steps"]["u-load"]["incoming_connections"] = ["u-report"]
    with pytest.raises(errors.DefinitionError) as caught:
        orchest.parse(made, source="main.orchest")
    message = caught.value.message
    assert message.startswith("main.orchest: the steps' connections make a cycle: ")
    # From the step first in the document (Report), in the direction data flows.
    assert "'Report' -> 'Load' -> 'Clean data' -> 'Report'; remove one" in message


def test_a_dangling_connection_is_refused_naming_both_ends() -> None:
    made = doc()
    made["steps"]["u-clean"]["incoming_connections"] = ["u-load", "u-gone"]
    with pytest.raises(errors.DefinitionError, match=r"step 'Clean data' \(u-clean\) has an "):
        orchest.parse(made, source="main.orchest")
    with pytest.raises(errors.DefinitionError, match="from 'u-gone', which is not a step"):
        orchest.parse(made, source="main.orchest")


def test_every_problem_of_a_bad_document_is_named_at_once() -> None:
    made = doc(name="", parameters=[1])
    del made["steps"]["u-load"]["file_path"]
    made["steps"]["u-clean"]["parameters"] = "min=1"
    with pytest.raises(errors.DefinitionError) as caught:
        orchest.parse(made, source="bad.orchest")
    message = caught.value.message
    assert message.startswith("bad.orchest: 4 problems: ")
    assert "'name' must be a non-empty string" in message
    assert "'parameters' must be an object of defaults; got [1]" in message
    assert "step 'Load' (u-load) has no 'file_path'" in message
    assert "step 'Clean data' (u-clean): 'parameters' must be an object" in message


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([1, 2], "must hold a JSON object"),
        ({"name": "x", "steps": {}}, "'steps' must be an object of steps keyed by uuid"),
        (
            {"name": "x", "steps": {"a": {"uuid": "b", "file_path": "a.py"}}},
            "keyed by 'a' but says uuid 'b'",
        ),
        (
            {
                "name": "x",
                "steps": {"a": {"file_path": "a.py"}},
                "settings": {"max_steps_parallelism": -1},
            },
            "max_steps_parallelism must be 0 \\(no limit\\) or more",
        ),
    ],
)
def test_malformed_documents_are_refused(document: Any, expected: str) -> None:
    with pytest.raises(errors.DefinitionError, match=expected):
        orchest.parse(document, source="x.orchest")


def file_step(name: str, **kwargs: Any) -> filesteps.FileStep:
    return filesteps.FileStep(pathlib.PurePath(f"/project/{name}"), version="v1", **kwargs)


def test_file_steps_compose_with_function_steps_in_a_traced_pipeline() -> None:
    load = file_step("load.py", params={"n": 3})
    clean = file_step("clean.sh", outputs=["rows", "dropped"])

    @runyard.step
    def total(rows: list[int]) -> int:
        return sum(rows)

    @runyard.step
    def source() -> list[int]:
        return [1]

    @runyard.pipeline
    def pipe() -> None:
        cleaned = clean(load(), source())
        total(cleaned.rows)

    assert list(pipe.nodes) == ["load", "source", "clean", "total"]
    clean_node = pipe.nodes["clean"]
    assert [(b.input, [(r.node, r.output) for r in b.refs]) for b in clean_node.bindings] == [
        ("input_0", [("load", filesteps.ALL_OUTPUTS)]),
        ("input_1", [("source", "result")]),
    ]
    assert pipe.nodes["total"].upstream == ("clean",)
    assert pipe.nodes["load"].params.defaults() == {"n": 3}
    assert load.kind is filesteps.FileKind.SCRIPT and clean.kind is filesteps.FileKind.SHELL


def test_a_file_step_takes_parameters_and_named_inputs_by_keyword() -> None:
    load = file_step("load.py")
    report = file_step("report.ipynb", params={"title": "t"})

    @runyard.pipeline
    def pipe() -> None:
        report(data=load(), title="Sales")

    node = pipe.nodes["report"]
    assert [b.input for b in node.bindings] == ["data"]
    assert node.params.defaults() == {"title": "Sales"}
    assert report.kind is filesteps.FileKind.NOTEBOOK


def test_a_plain_value_given_to_a_file_step_is_refused() -> None:
    clean = file_step("clean.py", params={"n": 1})

    def body() -> None:
        clean([1, 2, 3])

    with pytest.raises(errors.DefinitionError, match=r"got input_0=\[1, 2, 3\].*parameters \(n\)"):
        runyard.pipeline(body)


def test_a_file_step_cannot_be_called_outside_a_pipeline() -> None:
    with pytest.raises(errors.DefinitionError, match="runs inside a pipeline"):
        file_step("clean.py")()


def test_other_files_are_not_steps() -> None:
    with pytest.raises(errors.DefinitionError, match=r"give a \.py or \.sh script or a \.ipynb"):
        filesteps.kind_of("notes.txt")


def test_a_grid_may_name_steps_by_their_other_keys() -> None:
    load = file_step("load.py", params={"n": 3})
    made = pipelines.PipelineDefinition(
        name="p",
        nodes={"load": pipelines.StepNode("load", load, (), load.params)},
        params=pipelines.param_space("Pipeline 'p'", {}),
        step_keys={"u-load": "load", "Load": "load"},
    )
    by_uuid = grid.parse_grid(made, {"u-load": {"n": [1, 2]}})
    by_title = grid.parse_grid(made, {"Load": {"n": [5]}})
    assert by_uuid.to_json() == {"load": {"n": [1, 2]}}
    assert by_title.to_json() == {"load": {"n": [5]}}
    with pytest.raises(errors.GridError, match="'u-other' is neither"):
        grid.parse_grid(made, {"u-other": {"n": [1]}})
