"""Loading a ``.orchest`` pipeline file as a runnable pipeline of file steps.

Each step's ``file_path`` is relative to the pipeline file and must stay inside its project;
each incoming connection is an input carrying all the parent step's outputs. Step uuids and
titles are other names for the steps, so a grid file (``<name>.parameters.json``) may key
steps by either.
"""

from __future__ import annotations

import json
import pathlib

from runyard import errors
from runyard.core import filesteps, orchest, pipelines
from runyard.execution import filesteps as file_steps
from runyard.execution import pipeline as pipeline_mod

__all__ = ["SUFFIX", "load"]

SUFFIX = ".orchest"

# Orchest names its Python kernel "python"; here that is ipykernel's "python3".
_KERNELS = {"python": "python3"}


def load(path: pathlib.Path) -> pipeline_mod.Pipeline:
    """The pipeline in the ``.orchest`` file at ``path`` (resolved).

    Raises ``LoadError`` for a file that cannot be read or is not JSON (naming the line),
    ``DefinitionError`` for a document that is not a valid pipeline or steps whose files are
    missing or outside the project (naming every one).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.LoadError(f"Cannot read pipeline file {str(path)!r}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.LoadError(
            f"{path.name}, line {exc.lineno}, column {exc.colno}: {exc.msg}; fix the JSON"
        ) from None
    spec = orchest.parse(document, source=path.name)
    root = file_steps.project_root(path)
    made: dict[str, filesteps.FileStep] = {}
    problems: list[str] = []
    for step in spec.steps:
        try:
            made[step.uuid] = file_steps.make_step(
                step.file_path,
                base=path.parent,
                root=root,
                kinds=tuple(filesteps.FileKind),
                name=step.node,
                params=step.parameters,
                kernel=_KERNELS.get(step.kernel or ""),
                description=step.title,
                owner=f"step {step.title!r}",
            )
        except errors.DefinitionError as exc:
            problems.append(exc.message)
    if problems:
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise errors.DefinitionError(f"{path.name}: {count}{'; '.join(problems)}")
    nodes: dict[str, pipelines.StepNode] = {}
    for step in spec.steps:
        bindings = tuple(
            pipelines.Binding(
                f"input_{i}",
                (pipelines.OutputRef(spec.step(parent).node, filesteps.ALL_OUTPUTS),),
            )
            for i, parent in enumerate(step.incoming)
        )
        definition = made[step.uuid]
        nodes[step.node] = pipelines.StepNode(step.node, definition, bindings, definition.params)
    keys = {s.uuid: s.node for s in spec.steps}
    keys.update({s.title: s.node for s in spec.steps if s.title not in keys})
    made_pipeline = pipeline_mod.Pipeline(
        name=spec.name,
        nodes=nodes,
        params=pipelines.param_space(f"Pipeline {spec.name!r}", spec.parameters),
        description=f"{path.name} ({len(nodes)} steps)",
        max_step_parallelism=spec.max_steps_parallelism,
        step_keys=keys,
    )
    made_pipeline.origin = f"{path}:"
    return made_pipeline
