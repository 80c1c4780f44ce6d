"""Steps: units of user code with inputs, typed step parameters and named outputs.

A step function's positional parameters are its inputs (data from upstream steps); its
keyword-only parameters are its step parameters, typed by their annotations::

    @runyard.step(version="1.2.0")
    def transform(rows: list[int], *, factor: int = 2) -> list[int]:
        return [r * factor for r in rows]
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from runyard import errors
from runyard.core import params

__all__ = ["DEFAULT_OUTPUT", "InputSpec", "OutputSpec", "StepDefinition", "step"]

DEFAULT_OUTPUT = "result"

# Set by runyard.core.pipelines while a pipeline body is being traced: calling a step then
# records a node instead of running the function.
TraceHook = Callable[["StepDefinition", str, tuple[Any, ...], dict[str, Any]], Any]
_trace_hook: list[TraceHook] = []


@dataclasses.dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a step: data from an upstream step's output."""

    name: str
    annotation: Any = Any
    default: Any = params.MISSING

    @property
    def required(self) -> bool:
        return self.default is params.MISSING


@dataclasses.dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    annotation: Any = Any


class StepDefinition:
    """A step: a function plus its name, version, inputs, parameters and outputs."""

    kind = "python"
    # True for steps that take any number of inputs, positional or by keyword, each the
    # output(s) of an upstream step (file steps): their inputs are not declared.
    variadic = False

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        version: str | None = None,
        description: str | None = None,
        outputs: Sequence[str] | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.0,
        retry_backoff: float = 2.0,
        retry_jitter: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        self.fn = fn
        if retries < 0 or retry_delay < 0 or retry_backoff < 1 or not 0 <= retry_jitter <= 1:
            raise errors.DefinitionError(
                f"Step {name or fn.__name__!r}: retries={retries}, retry_delay={retry_delay}, "
                f"retry_backoff={retry_backoff}, retry_jitter={retry_jitter} are not valid; "
                "give retries >= 0, a delay >= 0, a backoff >= 1 and a jitter in [0, 1]"
            )
        self.retries = retries  # further attempts after a failure, each its own step run
        self.retry_delay = retry_delay  # seconds before the first retry
        self.retry_backoff = retry_backoff  # each later delay is this many times longer
        self.retry_jitter = retry_jitter  # each delay is stretched by up to this fraction
        self.retry_on = retry_on  # only these exceptions are retried
        if timeout is not None and timeout <= 0:
            raise errors.DefinitionError(
                f"Step {name or fn.__name__!r}: timeout={timeout} must be a positive number "
                "of seconds"
            )
        self.timeout = timeout  # seconds; past it the run's process group is killed
        self.name = name or fn.__name__
        if not self.name.isidentifier():
            raise errors.DefinitionError(
                f"Step name {self.name!r} is not valid; use letters, digits and underscores"
            )
        self.description = description if description is not None else inspect.getdoc(fn) or ""
        self.version = version or "sha-" + _code_fingerprint(fn)
        signature = inspect.signature(fn)
        hints = _annotations(fn)
        inputs: list[InputSpec] = []
        kwonly: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            annotation = hints.get(p.name, Any)
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                default = params.MISSING if p.default is p.empty else p.default
                inputs.append(InputSpec(p.name, annotation, default))
            elif p.kind is p.KEYWORD_ONLY:
                kwonly.append(p.replace(annotation=annotation))
            else:
                raise errors.DefinitionError(
                    f"Step {self.name!r} has *{p.name}; steps take named inputs and "
                    "keyword-only parameters only"
                )
        self.inputs: tuple[InputSpec, ...] = tuple(inputs)
        self.params = params.ParamSpace.from_parameters(f"Step {self.name!r}", kwonly)
        returns = hints.get("return", Any)
        if outputs is None:
            self.outputs: tuple[OutputSpec, ...] = (OutputSpec(DEFAULT_OUTPUT, returns),)
        elif isinstance(outputs, Mapping):
            self.outputs = tuple(OutputSpec(n, a) for n, a in outputs.items())
        else:
            self.outputs = tuple(OutputSpec(n) for n in outputs)
        names = [o.name for o in self.outputs]
        if not names or len(set(names)) != len(names):
            raise errors.DefinitionError(
                f"Step {self.name!r} outputs {names} must be one or more distinct names"
            )
        for output in names:
            if not output.isidentifier() or (len(names) > 1 and hasattr(tuple, output)):
                raise errors.DefinitionError(
                    f"Step {self.name!r} output name {output!r} is not allowed; use an "
                    "identifier that is not a tuple method (count, index)"
                )

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def alias(self, name: str) -> _Alias:
        """This step under another name, to use it more than once in one pipeline."""
        if not name.isidentifier():
            raise errors.DefinitionError(
                f"Alias {name!r} for step {self.name!r} is not valid; use letters, digits "
                "and underscores"
            )
        return _Alias(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _trace_hook:
            return _trace_hook[-1](self, self.name, args, kwargs)
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name} {self.version}>"


