"""Run, step run and job states, and the one table of allowed transitions.

A state's value is what the store keeps. Any transition not in the tables below is a bug:
``check_run_transition`` / ``check_step_transition`` raise ``TransitionError`` for it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from runyard import errors

__all__ = [
    "ACTIVE_RUN_STATES",
    "FINISHED_RUN_STATES",
    "FINISHED_STEP_STATES",
    "RUN_TRANSITIONS",
    "STEP_TRANSITIONS",
    "JobState",
    "NoticeState",
    "ProcessingState",
    "RunState",
    "StepState",
    "check_run_transition",
    "check_step_transition",
    "job_state",
    "processing_state",
]


class RunState(enum.StrEnum):
    CREATED = "CREATED"  # stored with its parameters; nothing has asked for it to run yet
    QUEUED = "QUEUED"  # waiting for a free slot and an executor to claim it
    STARTING = "STARTING"  # claimed: its process is being made
    RUNNING = "RUNNING"  # its steps are executing
    EGRESS = "EGRESS"  # steps are done; outputs are being copied out (data pipelines)
    FINISHING = "FINISHING"  # steps are done; final records are being written
    SUCCESS = "SUCCESS"  # every step succeeded
    FAILURE = "FAILURE"  # a step failed, or its process died; `reason` says which
    KILLED = "KILLED"  # stopped on purpose before it could finish


class StepState(enum.StrEnum):
    PENDING = "PENDING"  # waiting for its inputs
    RUNNING = "RUNNING"  # its code is executing
    SUCCESS = "SUCCESS"  # returned; its outputs are stored
    FAILURE = "FAILURE"  # raised, or its process died while it ran
    SKIPPED = "SKIPPED"  # its datum was already processed; earlier outputs are reused
    UPSTREAM_FAILED = "UPSTREAM_FAILED"  # an upstream step failed, so it never ran
    KILLED = "KILLED"  # stopped before finishing: on purpose, or its run's process died first


class JobState(enum.StrEnum):
    """A job's state; derived from its runs' states by ``job_state``, never stored."""

    CREATED = "CREATED"  # no run has been queued
    QUEUED = "QUEUED"  # runs are queued, none has started
    RUNNING = "RUNNING"  # some runs have started, not all have finished
    SUCCESS = "SUCCESS"  # every run succeeded
    FAILURE = "FAILURE"  # every run finished and at least one failed
    KILLED = "KILLED"  # every run finished, none failed, and at least one was killed


class NoticeState(enum.StrEnum):
    """Where a hook's notice stands; it moves PENDING -> DELIVERED or FAILED once."""

    PENDING = "PENDING"  # not delivered yet; tried again at its next attempt time
    DELIVERED = "DELIVERED"  # the hook returned (a webhook answered 2xx)
    FAILED = "FAILED"  # every attempt failed; the last error is kept


_R = RunState
RUN_TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    _R.CREATED: frozenset({_R.QUEUED, _R.KILLED}),
    _R.QUEUED: frozenset({_R.STARTING, _R.KILLED}),
    # Back to QUEUED: claimed ahead by a worker that stopped before it started the run.
    _R.STARTING: frozenset({_R.RUNNING, _R.QUEUED, _R.FAILURE, _R.KILLED}),
    _R.RUNNING: frozenset({_R.EGRESS, _R.FINISHING, _R.FAILURE, _R.KILLED}),
    _R.EGRESS: frozenset({_R.FINISHING, _R.FAILURE, _R.KILLED}),
    _R.FINISHING: frozenset({_R.SUCCESS, _R.FAILURE, _R.KILLED}),
    _R.SUCCESS: frozenset(),
    _R.FAILURE: frozenset(),
    _R.KILLED: frozenset(),
}

_S = StepState
STEP_TRANSITIONS: Mapping[StepState, frozenset[StepState]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.KILLED, _S.FAILURE}),
    _S.RUNNING: frozenset({_S.SUCCESS, _S.FAILURE, _S.KILLED}),
    _S.SUCCESS: frozenset(),
    _S.FAILURE: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.UPSTREAM_FAILED: frozenset(),
    _S.KILLED: frozenset(),
}

FINISHED_RUN_STATES = frozenset({_R.SUCCESS, _R.FAILURE, _R.KILLED})
ACTIVE_RUN_STATES = frozenset({_R.STARTING, _R.RUNNING, _R.EGRESS, _R.FINISHING})
FINISHED_STEP_STATES = frozenset(s for s, nxt in STEP_TRANSITIONS.items() if not nxt)


def check_run_transition(old: RunState, new: RunState) -> None:
    """Raise ``TransitionError`` unless a run may go from ``old`` to ``new``."""
    if new not in RUN_TRANSITIONS[old]:
        raise errors.TransitionError(f"A run cannot go from {old} to {new}")


def check_step_transition(old: StepState, new: StepState) -> None:
    """Raise ``TransitionError`` unless a step run may go from ``old`` to ``new``."""
    if new not in STEP_TRANSITIONS[old]:
        raise errors.TransitionError(f"A step run cannot go from {old} to {new}")


def job_state(counts: Mapping[RunState, int]) -> JobState:
    """Derive a job's state from how many of its runs are in each state."""
    total = sum(counts.values())
    finished = sum(counts.get(s, 0) for s in FINISHED_RUN_STATES)
    if total == 0 or counts.get(_R.CREATED, 0) == total:
        return JobState.CREATED
    if finished < total:
        started = total - counts.get(_R.CREATED, 0) - counts.get(_R.QUEUED, 0)
        return JobState.RUNNING if started or finished else JobState.QUEUED
    if counts.get(_R.FAILURE, 0):
        return JobState.FAILURE
    if counts.get(_R.KILLED, 0):
        return JobState.KILLED
    return JobState.SUCCESS


class ProcessingState(enum.StrEnum):
    """A job's state in the words of a single-processing-step job's life (seed 004),
    derived from whether it has a processing step and from its state."""

    CREATED = "created"  # no processing step chosen yet, or parameters still missing
    READY_FOR_PROCESSING = "ready_for_processing"  # configured: it can be started
    PENDING = "pending"  # started: its runs wait for a worker
    PROCESSING = "processing"  # a run has started
    COMPLETED = "completed"  # every run succeeded
    ERROR = "error"  # it ended and a run failed or was killed


def processing_state(*, has_processing: bool, state: JobState, runs: int) -> ProcessingState:
    if not has_processing or (state is JobState.CREATED and runs == 0):
        return ProcessingState.CREATED
    return {
        JobState.CREATED: ProcessingState.READY_FOR_PROCESSING,
        JobState.QUEUED: ProcessingState.PENDING,
        JobState.RUNNING: ProcessingState.PROCESSING,
        JobState.SUCCESS: ProcessingState.COMPLETED,
        JobState.FAILURE: ProcessingState.ERROR,
        JobState.KILLED: ProcessingState.ERROR,
    }[state]
