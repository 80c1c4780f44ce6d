"""Executing one run: a pipeline's steps in dependency order, in the calling process.

The runner tells an ``Observer`` what happens (step started, output ready, step finished)
and keeps nothing else; what to record, and where, is the observer's business. Independent
steps run concurrently in threads when the pipeline allows more than one at a time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import random
import time
from collections.abc import Mapping
from typing import Any, Protocol

from runyard.core import filesteps, pipelines, records, states, steps
from runyard.execution import boundary, context
from runyard.execution import filesteps as file_runner

__all__ = ["Observer", "RunOutcome", "StepOutcome", "execute"]

_SUCCESS = states.StepState.SUCCESS
_SKIPPED = states.StepState.SKIPPED
_DONE = (_SUCCESS, _SKIPPED)  # what downstream steps may read from


class Observer(Protocol):
    """Receives what happens in a run, in order, from the thread that executed the step."""

    def step_started(self, step: str, at: float, *, attempt: int = 1) -> None: ...

    def output_ready(self, step: str, output: str, value: Any) -> None:
        """Called for each output before ``step_finished``; raising fails the step."""

    def step_finished(
        self,
        step: str,
        state: states.StepState,
        at: float,
        error: boundary.UserError | None,
        *,
        attempt: int = 1,
    ) -> None: ...


@dataclasses.dataclass(slots=True)
class StepOutcome:
    state: states.StepState
    outputs: dict[str, Any]
    error: boundary.UserError | None = None
    exception: BaseException | None = None


@dataclasses.dataclass(slots=True)
class RunOutcome:
    steps: dict[str, StepOutcome]

    @property
    def failed_step(self) -> str | None:
        for name, outcome in self.steps.items():
            if outcome.state is states.StepState.FAILURE:
                return name
        return None

    @property
    def success(self) -> bool:
        return all(o.state in _DONE for o in self.steps.values())


class _OutputError(Exception):
    """A step returned values that do not fit its declared outputs."""


def execute(
    pipeline: pipelines.PipelineDefinition,
    params: records.RunParams,
    observer: Observer,
    *,
    run_id: str | None = None,
    job_id: str | None = None,
    keep_outputs: bool = True,
    reused: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunOutcome:
    """Run every step of ``pipeline`` with ``params`` (JSON form); user errors never escape.

    Returns each step's state and, with ``keep_outputs``, its outputs. A failed step's
    downstream steps end UPSTREAM_FAILED and other branches go on. The steps in ``reused``
    (step -> output -> value, from an earlier run) do not run: they end SKIPPED and their
    downstream steps read those values.
    """
    typed_pipeline = {k: pipeline.params.to_python(k, v) for k, v in params["pipeline"].items()}
    runner = _Runner(pipeline, params, typed_pipeline, observer, run_id, job_id, keep_outputs)
    runner.reused = reused or {}
    if pipeline.max_step_parallelism > 1 and len(pipeline.nodes) > 1:
        runner.run_concurrently(pipeline.max_step_parallelism)
        # Threads finish in any order; report in pipeline order, as the sequential path does.
        runner.outcomes = {n: runner.outcomes[n] for n in pipeline.nodes if n in runner.outcomes}
    else:
        runner.run_in_order()
    return RunOutcome(runner.outcomes)


class _Runner:
    def __init__(
        self,
        pipeline: pipelines.PipelineDefinition,
        params: records.RunParams,
        typed_pipeline: Mapping[str, Any],
        observer: Observer,
        run_id: str | None,
        job_id: str | None,
        keep_outputs: bool,
    ) -> None:
        self.pipeline = pipeline
        self.params = params
        self.typed_pipeline = typed_pipeline
        self.observer = observer
        self.run_id = run_id
        self.job_id = job_id
        self.keep_outputs = keep_outputs
        self.outcomes: dict[str, StepOutcome] = {}
        self.values: dict[tuple[str, str], Any] = {}
        self.produced: dict[str, list[str]] = {}  # each done step's output names, in order
        self.readers = {n: len(pipeline.downstream(n)) for n in pipeline.nodes}
        self.reused: Mapping[str, Mapping[str, Any]] = {}

    def run_in_order(self) -> None:
        for node in self.pipeline:
            if node.name in self.reused:
                self._reuse(node)
            elif not self._blocked(node):
                self._run_step(node)

    def run_concurrently(self, width: int) -> None:
        waiting = {n.name: set(n.upstream) for n in self.pipeline}
        with concurrent.futures.ThreadPoolExecutor(width, "runyard-step") as pool:
            running: dict[concurrent.futures.Future[None], str] = {}

            def submit_ready() -> None:
                for name in [n for n, deps in waiting.items() if not deps]:
                    del waiting[name]
                    node = self.pipeline.nodes[name]
                    if node.name in self.reused:
                        self._reuse(node)
                        finished(name)
                    elif self._blocked(node):
                        finished(name)
                    else:
                        ctx = context._current.get()
                        running[pool.submit(self._run_in_thread, node, ctx)] = name

            def finished(name: str) -> None:
                for down in self.pipeline.downstream(name):
                    waiting[down].discard(name)

            submit_ready()
            while running:
                done, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    future.result()
                    finished(running.pop(future))
                submit_ready()

    def _run_in_thread(self, node: pipelines.StepNode, ctx: context.StepContext | None) -> None:
        context._current.set(ctx)
        self._run_step(node)

    def _blocked(self, node: pipelines.StepNode) -> bool:
        failed = [u for u in node.upstream if self.outcomes[u].state not in _DONE]
        if not failed:
            return False
        self.outcomes[node.name] = StepOutcome(states.StepState.UPSTREAM_FAILED, {})
        self.observer.step_finished(node.name, states.StepState.UPSTREAM_FAILED, time.time(), None)
        return True

    def _reuse(self, node: pipelines.StepNode) -> None:
        outputs = dict(self.reused[node.name])
        for output, value in outputs.items():
            self.values[(node.name, output)] = value
        self.produced[node.name] = list(outputs)
        self.outcomes[node.name] = StepOutcome(_SKIPPED, outputs if self.keep_outputs else {})
        self.observer.step_finished(node.name, _SKIPPED, time.time(), None)

    def _run_step(self, node: pipelines.StepNode) -> None:
        name = node.name
        step = node.step
        attempt = 1
        try:
            while True:
                outputs, exc = self._attempt(node, attempt)
                if exc is None:
                    break
                error = boundary.describe(exc)
                self.observer.step_finished(
                    name, states.StepState.FAILURE, time.time(), error, attempt=attempt
                )
                if attempt > step.retries or not isinstance(exc, step.retry_on):
                    self.outcomes[name] = StepOutcome(states.StepState.FAILURE, {}, error, exc)
                    return
                time.sleep(_retry_delay(step, attempt))
                attempt += 1
        finally:
            self._release_inputs(node)
        for output, value in outputs.items():
            self.values[(name, output)] = value
        self.produced[name] = list(outputs)
        self.outcomes[name] = StepOutcome(_SUCCESS, outputs if self.keep_outputs else {}, None)
        self.observer.step_finished(name, _SUCCESS, time.time(), None, attempt=attempt)

    def _attempt(
        self, node: pipelines.StepNode, attempt: int
    ) -> tuple[dict[str, Any], BaseException | None]:
        """One attempt of a step: its outputs, or what it raised."""
        name = node.name
        self.observer.step_started(name, time.time(), attempt=attempt)
        token = None
        try:
            raw = self.params["steps"].get(name, {})
            step_params = {k: node.params.to_python(k, v) for k, v in raw.items()}
            ctx = context.StepContext(
                name,
                self.pipeline.name,
                self.typed_pipeline,
                step_params,
                self.run_id,
                self.job_id,
                attempt,
            )
            token = context._current.set(ctx)
            if isinstance(node.step, filesteps.FileStep):
                made = file_runner.run(
                    node.step,
                    ctx=ctx,
                    inputs=self._file_inputs(node),
                    keep=getattr(self.observer, "keep_file", None),
                )
                outputs = _file_outputs(node, node.step, made)
            else:
                args: dict[str, Any] = {}
                for b in node.bindings:
                    if b.many:
                        args[b.input] = [self._value(name, r) for r in b.refs]
                    else:
                        args[b.input] = self._value(name, b.refs[0])
                result = node.step.fn(**args, **step_params)
                outputs = _split_outputs(node, result)
            for output, value in outputs.items():
                self.observer.output_ready(name, output, value)
            return outputs, None
        except (Exception, SystemExit) as exc:
            return {}, exc
        finally:
            if token is not None:
                context._current.reset(token)

    def _value(self, step: str, ref: pipelines.OutputRef) -> Any:
        """The value ``ref`` names; a reference to all outputs of a file step is its one
        output."""
        if ref.output != filesteps.ALL_OUTPUTS:
            return self.values[(ref.node, ref.output)]
        made = self.produced.get(ref.node, [])
        if len(made) != 1:
            raise _OutputError(
                f"Step {step!r} reads the output of step {ref.node!r}, which made "
                f"{len(made)} outputs ({', '.join(made) or 'none'}); a Python step reads one "
                f"value: make {ref.node!r} output one, or declare its outputs "
                "(runyard.script(..., outputs=[...])) and pass the one to use"
            )
        return self.values[(ref.node, made[0])]

    def _file_inputs(self, node: pipelines.StepNode) -> list[tuple[str, Any]]:
        """A file step's inputs as (output name, value), in the order of its bindings."""
        pairs: list[tuple[str, Any]] = []
        for b in node.bindings:
            for r in b.refs:
                if r.output == filesteps.ALL_OUTPUTS:
                    pairs += [(o, self.values[(r.node, o)]) for o in self.produced.get(r.node, [])]
                else:
                    pairs.append((r.output, self.values[(r.node, r.output)]))
        return pairs

    def _release_inputs(self, node: pipelines.StepNode) -> None:
        """Forget an upstream value once its last reader is done (when not keeping outputs)."""
        if self.keep_outputs:
            return
        for up in node.upstream:
            self.readers[up] -= 1
            if self.readers[up] == 0:
                for output in self.produced.get(up, ()):
                    self.values.pop((up, output), None)


