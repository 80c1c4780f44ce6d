"""Options that `job create` and `run` share for what happens around runs: retries of failed
runs, hooks, and how many finished runs to keep."""

from __future__ import annotations

from typing import Annotated

import typer

from runyard import errors
from runyard.core import hooks, pipelines, retries
from runyard.execution import pipeline as pipeline_mod

__all__ = [
    "KeepRunsOpt",
    "OnCompleteOpt",
    "OnFailureOpt",
    "OnSuccessOpt",
    "RetriesOpt",
    "RetryBackoffOpt",
    "RetryDelayOpt",
    "RetryJitterOpt",
    "RetryOnOpt",
    "hook_list",
    "retry_policy",
]

_PANEL = "Retries, hooks and retention"

RetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--retries",
        min=0,
        rich_help_panel=_PANEL,
        help="Try a failed run again this many times, as a new run that reuses the outputs "
        "of the steps that succeeded; default: the pipeline's (0).",
    ),
]
RetryDelayOpt = Annotated[
    float | None,
    typer.Option(
        "--retry-delay",
        min=0.0,
        metavar="SECONDS",
        rich_help_panel=_PANEL,
        help="Wait before the first retry of a run; default 0.",
    ),
]
RetryBackoffOpt = Annotated[
    float | None,
    typer.Option(
        "--retry-backoff",
        min=1.0,
        rich_help_panel=_PANEL,
        help="Each further retry waits this many times longer; default 2.",
    ),
]
RetryJitterOpt = Annotated[
    float | None,
    typer.Option(
        "--retry-jitter",
        min=0.0,
        max=1.0,
        rich_help_panel=_PANEL,
        help="Stretch each wait by a random part of up to this fraction; default 0.1.",
    ),
]
RetryOnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--retry-on",
        metavar="EXCEPTION",
        rich_help_panel=_PANEL,
        help="Retry only failures of this kind (an exception name such as ConnectionError, "
        "or TimedOut, RunProcessDied, WorkerLost); repeatable. Default: every failure.",
    ),
]
OnFailureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--on-failure",
        metavar="URL|FILE.py:FUNCTION",
        rich_help_panel=_PANEL,
        help="Tell this webhook or function of every run that fails for good; repeatable.",
    ),
]
OnSuccessOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--on-success",
        metavar="URL|FILE.py:FUNCTION",
        rich_help_panel=_PANEL,
        help="Tell this webhook or function of every run that succeeds; repeatable.",
    ),
]
OnCompleteOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--on-complete",
        metavar="URL|FILE.py:FUNCTION",
        rich_help_panel=_PANEL,
        help="Tell this webhook or function when the job (for a schedule: each tick's "
        "runs) has finished; repeatable.",
    ),
]
KeepRunsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-retained-runs",
        min=1,
        metavar="N",
        rich_help_panel=_PANEL,
        help="Keep the newest N finished runs; older ones are deleted with their outputs.",
    ),
]


def retry_policy(
    pipeline: pipelines.PipelineDefinition,
    *,
    retries_: int | None,
    delay: float | None,
    backoff: float | None,
    jitter: float | None,
    on: list[str] | None,
) -> retries.RetryPolicy | None:
    """The job's retry policy: the pipeline's, with what the options give replacing its
    parts; None (the pipeline's own) when no option is given. Raises ``UsageError``."""
    if retries_ is None and delay is None and backoff is None and jitter is None and not on:
        return None
    base = pipeline.retry or retries.RetryPolicy()
    if not (base.retries if retries_ is None else retries_):
        raise errors.UsageError(
            "--retry-delay, --retry-backoff, --retry-jitter and --retry-on shape retries, "
            f"but pipeline {pipeline.name!r} has none; add --retries N"
        )
    return retries.RetryPolicy(
        base.retries if retries_ is None else retries_,
        base.delay if delay is None else delay,
        base.backoff if backoff is None else backoff,
        base.jitter if jitter is None else jitter,
        tuple(on) if on else base.on,
    )


def hook_list(
    *, on_failure: list[str] | None, on_success: list[str] | None, on_complete: list[str] | None
) -> tuple[hooks.Hook, ...]:
    """Hooks from the options (added to the pipeline's); raises ``UsageError``."""
    return pipeline_mod.make_hooks(
        on_run_failure=on_failure, on_run_success=on_success, on_job_complete=on_complete
    )
