"""runyard: a job orchestrator for data pipelines."""

from runyard.core.steps import step
from runyard.execution.context import get_params, get_pipeline_param, get_step_param
from runyard.execution.pipeline import Pipeline, PipelineResult, StepResult, pipeline

__all__ = [
    "Pipeline",
    "PipelineResult",
    "StepResult",
    "get_params",
    "get_pipeline_param",
    "get_step_param",
    "pipeline",
    "step",
]
