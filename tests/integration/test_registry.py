"""The registry of processing steps: what loading and snapshotting a project records."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from runyard import errors
from runyard.app import service
from runyard.core import registry, states
from runyard.execution import loader

SOURCE = '''
import runyard


@runyard.step(version="{version}")
def double(*, x: int = 2, label: str = "n") -> dict:
    """Double x."""
    return {{"label": label, "value": x * 2}}


@runyard.step
def consume(values: list) -> int:
    return len(values)


@runyard.pipeline(params={{"unit": "kg"}})
def doubling():
    double()
'''


def project(tmp_path: pathlib.Path, version: str = "1.0") -> pathlib.Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "runyard.toml").write_text("")
    (root / "steps.py").write_text(textwrap.dedent(SOURCE.format(version=version)))
    return root / "steps.py"


def test_registering_a_file_records_its_pipelines_and_steps_with_their_schemas(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    file = project(tmp_path)

    found = app.register_file(file)

    assert sorted((r.kind.value, r.name) for r in found) == [
        ("pipeline", "doubling"),
        ("step", "consume"),
        ("step", "double"),
    ]
    double = app.registration("double")
    assert double.version == "1.0" and double.description == "Double x."
    assert double.reference == f"{file}:double"
    assert double.snapshot_id is not None
    assert double.params_schema["properties"]["x"] == {"type": "integer", "default": 2}
    pipe = app.registration("doubling")
    assert pipe.params_schema["pipeline"]["properties"]["unit"]["default"] == "kg"
    assert set(pipe.params_schema["steps"]) == {"double"}


def test_creating_a_job_registers_and_versions_are_listed_when_one_must_be_chosen(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    file = project(tmp_path, "1.0")
    app.create_job(loader.load_pipeline(f"{file}:doubling").pipeline)
    file.write_text(textwrap.dedent(SOURCE.format(version="2.0")))
    app.register_file(file)

    assert [r.version for r in app.registrations(name="double")] == ["1.0", "2.0"]
    assert app.registration("double", "2.0").version == "2.0"
    with pytest.raises(errors.UsageError, match=r"'double' has 2 versions: 1\.0 \(.*2\.0"):
        app.registration("double")
    with pytest.raises(errors.NotFoundError, match=r"registered: 1\.0, 2\.0"):
        app.registration("double", "3.0")
    with pytest.raises(errors.NotFoundError, match="No processing step 'triple'"):
        app.registration("triple")
    pipelines = app.registrations(kind=registry.Kind.PIPELINE)
    assert [r.name for r in pipelines] == ["doubling", "doubling"]  # its step changed
    assert len({r.version for r in pipelines}) == 2


def test_a_step_alone_runs_as_a_one_step_job(app: service.Runyard, tmp_path: pathlib.Path) -> None:
    file = project(tmp_path)
    alone = loader.load_pipeline(f"{file}:double").pipeline
    assert (alone.name, alone.version, alone.step_names) == ("double", "1.0", ["double"])

    job = app.create_job(alone, grid={"double": {"x": [1, 5]}})
    done = app.execute_job(job.id)

    assert done.state is states.JobState.SUCCESS
    values = [app.output(r.id, "double")["value"] for r in app.list_runs(job.id)]
    assert values == [2, 10]
    with pytest.raises(errors.DefinitionError, match=r"needs input.*values.*cannot run alone"):
        loader.load_pipeline(f"{file}:consume")


def test_a_file_that_does_not_load_registers_nothing(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    broken = tmp_path / "proj" / "broken.py"
    broken.parent.mkdir()
    broken.write_text("import runyard\nraise RuntimeError('no')\n")

    with pytest.raises(errors.LoadError, match=r"broken\.py, line 2"):
        app.register_file(broken)
    assert app.registrations() == []
    assert app.list_snapshots() == []
