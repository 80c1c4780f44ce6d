"""Integration fixtures: the app facade on a real SQLite store under ``tmp_path``, and the
fixture pipelines loaded from their files the way users load them."""

import pathlib
from collections.abc import Callable, Iterator

import pytest

from runyard.app import service, settings
from runyard.core import pipelines
from runyard.execution import loader

PIPELINES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"


@pytest.fixture
def app(tmp_path: pathlib.Path) -> Iterator[service.Runyard]:
    """runyard on a fresh SQLite database and artifact directory; ignores RUNYARD_* vars."""
    opened = service.Runyard.open(settings.Settings.from_env({}, home=tmp_path / "home"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def load() -> Callable[[str], pipelines.PipelineDefinition]:
    """Load ``FILE.py:NAME`` from the fixture pipelines folder, as a user would."""

    def loading(reference: str) -> pipelines.PipelineDefinition:
        return loader.load_pipeline(str(PIPELINES / reference)).pipeline

    return loading
