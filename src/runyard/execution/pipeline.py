"""Runnable pipelines: the ``@runyard.pipeline`` decorator and ``Pipeline.run`` in process."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, overload

from runyard.core import pipelines, records, states
from runyard.execution import boundary, runner

__all__ = ["Pipeline", "PipelineResult", "StepResult", "pipeline"]


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
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Define a pipeline by calling steps in a function body; data flows through the calls.

    ``params`` is a dict of pipeline parameter defaults or a Pydantic model class. Raises
    ``DefinitionError`` when the body wires steps wrongly.
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        made = pipelines.trace(
            f,
            name=name,
            params=params,
            version=version,
            description=description,
            max_step_parallelism=max_step_parallelism,
            cls=Pipeline,
        )
        assert isinstance(made, Pipeline)
        return made

    return wrap(fn) if fn is not None else wrap