class _Alias:
    def __init__(self, step: StepDefinition, name: str) -> None:
        self.step = step
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not _trace_hook:
            raise errors.DefinitionError(
                f"Alias {self.name!r} of step {self.step.name!r} can only be called inside "
                "a @runyard.pipeline body"
            )
        return _trace_hook[-1](self.step, self.name, args, kwargs)


@overload
def step(fn: Callable[..., Any], /) -> StepDefinition: ...
@overload
def step(
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    outputs: Sequence[str] | Mapping[str, Any] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
    retry_backoff: float = 2.0,
    retry_jitter: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> Callable[[Callable[..., Any]], StepDefinition]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    outputs: Sequence[str] | Mapping[str, Any] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
    retry_backoff: float = 2.0,
    retry_jitter: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> StepDefinition | Callable[[Callable[..., Any]], StepDefinition]:
    """Make a function a step: ``@step`` or ``@step(name=..., version=..., outputs=[...],
    timeout=seconds)``. A step past its timeout fails its run (its process group is killed).

    Raises ``DefinitionError`` for a signature a step cannot have.
    """

    def wrap(f: Callable[..., Any]) -> StepDefinition:
        return StepDefinition(
            f,
            name=name,
            version=version,
            description=description,
            outputs=outputs,
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            retry_jitter=retry_jitter,
            retry_on=retry_on,
        )

    return wrap(fn) if fn is not None else wrap


def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:  # a forward reference that does not resolve
        raise errors.DefinitionError(
            f"Step {fn.__name__!r} has annotations that cannot be resolved ({exc}); "
            "import the names they use at module level"
        ) from exc


def _code_fingerprint(fn: Callable[..., Any]) -> str:
    """A hash of a function's code, signature and defaults that does not depend on where its
    file lives or on the process."""
    digest = hashlib.sha256()

    def feed(c: types.CodeType) -> None:
        digest.update(c.co_code)
        digest.update(
            repr((c.co_names, c.co_varnames, c.co_argcount, c.co_kwonlyargcount)).encode()
        )
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                feed(const)
            else:
                digest.update(_canonical(const).encode())

    feed(fn.__code__)
    defaults = (fn.__defaults__ or (), sorted((fn.__kwdefaults__ or {}).items()))
    digest.update(_canonical(defaults).encode())
    return digest.hexdigest()[:12]


def _canonical(value: Any) -> str:
    """A repr that is the same in every process: sets are sorted (their order follows the
    hash seed), and objects whose repr holds an address are named by their type only."""
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, tuple | list):
        return "(" + ",".join(_canonical(v) for v in value) + ")"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(sorted(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items()))
            + "}"
        )
    text = repr(value)
    return f"<{type(value).__qualname__}>" if " at 0x" in text else text
