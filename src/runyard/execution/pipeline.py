"""Runnable pipelines: the ``@runyard.pipeline`` decorator and ``Pipeline.run`` in process."""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

from runyard import errors
from runyard.core import hooks, pipelines, records, states
from runyard.core import retries as _retries
from runyard.execution import boundary, loader, runner

__all__ = ["HookTargets", "Pipeline", "PipelineResult", "StepResult", "make_hooks", "pipeline"]

# A hook target (a URL, a "file.py:function" reference or a module-level function), or several.
HookTarget = str | Callable[..., Any]
HookTargets = HookTarget | Iterable[HookTarget] | None


@dataclasses.dataclass(frozen=True, slots=True)
class StepResult:
    """One step of an in-process run: its state, outputs, timing and failure."""

    name: str
    state: states.StepState
    outputs: Mapping[str, Any]
    duration: float | None = None
    error: boundary.UserError | None = None
    exception: BaseException | None = None

    @property
    def output(self) -> Any:
        """The step's only output (or its ``result`` output)."""
        if len(self.outputs) == 1:
            return next(iter(self.outputs.values()))
        raise KeyError(
            f"Step {self.name!r} has outputs {', '.join(self.outputs) or 'none'}; "
            "read one with .outputs[name]"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PipelineResult:
    """The outcome of ``Pipeline.run``: every step's result, in pipeline order."""

    pipeline: str
    params: records.RunParams
    steps: Mapping[str, StepResult]

    @property
    def success(self) -> bool:
        return all(s.state is states.StepState.SUCCESS for s in self.steps.values())

    @property
    def state(self) -> states.RunState:
        return states.RunState.SUCCESS if self.success else states.RunState.FAILURE

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps.values() if s.state is states.StepState.FAILURE), None)

    def __getitem__(self, step: str) -> StepResult:
        return self.steps[step]

    def output(self, step: str, name: str | None = None) -> Any:
        result = self.steps[step]
        return result.outputs[name] if name is not None else result.output


class Pipeline(pipelines.PipelineDefinition):
    """A pipeline definition that can also run itself in the calling process."""

    @classmethod
    def from_file(cls, reference: str | pathlib.Path) -> pipelines.PipelineDefinition:
        """The pipeline in a ``.orchest`` file, or ``FILE.py[:NAME]``'s.

        Raises ``LoadError`` or ``DefinitionError`` naming what is wrong with the file.
        """
        return loader.load_pipeline(str(reference)).pipeline

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        step_params: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        raise_on_error: bool = False,
    ) -> PipelineResult:
        """Execute once, here, with no store: each step in dependency order.

        ``params`` override pipeline parameter defaults, ``step_params`` step parameter
        defaults (``{"step": {"key": value}}``). Raises ``ParameterError`` for an unknown
        name or a value of the wrong type, before any step runs. A failing step is reported
        in the result; with ``raise_on_error`` its exception is raised instead.
        """
        assignment = self.assign(params or {}, step_params or {})
        observer = _Timer()
        outcome = runner.execute(self, assignment, observer)
        results = {
            name: StepResult(
                name, o.state, o.outputs, observer.durations.get(name), o.error, o.exception
            )
            for name, o in outcome.steps.items()
        }
        result = PipelineResult(self.name, assignment, results)
        failed = result.failed_step
        if raise_on_error and failed is not None and failed.exception is not None:
            raise failed.exception
        return result

    def assign(
        self,
        params: Mapping[str, Any],
        step_params: Mapping[str, Mapping[str, Any]],
    ) -> records.RunParams:
        """A full parameter assignment (JSON form) from overrides of the defaults.

        Raises ``ParameterError`` naming an unknown step or parameter or a bad value.
        """
        pipe = self.params.resolve({k: self.params.to_json(k, v) for k, v in params.items()})
        for name in step_params:
            self.node(name)
        steps = {
            node.name: node.params.resolve(
                {k: node.params.to_json(k, v) for k, v in step_params.get(node.name, {}).items()}
            )
            for node in self
        }
        return {"pipeline": pipe, "steps": steps}


