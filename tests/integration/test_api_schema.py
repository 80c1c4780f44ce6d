"""Schemathesis against the OpenAPI document: generated requests to every operation find no
server error and no response that breaks the document."""

from __future__ import annotations

import atexit
import pathlib
import shutil
import tempfile

import hypothesis
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extras")

from runyard.api import app as app_mod  # noqa: E402
from runyard.app import service, settings  # noqa: E402

_HOME = pathlib.Path(tempfile.mkdtemp(prefix="runyard-schemathesis-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_RYARD = service.Runyard.open(settings.Settings.from_env({}, home=_HOME / "home"))
_EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"
_RYARD.register_file(_EXAMPLE)  # so that processing steps and jobs exist to be found
_JOB = _RYARD.create_job_from("etl", start=False)
_RYARD.execute_job(_JOB.id)

schema = schemathesis.openapi.from_asgi(
    "/api/v1/openapi.json", app_mod.create_app(_RYARD, auth=False)
).exclude(path="/api/v1/events")  # an endless stream: tested in test_api.py


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    # Every check but "schema-valid data is accepted": an opaque cursor, or a grid that
    # fits the document but not the pipeline's parameters, is refused (400/422) by design.
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])
