"""Loading pipelines from ``FILE.py[:NAME]`` the way the CLI and workers do."""

import pathlib
import sys
import textwrap
from collections.abc import Iterator

import pytest

from runyard import errors
from runyard.execution import loader

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"

TWO = """
import runyard

@runyard.step
def one() -> int:
    return 1

@runyard.pipeline
def first() -> None:
    one()

@runyard.pipeline
def second() -> None:
    one()

not_a_pipeline = 3
"""


@pytest.fixture(autouse=True)
def _restore_imports() -> Iterator[None]:
    """Loading adds the file's folder to sys.path and its module to sys.modules; undo that."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write(folder: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_load_by_file_and_name() -> None:
    loaded = loader.load_pipeline(f"{FIXTURES / 'grid_pipeline.py'}:grid_pipeline")
    assert loaded.pipeline.name == "grid_pipeline"
    assert loaded.path == FIXTURES / "grid_pipeline.py"
    assert loaded.attribute == "grid_pipeline"
    assert loaded.reference == f"{FIXTURES / 'grid_pipeline.py'}:grid_pipeline"
    assert loader.reference_of(loaded.pipeline) == loaded.reference


def test_loading_twice_gives_the_same_pipeline() -> None:
    reference = f"{FIXTURES / 'grid_pipeline.py'}:grid_pipeline"
    assert loader.load_pipeline(reference).pipeline is loader.load_pipeline(reference).pipeline


def test_a_file_with_one_pipeline_needs_no_name() -> None:
    assert loader.load_pipeline(str(FIXTURES / "autogrid.py")).pipeline.name == "autogrid"


def test_a_file_with_several_pipelines_needs_a_name(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "two_pipelines.py", TWO)
    with pytest.raises(errors.LoadError) as info:
        loader.load_pipeline(str(path))
    assert "2 pipelines (first, second)" in info.value.message
    assert ":NAME" in info.value.message
    assert loader.load_pipeline(f"{path}:second").pipeline.name == "second"


def test_an_unknown_name_suggests_the_known_ones(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "two_names.py", TWO)
    with pytest.raises(errors.LoadError, match=r"'secnd'.*did you mean 'second'"):
        loader.load_pipeline(f"{path}:secnd")


def test_a_name_that_is_not_a_pipeline_says_so(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "not_pipeline.py", TWO)
    with pytest.raises(errors.LoadError, match="not_a_pipeline is a int, not a pipeline"):
        loader.load_pipeline(f"{path}:not_a_pipeline")


def test_a_missing_file_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.LoadError, match=r"No pipeline file.*FILE.py:PIPELINE"):
        loader.load_pipeline(f"{tmp_path / 'nope.py'}:x")
    with pytest.raises(errors.LoadError, match="it is a directory"):
        loader.load_pipeline(str(tmp_path))


def test_a_file_that_is_not_python_is_refused(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "pipeline.txt", "x")
    with pytest.raises(errors.LoadError, match=r"neither a Python file nor a \.orchest file"):
        loader.load_pipeline(str(path))


def test_a_syntax_error_names_the_line(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "broken_syntax.py", "import runyard\n\ndef f(:\n    pass\n")
    with pytest.raises(errors.LoadError, match=r"broken_syntax.py, line 3: syntax error"):
        loader.load_pipeline(str(path))


def test_an_import_error_names_the_line(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "raises_on_import.py", "x = 1\nraise RuntimeError('no db')\n")
    with pytest.raises(errors.LoadError) as info:
        loader.load_pipeline(str(path))
    assert "raises_on_import.py, line 2" in info.value.message
    assert "RuntimeError: no db" in info.value.message


def test_a_definition_error_in_the_file_is_a_load_error(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        "bad_definition.py",
        """
        import runyard

        @runyard.step
        def total(rows: list[int]) -> int:
            return sum(rows)

        @runyard.pipeline
        def bad() -> None:
            total()
        """,
    )
    with pytest.raises(errors.LoadError) as info:
        loader.load_pipeline(str(path))
    assert "bad_definition.py" in info.value.message
    assert "not wired" in info.value.message
    assert isinstance(info.value.__cause__, errors.DefinitionError)


def test_a_file_can_import_its_neighbours(tmp_path: pathlib.Path) -> None:
    write(
        tmp_path,
        "neighbour_steps.py",
        "import runyard\n\n@runyard.step\ndef s() -> int:\n    return 5\n",
    )
    path = write(
        tmp_path,
        "uses_neighbour.py",
        """
        import runyard
        from neighbour_steps import s

        @runyard.pipeline
        def p() -> None:
            s()
        """,
    )
    assert loader.load_pipeline(str(path)).pipeline.run().output("s") == 5
