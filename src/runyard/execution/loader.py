"""Loading a pipeline from a reference like ``path/to/etl.py:etl`` (or just ``etl.py``)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pathlib
import site
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from runyard import errors
from runyard.core import pipelines, steps

__all__ = [
    "LoadedPipeline",
    "definitions_in",
    "function_reference",
    "load_function",
    "load_pipeline",
    "plain_path",
    "reference_of",
    "use_source",
]


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedPipeline:
    pipeline: pipelines.PipelineDefinition
    path: pathlib.Path  # the resolved file it came from
    attribute: str

    @property
    def reference(self) -> str:
        return f"{self.path}:{self.attribute}"


def load_pipeline(reference: str) -> LoadedPipeline:
    """Import ``FILE.py[:NAME]`` and return the pipeline it defines.

    Without ``:NAME`` the file must define exactly one pipeline. Raises ``LoadError`` for a
    missing file, a file that fails to import (naming the line), or no such pipeline.
    """
    file_part, _, attribute = reference.partition(":")
    path = pathlib.Path(file_part).expanduser()
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise errors.LoadError(
            f"No pipeline file {file_part!r}{hint}; give FILE.py:PIPELINE, e.g. "
            "examples/etl/etl.py:etl"
        )
    if path.suffix == ".orchest":
        return _load_orchest(path.resolve(), attribute)
    if path.suffix != ".py":
        raise errors.LoadError(
            f"Pipeline file {file_part!r} is neither a Python file nor a .orchest file; "
            "give FILE.py:PIPELINE or FILE.orchest"
        )
    path = path.resolve()
    in_use = _in_use[0]
    if in_use is not None and not path.is_relative_to(in_use):
        # A file of another snapshot's copy, or one loaded where it is.
        use_source(next((r for r in _set_aside if r and path.is_relative_to(r)), None))
    module = _import(path)
    found = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, pipelines.PipelineDefinition)
    }
    chosen = vars(module).get(attribute) if attribute else None
    if isinstance(chosen, steps.StepDefinition):
        # One step alone: a one-step pipeline named and versioned as the step.
        from runyard.execution import pipeline as pipeline_mod

        alone = pipelines.single(chosen, cls=pipeline_mod.Pipeline)
        alone.origin = f"{path}:{attribute}"
        return LoadedPipeline(alone, path, attribute)
    if not attribute:
        if len(found) != 1:
            listed = ", ".join(sorted(found)) or "none"
            raise errors.LoadError(
                f"{file_part} defines {len(found)} pipelines ({listed}); name one: {file_part}:NAME"
            )
        attribute = next(iter(found))
    if attribute not in found:
        other = getattr(module, attribute, None)
        if other is not None:
            raise errors.LoadError(
                f"{file_part}:{attribute} is a {type(other).__name__}, not a pipeline; "
                "decorate a function with @runyard.pipeline"
            )
        raise errors.LoadError(
            f"No pipeline {attribute!r} in {file_part}{errors.did_you_mean(attribute, found)}"
        )
    return LoadedPipeline(found[attribute], path, attribute)


def _load_orchest(path: pathlib.Path, attribute: str) -> LoadedPipeline:
    from runyard.execution import orchestfile  # it imports this module's importers

    made = orchestfile.load(path)
    if attribute and attribute != made.name:
        raise errors.LoadError(
            f"{path.name} holds pipeline {made.name!r}, not {attribute!r}; give {path.name} alone"
        )
    return LoadedPipeline(made, path, "")


def definitions_in(path: str | pathlib.Path, *, fresh: bool = False) -> list[tuple[str, Any]]:
    """The pipelines and steps a pipeline file defines at its top level, as (attribute,
    object), in definition order: what the registry records of it. The file is imported
    once; ``fresh`` imports it again, as it is now. A ``.orchest`` file defines its one
    pipeline (under its name). Raises ``LoadError``."""
    resolved = pathlib.Path(path).resolve()
    if resolved.suffix == ".orchest":
        loaded = _load_orchest(resolved, "")
        return [(loaded.pipeline.name, loaded.pipeline)]
    if fresh:
        for name, module in list(sys.modules.items()):
            if getattr(module, "__file__", None) == str(resolved):
                del sys.modules[name]
    module = _import(resolved)
    return [
        (name, value)
        for name, value in vars(module).items()
        if isinstance(value, pipelines.PipelineDefinition | steps.StepDefinition)
        and not name.startswith("_")
    ]


def reference_of(pipeline: pipelines.PipelineDefinition) -> str:
    """Where a pipeline defined in Python can be loaded from again: ``file.py:attribute``.

    Returns ``""`` when it cannot be found (defined in an interactive session).
    """
    if pipeline.origin:
        return pipeline.origin
    source = pipeline.source
    module = sys.modules.get(getattr(source, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return ""
    for name, value in vars(module).items():
        if value is pipeline:
            return f"{pathlib.Path(file).resolve()}:{name}"
    return ""


def function_reference(fn: Callable[..., Any]) -> str:
    """Where a module-level function can be loaded from again by another process:
    ``/abs/path/file.py:name``.

    Raises ``DefinitionError`` for a lambda, a nested function, or one defined
    interactively, which no other process can find.
    """
    name = getattr(fn, "__qualname__", "")
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if not name.isidentifier() or module is None or file is None:
        raise errors.DefinitionError(
            f"Hook {getattr(fn, '__name__', fn)!r} cannot be found again by an engine; "
            "define it with def at the top level of a .py file (not a lambda, a nested or an "
            "interactive function), or give its reference as 'file.py:function'"
        )
    return f"{pathlib.Path(file).resolve()}:{name}"


def load_function(reference: str) -> Callable[..., Any]:
    """The function named by ``FILE.py:NAME`` or ``package.module:NAME``.

    Raises ``LoadError`` when the file or module cannot be imported or has no such
    callable.
    """
    where, _, name = reference.rpartition(":")
    if where.endswith(".py"):
        path = pathlib.Path(where).expanduser()
        if not path.is_file():
            raise errors.LoadError(f"No file {where!r} for function {reference!r}")
        module = _import(path.resolve())
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise errors.LoadError(
                f"Cannot import module {where!r} for function {reference!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    found: Any = module
    for part in name.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise errors.LoadError(f"{reference!r}: no function {name!r} in {where}")
    return found  # type: ignore[no-any-return]


# Module namespaces, one per source: the copy of one snapshot (its folder), or None for
# files loaded where they are. See ``use_source``.
_in_use: list[str | None] = [None]
_folders: dict[str, str | None] = {}  # folders the loader put on sys.path -> their source
_set_aside: dict[str | None, tuple[dict[str, types.ModuleType], list[str]]] = {}


def plain_path() -> list[str]:
    """``sys.path`` without the folders the loader put on it: what another interpreter
    should start with to import what this one can, before loading any pipeline."""
    return [p for p in sys.path if p not in _folders]


def use_source(root: str | None) -> None:
    """Make ``root`` (the copy of one snapshot; None: files loaded where they are) the
    source whose modules ``import`` finds.

    An engine loads pipelines of many jobs, whose snapshots may hold different versions of
    the same modules (``helpers.py``, say). The modules imported from the folders the
    loader put on ``sys.path`` for the source in use before are set aside (out of
    ``sys.modules``, their folders off ``sys.path``) and those of ``root`` are put back, so
    a pipeline loaded now, and the runs forked after, import their own snapshot's modules.
    Installed packages and runyard itself are never touched. Cheap: nothing is imported.
    """
    old = _in_use[0]
    if old == root:
        return
    folders = [f for f, owner in _folders.items() if owner == old and f in sys.path]
    prefixes = tuple(os.path.join(f, "") for f in folders)
    aside: dict[str, types.ModuleType] = {}
    if prefixes:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(prefixes) and not file.startswith(_installed()):
                aside[name] = module
                del sys.modules[name]
        sys.path[:] = [p for p in sys.path if p not in folders]
    _set_aside[old] = (aside, folders)
    modules, back = _set_aside.pop(root, ({}, []))
    sys.modules.update(modules)
    sys.path[:0] = back
    _in_use[0] = root


def _installed() -> tuple[str, ...]:
    """Where installed code lives: never set aside, even under a project folder (a project
    holding its own virtual environment)."""
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    places.add(str(pathlib.Path(errors.__file__).parent))  # runyard, installed editable
    return tuple(os.path.join(p, "") for p in places)


# What a pipeline file's ``import runyard`` uses, loaded lazily by the package.
_RUNTIME = ("runyard.execution.pipeline", "runyard.execution.context", "runyard.core.steps")


def _import(path: pathlib.Path) -> types.ModuleType:
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(path):
            return module
    name = (
        path.stem
        if path.stem.isidentifier() and path.stem not in sys.modules
        else (f"runyard_user_{abs(hash(str(path)))}")
    )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise errors.LoadError(f"Cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        # The runtime first: once the folder is first on sys.path, a file in it (say
        # concurrent.py) would shadow a module runyard imports later (concurrent.futures).
        for runtime in _RUNTIME:
            importlib.import_module(runtime)
        sys.path.insert(0, folder)  # so the file can import its neighbours
        source = _in_use[0]
        _folders[folder] = source if source and path.is_relative_to(source) else None
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except errors.RunyardError as exc:
        del sys.modules[name]
        raise errors.LoadError(f"{path.name}: {exc.message}") from exc
    except SyntaxError as exc:
        del sys.modules[name]
        raise errors.LoadError(
            f"{path.name}, line {exc.lineno}: syntax error: {exc.msg}; fix the file"
        ) from exc
    except Exception as exc:
        del sys.modules[name]
        line = _line_in(exc, path)
        raise errors.LoadError(
            f"{path.name}{line}: importing it raised {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _line_in(exc: BaseException, path: pathlib.Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f", line {frames[-1].lineno}" if frames else ""