class _Timer:
    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.durations: dict[str, float] = {}

    def step_started(self, step: str, at: float, *, attempt: int = 1) -> None:
        self.started[step] = time.perf_counter()

    def output_ready(self, step: str, output: str, value: Any) -> None:
        pass

    def step_finished(
        self,
        step: str,
        state: states.StepState,
        at: float,
        error: boundary.UserError | None,
        *,
        attempt: int = 1,
    ) -> None:
        if step in self.started:
            self.durations[step] = time.perf_counter() - self.started[step]


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(
    *,
    name: str | None = None,
    params: pipelines.PipelineParams = None,
    version: str | None = None,
    description: str | None = None,
    max_step_parallelism: int = 1,
    retries: int = 0,
    retry_delay: float = 0.0,
    retry_backoff: float = 2.0,
    retry_jitter: float = 0.1,
    retry_on: Iterable[type[BaseException] | str] = (),
    on_run_failure: HookTargets = None,
    on_run_success: HookTargets = None,
    on_job_complete: HookTargets = None,
    max_retained_runs: int | None = None,
) -> Callable[[Callable[..., Any]], Pipeline]: ...
def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    params: pipelines.PipelineParams = None,
    version: str | None = None,
    description: str | None = None,
    max_step_parallelism: int = 1,
    retries: int = 0,
    retry_delay: float = 0.0,
    retry_backoff: float = 2.0,
    retry_jitter: float = 0.1,
    retry_on: Iterable[type[BaseException] | str] = (),
    on_run_failure: HookTargets = None,
    on_run_success: HookTargets = None,
    on_job_complete: HookTargets = None,
    max_retained_runs: int | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Define a pipeline by calling steps in a function body; data flows through the calls.

    ``params`` is a dict of pipeline parameter defaults or a Pydantic model class. The rest
    are defaults for its jobs: ``retries`` (with ``retry_delay`` seconds, ``retry_backoff``,
    ``retry_jitter`` and ``retry_on``, exception classes or names) tries a failed run again
    as a new run that reuses its succeeded steps' outputs; ``on_run_failure``,
    ``on_run_success`` and ``on_job_complete`` are hooks (URLs, functions or
    ``file.py:function`` references); ``max_retained_runs`` deletes older finished runs.
    Raises ``DefinitionError`` when the body wires steps wrongly or an option is not valid.
    """
    try:
        policy = (
            _retries.RetryPolicy.build(
                retries, delay=retry_delay, backoff=retry_backoff, jitter=retry_jitter, on=retry_on
            )
            if retries
            else None
        )
        hook_list = make_hooks(
            on_run_failure=on_run_failure,
            on_run_success=on_run_success,
            on_job_complete=on_job_complete,
        )
    except errors.UsageError as exc:
        raise errors.DefinitionError(
            f"Pipeline {name or getattr(fn, '__name__', '')!r}: {exc}"
        ) from exc

    def wrap(f: Callable[..., Any]) -> Pipeline:
        made = pipelines.trace(
            f,
            name=name,
            params=params,
            version=version,
            description=description,
            max_step_parallelism=max_step_parallelism,
            cls=Pipeline,
            retry=policy,
            hooks=hook_list,
            max_retained_runs=max_retained_runs,
        )
        assert isinstance(made, Pipeline)
        return made

    return wrap(fn) if fn is not None else wrap


def make_hooks(
    *,
    on_run_failure: HookTargets = None,
    on_run_success: HookTargets = None,
    on_job_complete: HookTargets = None,
) -> tuple[hooks.Hook, ...]:
    """Hooks from targets: URLs, ``file.py:function`` references, or module-level functions
    (stored by reference, so any engine can call them). Raises ``UsageError`` or
    ``DefinitionError`` for a target that is neither."""
    made: list[hooks.Hook] = []
    for event, targets in (
        (hooks.HookEvent.RUN_FAILURE, on_run_failure),
        (hooks.HookEvent.RUN_SUCCESS, on_run_success),
        (hooks.HookEvent.JOB_COMPLETE, on_job_complete),
    ):
        if targets is None:
            continue
        if isinstance(targets, str) or callable(targets):
            targets = [targets]
        for target in targets:
            if not isinstance(target, str):
                target = loader.function_reference(target)
            hook = hooks.Hook(event, target)
            if not hook.is_webhook:
                # Fail now, not when a run ends: the function must load, and a file is
                # kept by its absolute path so that an engine anywhere finds it.
                loader.load_function(target)
                where, _, name = target.rpartition(":")
                if where.endswith(".py"):
                    hook = hooks.Hook(event, f"{pathlib.Path(where).resolve()}:{name}")
            made.append(hook)
    return tuple(made)
