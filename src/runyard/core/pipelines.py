"""Pipelines: DAGs of steps joined by data dependencies, built by tracing a function body.

Inside a pipeline body a step call does not run the step: it records a node and returns a
reference to its output, and passing that reference into another step call is a data
dependency. Nodes are recorded in call order, which is always a topological order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from runyard import errors
from runyard.core import hooks, params, retries, steps

if TYPE_CHECKING:
    import pydantic

__all__ = [
    "Binding",
    "OutputRef",
    "PipelineDefinition",
    "StepNode",
    "StepOutputs",
    "single",
    "trace",
]

PipelineParams = Mapping[str, Any] | type["pydantic.BaseModel"] | None


@dataclasses.dataclass(frozen=True, slots=True)
class OutputRef:
    """A reference, made while tracing, to one output of one node."""

    node: str
    output: str
    annotation: Any = Any


class StepOutputs(tuple[OutputRef, ...]):
    """The outputs of a step with several; unpack them or pick one by name (``.train``)."""

    node: str

    def __getattr__(self, name: str) -> OutputRef:
        for ref in self:
            if ref.output == name:
                return ref
        outputs = [r.output for r in self]
        raise errors.DefinitionError(
            f"Step {self.node!r} has no output {name!r}{errors.did_you_mean(name, outputs)}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    """What feeds one input of a node: one output, or a list of them (fan-in)."""

    input: str
    refs: tuple[OutputRef, ...]
    many: bool = False


@dataclasses.dataclass(frozen=True)
class StepNode:
    """One use of a step in a pipeline, under its own (possibly aliased) name."""

    name: str
    step: steps.StepDefinition
    bindings: tuple[Binding, ...]
    params: params.ParamSpace

    @property
    def upstream(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for b in self.bindings:
            for r in b.refs:
                seen[r.node] = None
        return tuple(seen)


class PipelineDefinition:
    """A named, versioned DAG of step nodes with typed pipeline parameters."""

    def __init__(
        self,
        *,
        name: str,
        nodes: Mapping[str, StepNode],
        params: params.ParamSpace,
        version: str | None = None,
        description: str = "",
        max_step_parallelism: int = 1,
        source: Callable[..., Any] | None = None,
        retry: retries.RetryPolicy | None = None,
        hooks: tuple[hooks.Hook, ...] = (),
        max_retained_runs: int | None = None,
        step_keys: Mapping[str, str] | None = None,
    ) -> None:
        if not nodes:
            raise errors.DefinitionError(
                f"Pipeline {name!r} has no steps; call at least one step in its body"
            )
        if max_step_parallelism < 1:
            raise errors.DefinitionError(
                f"Pipeline {name!r}: max_step_parallelism={max_step_parallelism} must be >= 1"
            )
        self.name = name
        self.nodes: Mapping[str, StepNode] = dict(nodes)
        self.params = params
        self.description = description
        if max_retained_runs is not None and max_retained_runs < 1:
            raise errors.DefinitionError(
                f"Pipeline {name!r}: max_retained_runs={max_retained_runs} must be >= 1"
            )
        self.max_step_parallelism = max_step_parallelism
        self.source = source
        # Defaults for the jobs of this pipeline; a job may override each.
        self.retry = retry  # failed runs are tried again by this policy
        self.hooks = hooks  # told of run failures, run successes and job completions
        self.max_retained_runs = max_retained_runs  # older finished runs are deleted
        # "file.py:attribute" it can be loaded from again, when its source alone does not
        # say (a step loaded to run alone); set by the loader.
        self.origin = ""
        # Other names a grid may give a step by (a pipeline file's step uuids and titles).
        self.step_keys: Mapping[str, str] = dict(step_keys or {})
        self.version = version or "sha-" + self._fingerprint()
        downstream: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in self.nodes.values():
            for up in node.upstream:
                downstream[up].append(node.name)
        self._downstream = {k: tuple(v) for k, v in downstream.items()}

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.nodes.values())

    def __repr__(self) -> str:
        return f"<pipeline {self.name} {self.version}: {len(self.nodes)} steps>"

    @property
    def step_names(self) -> list[str]:
        return list(self.nodes)

    def node(self, name: str) -> StepNode:
        """The node called ``name``; raises ``ParameterError`` naming the known ones."""
        try:
            return self.nodes[name]
        except KeyError:
            raise errors.ParameterError(
                f"Pipeline {self.name!r} has no step {name!r}"
                f"{errors.did_you_mean(name, self.nodes)}"
            ) from None

    def downstream(self, name: str) -> tuple[str, ...]:
        return self._downstream[name]

    def _fingerprint(self) -> str:
        shape = [
            [
                n.name,
                n.step.name,
                n.step.version,
                n.params.defaults(),
                [[b.input, [[r.node, r.output] for r in b.refs], b.many] for b in n.bindings],
            ]
            for n in self.nodes.values()
        ]
        blob = json.dumps([self.name, self.params.defaults(), shape], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def param_space(owner: str, spec: PipelineParams) -> params.ParamSpace:
    """Pipeline parameters from ``{"name": default}`` or a Pydantic model class."""
    if spec is None:
        return params.ParamSpace(owner, [])
    pydantic = sys.modules.get("pydantic")  # a model class means it was imported
    if pydantic is not None and isinstance(spec, type) and issubclass(spec, pydantic.BaseModel):
        return params.ParamSpace.from_model(owner, spec)
    if isinstance(spec, Mapping):
        return params.ParamSpace.from_mapping(owner, spec)
    raise errors.DefinitionError(
        f"{owner}: params must be a dict of defaults or a Pydantic model class; got {spec!r}"
    )


def trace(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    params: PipelineParams = None,
    version: str | None = None,
    description: str | None = None,
    max_step_parallelism: int = 1,
    cls: type[PipelineDefinition] = PipelineDefinition,
    retry: retries.RetryPolicy | None = None,
    hooks: tuple[hooks.Hook, ...] = (),
    max_retained_runs: int | None = None,
) -> PipelineDefinition:
    """Run ``fn``'s body with step calls recorded, and build a pipeline of ``cls`` from it.

    Raises ``DefinitionError`` for an input that is not wired, a duplicate step name,
    output and input types that cannot match, or an unknown parameter.
    """
    pipeline_name = name or fn.__name__
    tracer = _Tracer(pipeline_name)
    steps._trace_hook.append(tracer.record)
    try:
        fn()
    finally:
        steps._trace_hook.pop()
    return cls(
        name=pipeline_name,
        nodes=tracer.nodes,
        params=param_space(f"Pipeline {pipeline_name!r}", params),
        version=version,
        description=description if description is not None else (fn.__doc__ or "").strip(),
        max_step_parallelism=max_step_parallelism,
        source=fn,
        retry=retry,
        hooks=hooks,
        max_retained_runs=max_retained_runs,
    )


def single(
    step: steps.StepDefinition, *, cls: type[PipelineDefinition] = PipelineDefinition
) -> PipelineDefinition:
    """A pipeline of ``step`` alone, with its name, version and description: what a job of
    one processing step runs. Its parameters are the step's (under the step's name).

    Raises ``DefinitionError`` when the step needs inputs from upstream steps.
    """
    needed = [i.name for i in step.inputs if i.required]
    if needed:
        raise errors.DefinitionError(
            f"Step {step.name!r} needs input(s) {', '.join(needed)} from upstream steps, so "
            "it cannot run alone; run a pipeline that feeds it"
        )
    return trace(
        lambda: step(),
        name=step.name,
        version=step.version,
        description=step.description,
        cls=cls,
    )


class _Tracer:
    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.nodes: dict[str, StepNode] = {}

    def record(
        self,
        step: steps.StepDefinition,
        node_name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> OutputRef | StepOutputs:
        where = f"in pipeline {self.pipeline!r}"
        if node_name in self.nodes:
            other = self.nodes[node_name].step
            if other is step:
                raise errors.DefinitionError(
                    f"Step {node_name!r} is used twice {where}; give the second use its own "
                    f"name: {step.name}.alias('{node_name}_2')(...)"
                )
            raise errors.DefinitionError(
                f"Two different steps are named {node_name!r} {where}; rename one with "
                "@runyard.step(name=...) or call it through .alias('other_name')"
            )
        if step.variadic:
            return self._record_variadic(step, node_name, args, kwargs, where)
        if len(args) > len(step.inputs):
            raise errors.DefinitionError(
                f"Step {node_name!r} takes {len(step.inputs)} input(s) "
                f"({', '.join(i.name for i in step.inputs) or 'none'}) but got {len(args)} {where}"
            )
        given: dict[str, Any] = dict(zip((i.name for i in step.inputs), args, strict=False))
        constants: dict[str, Any] = {}
        input_names = {i.name for i in step.inputs}
        for key, value in kwargs.items():
            if key in input_names:
                if key in given:
                    raise errors.DefinitionError(
                        f"Step {node_name!r} input {key!r} is given twice {where}"
                    )
                given[key] = value
            elif key in step.params:
                constants[key] = step.params.to_json(key, value)
            else:
                known = [*input_names, *step.params.names()]
                raise errors.DefinitionError(
                    f"Step {node_name!r} has no input or parameter {key!r} {where}"
                    f"{errors.did_you_mean(key, known)}"
                )
        bindings = []
        for spec in step.inputs:
            if spec.name not in given:
                if spec.required:
                    raise errors.DefinitionError(
                        f"Step {node_name!r} input {spec.name!r} is not wired {where}; pass it "
                        f"the output of an upstream step, e.g. {node_name}(upstream_step())"
                    )
                continue
            binding = self._bind(node_name, spec, given[spec.name], where)
            for ref in binding.refs:
                _check_types(node_name, spec, ref, binding.many, where)
            bindings.append(binding)
        node_params = step.params
        if constants:
            specs = [
                dataclasses.replace(s, default=step.params.to_python(s.name, constants[s.name]))
                if s.name in constants
                else s
                for s in step.params
            ]
            node_params = params.ParamSpace(f"Step {node_name!r}", specs)
        elif node_name != step.name:
            node_params = params.ParamSpace(f"Step {node_name!r}", list(step.params))
        self.nodes[node_name] = StepNode(node_name, step, tuple(bindings), node_params)
        refs = [OutputRef(node_name, o.name, o.annotation) for o in step.outputs]
        if len(refs) == 1:
            return refs[0]
        multi = StepOutputs(refs)
        multi.node = node_name
        return multi

    def _record_variadic(
        self,
        step: steps.StepDefinition,
        node_name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        where: str,
    ) -> OutputRef | StepOutputs:
        """A node of a step taking any inputs (a file step): each positional argument, then
        each keyword argument that is not a parameter, is an input, in that order."""
        given: list[tuple[str, Any]] = [(f"input_{i}", v) for i, v in enumerate(args)]
        constants: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in step.params:
                constants[key] = step.params.to_json(key, value)
            else:
                given.append((key, value))
        bindings = []
        for input_name, value in given:
            refs: tuple[OutputRef, ...]
            if isinstance(value, OutputRef):
                refs = (value,)
            elif (
                isinstance(value, list | tuple)
                and value
                and all(isinstance(v, OutputRef) for v in value)
            ):
                refs = tuple(value)
            else:
                known = ", ".join(step.params.names()) or "none"
                raise errors.DefinitionError(
                    f"Step {node_name!r} got {input_name}={value!r} {where}; its inputs take "
                    f"outputs of upstream steps, and its parameters ({known}) are given by name"
                )
            bindings.append(Binding(input_name, refs, many=len(refs) > 1))
        specs = [
            dataclasses.replace(s, default=step.params.to_python(s.name, constants[s.name]))
            if s.name in constants
            else s
            for s in step.params
        ]
        node_params = params.ParamSpace(f"Step {node_name!r}", specs)
        self.nodes[node_name] = StepNode(node_name, step, tuple(bindings), node_params)
        refs_out = [OutputRef(node_name, o.name, o.annotation) for o in step.outputs]
        if len(refs_out) == 1:
            return refs_out[0]
        multi = StepOutputs(refs_out)
        multi.node = node_name
        return multi

    def _bind(self, node: str, spec: steps.InputSpec, value: Any, where: str) -> Binding:
        if isinstance(value, StepOutputs):
            raise errors.DefinitionError(
                f"Step {node!r} input {spec.name!r} got all outputs of step {value.node!r} "
                f"({', '.join(r.output for r in value)}) {where}; pick one, e.g. "
                f"{value.node}(...).{value[0].output}, or unpack them"
            )
        if isinstance(value, OutputRef):
            return Binding(spec.name, (value,))
        if (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, OutputRef) for v in value)
        ):
            return Binding(spec.name, tuple(value), many=True)
        raise errors.DefinitionError(
            f"Step {node!r} input {spec.name!r} got the plain value {value!r} {where}; inputs "
            "take outputs of upstream steps. For a constant, make it a keyword-only step "
            "parameter and pass it by name"
        )


def _check_types(node: str, spec: steps.InputSpec, ref: OutputRef, many: bool, where: str) -> None:
    wanted = spec.annotation
    if many:
        args = typing.get_args(wanted)
        origin = typing.get_origin(wanted)
        wanted = args[0] if origin in (list, tuple) and args else Any
    if not _compatible(ref.annotation, wanted):
        raise errors.DefinitionError(
            f"Step {node!r} input {spec.name!r} expects {_type_name(wanted)} but step "
            f"{ref.node!r} output {ref.output!r} is annotated {_type_name(ref.annotation)} "
            f"{where}; change one of the annotations so they match"
        )


def _compatible(produced: Any, wanted: Any) -> bool:
    """False only when two annotations certainly cannot match."""
    if produced is Any or wanted is Any or produced is object or wanted is object:
        return True
    p_origin = typing.get_origin(produced) or produced
    w_origin = typing.get_origin(wanted) or wanted
    if w_origin in (typing.Union, types.UnionType):
        return any(_compatible(produced, a) for a in typing.get_args(wanted))
    if p_origin in (typing.Union, types.UnionType):
        return all(_compatible(a, wanted) for a in typing.get_args(produced))
    if not isinstance(p_origin, type) or not isinstance(w_origin, type):
        return True
    if w_origin is float and p_origin is int:
        return True
    try:
        return issubclass(p_origin, w_origin)
    except TypeError:
        return True


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
