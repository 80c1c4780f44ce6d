"""What the Data pages show, worked out from data records: the DAG of repos and pipelines,
a data job's datum progress, a folder's path as links. Pure: no store, no clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from runyard.core import datapipelines as dp
from runyard.core import datarepos
from runyard.ui import dag

__all__ = [
    "DatumProgress",
    "Graph",
    "crumbs",
    "datum_progress",
    "graph",
    "latest_by_pipeline",
    "pipeline_key",
    "repo_key",
]


def repo_key(name: str) -> str:
    return f"repo:{name}"


def pipeline_key(name: str) -> str:
    return f"pipeline:{name}"


@dataclasses.dataclass(frozen=True, slots=True)
class Graph:
    """The repos and pipelines laid out as one DAG: input repo -> pipeline -> its output
    repo. Node names are ``repo:NAME`` and ``pipeline:NAME`` (a pipeline and its output
    repo share a name)."""

    layout: dag.Layout
    kinds: dict[str, str]  # node -> "repo" or "pipeline"
    labels: dict[str, str]  # node -> the repo's or pipeline's name


def graph(repos: Sequence[datarepos.Repo], pipelines: Sequence[dp.Pipeline]) -> Graph:
    """The DAG of ``repos`` and ``pipelines``; an input naming a repo that is not among
    ``repos`` still gets its box."""
    order: list[str] = []
    upstream: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    labels: dict[str, str] = {}

    def add(key: str, kind: str, label: str) -> None:
        if key not in kinds:
            order.append(key)
            kinds[key], labels[key] = kind, label
            upstream[key] = []

    for repo in repos:
        add(repo_key(repo.name), "repo", repo.name)
    for pipeline in pipelines:
        node = pipeline_key(pipeline.name)
        add(node, "pipeline", pipeline.name)
        for source in dict.fromkeys(i.repo for i in pipeline.spec.input_repos):
            add(repo_key(source), "repo", source)
            upstream[node].append(repo_key(source))
        add(repo_key(pipeline.name), "repo", pipeline.name)
        upstream[repo_key(pipeline.name)].append(node)
    return Graph(dag.layout(order, upstream), kinds, labels)


@dataclasses.dataclass(frozen=True, slots=True)
class DatumProgress:
    """A data job's datums: ``done`` is processed + skipped (the PROGRESS column's
    numerator), the bar shows done in green and failed in red."""

    processed: int
    skipped: int
    failed: int
    total: int

    @property
    def done(self) -> int:
        return self.processed + self.skipped

    @property
    def succeeded_percent(self) -> float:
        return min(100.0 * self.done / self.total, 100.0) if self.total else 0.0

    @property
    def failed_percent(self) -> float:
        if not self.total:
            return 0.0
        return min(100.0 * self.failed / self.total, 100.0 - self.succeeded_percent)

    @property
    def text(self) -> str:
        return f"{self.processed} + {self.skipped} / {self.total}"


def datum_progress(job: dp.DataJob) -> DatumProgress:
    return DatumProgress(job.data_processed, job.data_skipped, job.data_failed, job.data_total)


def crumbs(path: str) -> list[tuple[str, str]]:
    """(name, folder path) of each folder on the way to ``path``, root first:
    ``/a/b`` -> ``[("/", "/"), ("a", "/a"), ("b", "/a/b")]``."""
    out = [("/", "/")]
    parts = [p for p in path.split("/") if p]
    for k in range(len(parts)):
        out.append((parts[k], "/" + "/".join(parts[: k + 1])))
    return out


def latest_by_pipeline(jobs: Sequence[dp.DataJob]) -> Mapping[str, dp.DataJob]:
    """The newest job of each pipeline among ``jobs`` (given newest first)."""
    found: dict[str, dp.DataJob] = {}
    for job in jobs:
        found.setdefault(job.pipeline, job)
    return found
