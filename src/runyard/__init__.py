"""runyard: a job orchestrator for data pipelines.

Define steps and pipelines, run them in process with ``Pipeline.run``, or as jobs over
parameter grids with ``create_job``; every job, run, step, log line and output is recorded.

Names are imported when first used: a pipeline file's ``import runyard`` loads the model and
the runner, not the metadata store, so scripts start fast and the processes that execute
runs stay small.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runyard.app.service import Runyard, connect, create_job
    from runyard.app.subjobs import create_subjob, wait_for_subjobs
    from runyard.app.workdata import open_workdata, save_workdata
    from runyard.core.records import Job, JobSummary, Notice, Run, StepRun
    from runyard.core.retries import RetryPolicy
    from runyard.core.states import JobState, RunState, StepState
    from runyard.core.steps import step
    from runyard.errors import RunyardError
    from runyard.execution.context import get_params, get_pipeline_param, get_step_param
    from runyard.execution.exchange import get_inputs, output
    from runyard.execution.filesteps import notebook, script
    from runyard.execution.pipeline import Pipeline, PipelineResult, StepResult, pipeline

__all__ = [
    "Job",
    "JobState",
    "JobSummary",
    "Notice",
    "Pipeline",
    "PipelineResult",
    "RetryPolicy",
    "Run",
    "RunState",
    "Runyard",
    "RunyardError",
    "StepResult",
    "StepRun",
    "StepState",
    "connect",
    "create_job",
    "create_subjob",
    "get_inputs",
    "get_params",
    "get_pipeline_param",
    "get_step_param",
    "notebook",
    "open_workdata",
    "output",
    "pipeline",
    "save_workdata",
    "script",
    "step",
    "wait_for_subjobs",
]

__version__ = "0.1.0"

# Where each name lives; ``__getattr__`` imports it on first use.
_WHERE = {
    **dict.fromkeys(["Runyard", "connect", "create_job"], "runyard.app.service"),
    **dict.fromkeys(["create_subjob", "wait_for_subjobs"], "runyard.app.subjobs"),
    **dict.fromkeys(["open_workdata", "save_workdata"], "runyard.app.workdata"),
    **dict.fromkeys(["Job", "JobSummary", "Notice", "Run", "StepRun"], "runyard.core.records"),
    "RetryPolicy": "runyard.core.retries",
    **dict.fromkeys(["JobState", "RunState", "StepState"], "runyard.core.states"),
    "step": "runyard.core.steps",
    "RunyardError": "runyard.errors",
    **dict.fromkeys(
        ["get_params", "get_pipeline_param", "get_step_param"], "runyard.execution.context"
    ),
    **dict.fromkeys(["get_inputs", "output"], "runyard.execution.exchange"),
    **dict.fromkeys(["notebook", "script"], "runyard.execution.filesteps"),
    **dict.fromkeys(
        ["Pipeline", "PipelineResult", "StepResult", "pipeline"], "runyard.execution.pipeline"
    ),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'runyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # from now on an attribute like any other
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
