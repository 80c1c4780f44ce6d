"""Turning what executors report into store writes: states, step runs, logs, artifacts.

The recorder knows each run's current state and each step's, so every change it writes is a
checked transition, and one ``flush`` writes everything reported since the last in one
transaction.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from runyard.core import pipelines, records, states
from runyard.execution import boundary, capture
from runyard.storage import store as store_mod

__all__ = ["Recorder"]

_R = states.RunState
_S = states.StepState

RunCallback = Callable[[records.Run], None]
StepCallback = Callable[[str, records.StepRun], None]


def _time(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, dt.UTC)


def _problem_kind(problem: str) -> str:
    """The failure kind of a run whose process did not finish (see ``core.retries``)."""
    return "TimedOut" if "timed out" in problem else "RunProcessDied"


class _Tracked:
    __slots__ = (
        "failure",
        "failure_kinds",
        "follow_up",
        "job_id",
        "note",
        "pipeline",
        "run",
        "steps",
    )

    def __init__(
        self,
        run: records.Run,
        pipeline: pipelines.PipelineDefinition | None,
        follow_up: bool = True,
        note: str | None = None,
    ) -> None:
        self.run = run
        self.note = note  # written with its start: see records.Run.note
        self.follow_up = follow_up  # its job has a retry policy or hooks
        self.pipeline = pipeline
        self.job_id = run.job_id
        self.steps: dict[str, records.StepRun] = {}
        self.failure: str | None = None
        self.failure_kinds: tuple[str, ...] = ()  # the failing step's exception kinds


class Recorder:
    """A ``RunListener`` that records runs in a store.

    ``on_step`` is told of every step state change; ``on_run_finished`` of every run that
    reached a final state, after it was written.
    """

    def __init__(
        self,
        store: store_mod.Store,
        *,
        on_step: StepCallback | None = None,
        on_run_finished: RunCallback | None = None,
        flush_interval: float = 0.025,
    ) -> None:
        self.store = store
        self.on_step = on_step
        self.on_run_finished = on_run_finished
        self.flush_interval = flush_interval
        self._last_flush = 0.0
        self._runs: dict[str, _Tracked] = {}
        self._changes = store_mod.Changes()
        self._finished: list[records.Run] = []
        self._followed_up = False  # a run of a job with hooks or retries ended since `take`
        # Seconds a run here takes, start to end: a moving average of the runs that ran.
        self.typical_run: float | None = None

    @property
    def has_finished(self) -> bool:
        """Whether a run has ended since the last write."""
        return bool(self._finished)

    @property
    def due(self) -> bool:
        """Whether ``flush_interval`` has passed since the last write."""
        return time.monotonic() - self._last_flush >= self.flush_interval

    def track(
        self,
        run: records.Run,
        pipeline: pipelines.PipelineDefinition,
        *,
        follow_up: bool = True,
        note: str | None = None,
    ) -> None:
        """Follow a run of ``pipeline`` that has just been claimed (STARTING). Without
        ``follow_up`` (its job has no retry policy and no hooks) its end is written without
        looking for a retry or notices to write. ``note`` is recorded as it starts."""
        self._runs[run.id] = _Tracked(run, pipeline, follow_up, note)

    def end_unstarted(
        self,
        run: records.Run,
        state: states.RunState,
        reason: str,
        *,
        at: float,
        kinds: tuple[str, ...] = (),
        follow_up: bool = True,
    ) -> None:
        """Record that a claimed run ended without its process ever starting: FAILURE when
        its pipeline would not load, KILLED when it was stopped while claimed ahead."""
        tracked = _Tracked(run, None, follow_up)
        self._move_run(tracked, state, _time(at), reason=reason, kinds=kinds)
        self._end(tracked)

    # -- RunListener -------------------------------------------------------------------

    def run_started(self, run_id: str, *, worker: str, at: float) -> None:
        tracked = self._runs[run_id]
        when = _time(at)
        self._move_run(tracked, _R.RUNNING, when, worker=worker, note=tracked.note)
        assert tracked.pipeline is not None
        for node in tracked.pipeline:
            step = records.StepRun(run_id, node.name, 1, _S.PENDING)
            tracked.steps[node.name] = step
            self._changes.steps.append(store_mod.StepTransition(tracked.job_id, step, None, when))

    def step_started(self, run_id: str, step: str, at: float, attempt: int = 1) -> None:
        tracked = self._runs[run_id]
        when = _time(at)
        if attempt == 1:
            self._move_step(tracked, step, _S.RUNNING, when, started_at=when)
            return
        # A retry: a step run of its own; the failure before it no longer ends the run.
        if tracked.failure is not None and tracked.failure.startswith(f"step {step!r} failed"):
            tracked.failure = None
            tracked.failure_kinds = ()
        retry = records.StepRun(run_id, step, attempt, _S.RUNNING, started_at=when)
        tracked.steps[step] = retry
        self._changes.steps.append(store_mod.StepTransition(tracked.job_id, retry, None, when))
        if self.on_step is not None:
            self.on_step(run_id, retry)

    def output_stored(
        self,
        run_id: str,
        step: str,
        output: str,
        uri: str,
        size: int,
        serializer: str,
        at: float,
    ) -> None:
        self._changes.artifacts.append(
            records.Artifact(run_id, step, output, uri, size, serializer, _time(at))
        )

    def step_finished(
        self,
        run_id: str,
        step: str,
        state: states.StepState,
        at: float,
        error: boundary.UserError | None,
        attempt: int = 1,
    ) -> None:
        tracked = self._runs[run_id]
        when = _time(at)
        fields: dict[str, Any] = {"finished_at": when}
        if error is not None:
            fields.update(
                error_type=error.type, error_message=error.message, traceback=error.traceback
            )
            if tracked.failure is None:
                tracked.failure = f"step {step!r} failed: {error}"
                tracked.failure_kinds = error.kinds or (error.type,)
        if state is _S.UPSTREAM_FAILED:
            fields = {}
        self._move_step(tracked, step, state, when, **fields)

    def log_lines(self, run_id: str, lines: list[capture.Line]) -> None:
        self._changes.logs.extend(
            records.LogLine(run_id, step, stream, _time(at), text, level)
            for step, stream, at, level, text in lines
        )

    def run_finished(
        self, run_id: str, *, at: float, problem: str | None, killed: bool = False
    ) -> None:
        tracked = self._runs.pop(run_id)
        when = _time(at)
        if problem is None:
            self._move_run(tracked, _R.FINISHING, when)
            if tracked.failure is None:
                self._move_run(tracked, _R.SUCCESS, when)
            else:
                self._move_run(
                    tracked, _R.FAILURE, when, reason=tracked.failure, kinds=tracked.failure_kinds
                )
        else:
            where = [n for n, s in tracked.steps.items() if s.state is _S.RUNNING]
            named = problem.startswith("step ")  # it says which step already
            reason = problem + (f" during step {where[0]!r}" if where and not named else "")
            self._end_steps_of_dead_run(tracked, when, problem, killed)
            kinds: tuple[str, ...] = (_problem_kind(problem),)
            if tracked.failure is not None and not killed:
                reason = f"{tracked.failure}; then {reason}"
                kinds = tracked.failure_kinds
            self._move_run(
                tracked, _R.KILLED if killed else _R.FAILURE, when, reason=reason, kinds=kinds
            )
        started = tracked.run.started_at
        if started is not None:
            took = (when - started).total_seconds()
            typical = self.typical_run
            self.typical_run = took if typical is None else 0.8 * typical + 0.2 * took
        self._end(tracked)

    def flush(self, *, force: bool = False) -> None:
        """Write what was reported since the last write, in one transaction.

        Without ``force`` it writes at most every ``flush_interval`` seconds, so a busy
        executor makes a few transactions a second instead of one per message; and it
        leaves a batch in which a run ended to the worker, which writes it at once, with
        the claim of the run that takes the freed slot (``take``).
        """
        now = time.monotonic()
        if not force and (self._finished or now - self._last_flush < self.flush_interval):
            return
        changes, finished = self.take()
        if changes:
            self.store.apply(changes)
        self.written(finished)

    def take(self) -> tuple[store_mod.Changes, list[records.Run]]:
        """Hand over what was reported since the last write, for the caller to write in a
        transaction of its own: the changes, and the runs that ended, to pass to
        ``written`` once they are written."""
        self._last_flush = time.monotonic()
        changes, self._changes = self._changes, store_mod.Changes()
        finished, self._finished = self._finished, []
        return changes, finished

    def take_followed_up(self) -> bool:
        """Whether a run of a job with hooks or a retry policy ended since the last call:
        only such an end writes notices to deliver."""
        followed_up, self._followed_up = self._followed_up, False
        return followed_up

    def written(self, finished: list[records.Run]) -> None:
        """The batch ``take`` handed over is written: tell ``on_run_finished``."""
        if self.on_run_finished is not None:
            for run in finished:
                self.on_run_finished(run)

    # -- helpers -----------------------------------------------------------------------

    def _end(self, tracked: _Tracked) -> None:
        self._finished.append(tracked.run)
        self._followed_up = self._followed_up or tracked.follow_up

    def _move_run(
        self,
        tracked: _Tracked,
        new: states.RunState,
        when: dt.datetime,
        *,
        worker: str | None = None,
        reason: str | None = None,
        kinds: tuple[str, ...] = (),
        note: str | None = None,
    ) -> None:
        old = tracked.run.state
        states.check_run_transition(old, new)
        self._changes.runs.append(
            store_mod.RunTransition(
                tracked.run.id,
                tracked.job_id,
                old,
                new,
                when,
                worker,
                reason,
                kinds,
                tracked.follow_up,
                note,
            )
        )
        changes: dict[str, Any] = {"state": new}
        if note is not None:
            changes["note"] = note
        if worker is not None:
            changes["worker"] = worker
        if reason is not None:
            changes["reason"] = reason
        if new is _R.RUNNING:  # its process started (it may have waited, claimed ahead)
            changes["started_at"] = when
        if new in states.FINISHED_RUN_STATES:
            changes["finished_at"] = when
        tracked.run = tracked.run.evolve(**changes)

    def _move_step(
        self,
        tracked: _Tracked,
        name: str,
        new: states.StepState,
        when: dt.datetime,
        **fields: Any,
    ) -> None:
        step = tracked.steps[name]
        states.check_step_transition(step.state, new)
        updated = step.evolve(state=new, **fields)
        tracked.steps[name] = updated
        self._changes.steps.append(
            store_mod.StepTransition(tracked.job_id, updated, step.state, when)
        )
        if self.on_step is not None:
            self.on_step(tracked.run.id, updated)

    def _end_steps_of_dead_run(
        self, tracked: _Tracked, when: dt.datetime, problem: str, killed: bool
    ) -> None:
        """The run's process is gone: no step of it is left RUNNING or PENDING."""
        failed: set[str] = {n for n, s in tracked.steps.items() if s.state is _S.FAILURE}
        for node in tracked.pipeline or ():
            step = tracked.steps.get(node.name)
            if step is None:
                continue
            if step.state is _S.RUNNING:
                state = _S.KILLED if killed else _S.FAILURE
                self._move_step(
                    tracked,
                    node.name,
                    state,
                    when,
                    finished_at=when,
                    error_type=None if killed else _problem_kind(problem),
                    error_message=problem,
                )
                failed.add(node.name)
            elif step.state is _S.PENDING:
                if not killed and any(u in failed for u in node.upstream):
                    self._move_step(tracked, node.name, _S.UPSTREAM_FAILED, when)
                    failed.add(node.name)
                else:
                    self._move_step(
                        tracked, node.name, _S.KILLED, when, error_message=f"never ran: {problem}"
                    )
