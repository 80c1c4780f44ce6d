"""Typed parameters: one ``ParamSpace`` per pipeline and one per step.

Values cross the store as JSON (``to_json``) and come back typed inside a run
(``to_python``); Pydantic does both, so a parameter's annotation and any ``Field``
constraints on it are enforced the same way at job creation and at run time.

Pydantic is imported when a value first needs it: a plain value of a plain type (an ``int``
for an ``int``, a ``str`` for a ``str``) is already what Pydantic would make of it, and a
run's process whose parameters are all such values never loads Pydantic, a third of the
memory it would otherwise start with.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from runyard import errors

if TYPE_CHECKING:
    import pydantic

__all__ = ["MISSING", "ParamSpace", "ParamSpec"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# Types whose values, of exactly that type, Pydantic returns unchanged (in JSON and back).
_PLAIN_JSON = (int, str, bool)
_PLAIN_PYTHON = (int, str, bool, float, list, dict)


@dataclasses.dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter: its name, its type and its default (``MISSING`` when required)."""

    name: str
    annotation: Any = Any
    default: Any = MISSING
    field: pydantic.fields.FieldInfo | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def type_name(self) -> str:
        ann = self.annotation
        return ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")


class ParamSpace:
    """An ordered set of typed parameters, owned by a pipeline or by one step.

    ``owner`` names the owner in messages, e.g. ``"Step 'transform'"``.
    """

    def __init__(self, owner: str, specs: list[ParamSpec]) -> None:
        self.owner = owner
        self._specs = {s.name: s for s in specs}
        self._adapters: dict[str, pydantic.TypeAdapter[Any]] = {}

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, owner: str, params: Mapping[str, Any]) -> ParamSpace:
        """Parameters from ``{"name": default}``; each type is the default's type."""
        specs = []
        for name, default in params.items():
            annotation: Any = Any if default is None else type(default)
            if isinstance(default, bool):
                annotation = bool
            specs.append(ParamSpec(name, annotation, default))
        return cls(owner, specs)

    @classmethod
    def from_model(cls, owner: str, model: type[pydantic.BaseModel]) -> ParamSpace:
        """Parameters from a Pydantic model's fields, with their constraints."""
        specs = []
        for name, info in model.model_fields.items():
            default = MISSING if info.is_required() else info.get_default(call_default_factory=True)
            specs.append(ParamSpec(name, info.annotation, default, info))
        return cls(owner, specs)

    @classmethod
    def from_parameters(cls, owner: str, parameters: list[inspect.Parameter]) -> ParamSpace:
        """Parameters from a function's keyword-only parameters."""
        specs = []
        for p in parameters:
            annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
            default = MISSING if p.default is inspect.Parameter.empty else p.default
            specs.append(ParamSpec(p.name, annotation, default))
        return cls(owner, specs)

    # -- reading -----------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ParamSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> ParamSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise errors.ParameterError(
                f"{self.owner} has no parameter {name!r}{errors.did_you_mean(name, self._specs)}"
            ) from None

    def defaults(self) -> dict[str, Any]:
        """JSON form of every default; required parameters are left out."""
        return {s.name: self.to_json(s.name, s.default) for s in self if not s.required}

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema of an object holding these parameters, with their defaults."""
        props = {
            s.name: self._adapter(s.name).json_schema()
            | ({} if s.required else {"default": self.to_json(s.name, s.default)})
            for s in self
        }
        required = [s.name for s in self if s.required]
        return {"type": "object", "properties": props, "required": required}

    # -- validation --------------------------------------------------------------------

    def _plain(self, name: str, value: Any, types: tuple[type, ...]) -> bool:
        """Whether ``value`` is, exactly, of parameter ``name``'s own plain type (with no
        constraints): Pydantic would return it as it is."""
        spec = self._specs.get(name)
        if spec is None or spec.field is not None:
            return False
        kind = type(value)
        return kind is spec.annotation and kind in types

    def _adapter(self, name: str) -> pydantic.TypeAdapter[Any]:
        adapter = self._adapters.get(name)
        if adapter is None:
            import pydantic

            spec = self.spec(name)
            annotation = spec.annotation
            if spec.field is not None and spec.field.metadata:
                annotation = Annotated[annotation, *spec.field.metadata]
            adapter = self._adapters[name] = pydantic.TypeAdapter(annotation)
        return adapter

    def to_json(self, name: str, value: Any) -> Any:
        """Validate ``value`` for parameter ``name`` and return its JSON form.

        Raises ``ParameterError`` naming the parameter, the value and the expected type.
        """
        if self._plain(name, value, _PLAIN_JSON) or (
            self._plain(name, value, (float,)) and math.isfinite(value)
        ):
            return value
        import pydantic
        import pydantic_core

        adapter = self._adapter(name)
        try:
            try:
                text = json.dumps(value)
            except (TypeError, ValueError):  # a Python object (a datetime, a model): lax
                typed = adapter.validate_python(value)
            else:  # JSON values are held to JSON's types: no true for 1, no "yes" for True
                typed = adapter.validate_json(text, strict=True)
            return adapter.dump_python(typed, mode="json")
        except pydantic.ValidationError as exc:
            raise self._value_error(name, value, exc) from None
        except pydantic_core.PydanticSerializationError as exc:
            raise errors.ParameterError(
                f"{self.owner} parameter {name!r}: value {value!r} cannot be stored as JSON "
                f"({exc}); use a JSON-compatible value"
            ) from None

    def to_python(self, name: str, value: Any) -> Any:
        """Turn a stored JSON value back into the parameter's type (inside a run)."""
        if self._plain(name, value, _PLAIN_PYTHON):
            return value
        import pydantic

        try:
            return self._adapter(name).validate_python(value)
        except pydantic.ValidationError as exc:
            raise self._value_error(name, value, exc) from None

    def parse_text(self, name: str, text: str) -> Any:
        """Read a value typed on a command line: JSON where it parses, else the text itself.

        Returns the JSON form, validated. A ``str`` parameter always takes the text as is.
        """
        spec = self.spec(name)
        if spec.annotation is not str:
            try:
                return self.to_json(name, json.loads(text))
            except (json.JSONDecodeError, errors.ParameterError):
                pass
        return self.to_json(name, text)

    def resolve(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``values`` (already JSON), every required one present."""
        out = self.defaults()
        for name, value in values.items():
            self.spec(name)
            out[name] = value
        missing = [s.name for s in self if s.required and s.name not in out]
        if missing:
            raise errors.ParameterError(
                f"{self.owner} needs a value for required parameter(s) {', '.join(missing)}; "
                "give them in the grid or with -p/-s"
            )
        return out

    def _value_error(
        self, name: str, value: Any, exc: pydantic.ValidationError
    ) -> errors.ParameterError:
        detail = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        return errors.ParameterError(
            f"{self.owner} parameter {name!r} expects {self.spec(name).type_name}; "
            f"got {value!r} ({detail}); give a value of that type"
        )
