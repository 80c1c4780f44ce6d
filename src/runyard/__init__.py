"""runyard: a job orchestrator for data pipelines.

Define steps and pipelines, run them in process with ``Pipeline.run``, or as jobs over
parameter grids with ``create_job``; every job, run, step, log line and output is recorded.
"""

from runyard.app.service import Runyard, connect, create_job
from runyard.core.records import Job, JobSummary, Notice, Run, StepRun
from runyard.core.retries import RetryPolicy
from runyard.core.states import JobState, RunState, StepState
from runyard.core.steps import step
from runyard.errors import RunyardError
from runyard.execution.context import get_params, get_pipeline_param, get_step_param
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
    "get_params",
    "get_pipeline_param",
    "get_step_param",
    "pipeline",
    "step",
]

__version__ = "0.1.0"