def _split_outputs(node: pipelines.StepNode, result: Any) -> dict[str, Any]:
    names = node.step.output_names
    if len(names) == 1:
        return {names[0]: result}
    if isinstance(result, Mapping) and set(result) == set(names):
        return {n: result[n] for n in names}
    if isinstance(result, tuple | list) and len(result) == len(names):
        return dict(zip(names, result, strict=True))
    raise _OutputError(
        f"Step {node.name!r} declares outputs {', '.join(names)} but returned "
        f"{type(result).__name__} {_short(result)}; return a tuple of {len(names)} values or a "
        "dict with those keys"
    )


def _file_outputs(
    node: pipelines.StepNode, step: filesteps.FileStep, made: dict[str, Any]
) -> dict[str, Any]:
    missing = [n for n in step.declared_outputs if n not in made]
    if missing:
        calls = ", ".join(f"runyard.output(value, name={n!r})" for n in missing)
        raise _OutputError(
            f"Step {node.name!r} ({step.path.name}) declares outputs "
            f"{', '.join(step.declared_outputs)} but did not make {', '.join(missing)}; "
            f"call {calls} in it"
        )
    return made


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _retry_delay(step: steps.StepDefinition, attempt: int) -> float:
    """Seconds to wait before retrying after failed ``attempt``: exponential, with jitter."""
    base = step.retry_delay * step.retry_backoff ** (attempt - 1)
    return base * (1 + step.retry_jitter * random.random())
