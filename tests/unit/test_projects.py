"""Finding a pipeline's project and reading its settings."""

from __future__ import annotations

import pathlib

import pytest

from runyard import errors
from runyard.app import projects


def write(path: pathlib.Path, text: str = "") -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_project_is_the_nearest_folder_with_runyard_toml_or_pyproject_toml(
    tmp_path: pathlib.Path,
) -> None:
    write(tmp_path / "pyproject.toml", "[project]\nname = 'outer'\n")
    write(tmp_path / "inner" / "runyard.toml")
    pipeline = write(tmp_path / "inner" / "pipes" / "deep" / "etl.py")
    top = write(tmp_path / "other" / "etl.py")

    assert projects.find_project(pipeline).root == tmp_path / "inner"
    assert projects.find_project(top).root == tmp_path


def test_without_a_marker_the_project_is_the_pipeline_files_folder(
    tmp_path: pathlib.Path,
) -> None:
    # tmp_path has no marker above it on a test machine; if it had, the test would say so.
    markers = [p for p in tmp_path.parents for m in projects.MARKERS if (p / m).is_file()]
    if markers:
        pytest.skip(f"a project marker exists above the temporary folder: {markers[0]}")
    pipeline = write(tmp_path / "pipes" / "etl.py")

    found = projects.find_project(pipeline)

    assert found.root == tmp_path / "pipes"
    assert found.data_dir == tmp_path / "pipes" / "data"
    assert found.snapshot_max_mb == 200
    assert found.settings_file is None


def test_settings_come_from_runyard_toml(tmp_path: pathlib.Path) -> None:
    settings = write(tmp_path / "runyard.toml", 'data_dir = "inputs/big"\nsnapshot_max_mb = 5\n')
    write(tmp_path / "pyproject.toml", '[tool.runyard]\ndata_dir = "ignored"\n')

    found = projects.project_at(tmp_path)

    assert found.data_dir == tmp_path / "inputs" / "big"
    assert found.snapshot_max_bytes == 5 * 1024 * 1024
    assert found.settings_file == settings


def test_settings_come_from_pyproject_tool_runyard(tmp_path: pathlib.Path) -> None:
    write(
        tmp_path / "pyproject.toml", '[tool.runyard]\ndata_dir = "blobs"\nsnapshot_max_mb = 0.5\n'
    )

    found = projects.find_project(write(tmp_path / "etl.py"))

    assert found.data_dir == tmp_path / "blobs"
    assert found.snapshot_max_mb == 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("snapshot_max_mb = 0\n", r"runyard.toml: snapshot_max_mb = 0 is not valid; give a number"),
        ('snapshot_max_mb = "big"\n', r"snapshot_max_mb = 'big' is not valid"),
        ("snapshot_max_mb = true\n", r"snapshot_max_mb = True is not valid"),
        ("data_dir = 3\n", r"runyard.toml: data_dir = 3 is not valid; give a folder path"),
        ('data_dir = "."\n', r"data_dir = '.' is the project itself .*give a folder inside it"),
        ('data_dir = ".."\n', r"data_dir = '..' is the project itself \(or holds it\)"),
        ('data_dri = "x"\n', r"unknown runyard setting 'data_dri'; did you mean 'data_dir'\?"),
        ("data_dir = \n", r"Cannot read project settings from .*runyard.toml: .*fix the file"),
    ],
)
def test_bad_settings_are_refused_naming_the_file_key_value_and_fix(
    tmp_path: pathlib.Path, text: str, expected: str
) -> None:
    write(tmp_path / "runyard.toml", text)

    with pytest.raises(errors.UsageError, match=expected) as raised:
        projects.find_project(write(tmp_path / "etl.py"))

    assert str(tmp_path / "runyard.toml") in str(raised.value)


def test_bad_pyproject_settings_name_the_table(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.runyard]\nsnapshot_max_mb = -1\n")

    with pytest.raises(errors.UsageError, match=r"\[tool.runyard\] in .*pyproject.toml: snap"):
        projects.project_at(tmp_path)


def test_a_missing_project_folder_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.UsageError, match="does not exist or is not a folder"):
        projects.project_at(tmp_path / "nope")
