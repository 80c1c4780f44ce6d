"""Data pipelines, their data jobs and datum records (pure): the spec, states and records.

A data pipeline reads files from data repos (its input), runs a transform on each datum,
and writes what the transform leaves in its output folder to an output repo named after the
pipeline. Its spec is close to a Pachyderm pipeline spec::

    {"pipeline": {"name": "edges"},
     "input": {"pfs": {"repo": "images", "branch": "master", "glob": "/*"}},
     "transform": {"cmd": ["sh"], "stdin": ["cp -r $RUNYARD_INPUT_DIR/* $RUNYARD_OUTPUT_DIR"]},
     "parallelism": 2, "datum_tries": 3, "datum_timeout": "30s", "job_timeout": "10m",
     "egress": {"URL": "file:///tmp/out"}}

A transform is either ``cmd`` (+ ``stdin`` lines fed to it: a shell script) or ``python``:
``file.py:function`` (the file relative to the spec's folder), called once per datum.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runyard import errors
from runyard.core import datarepos, datums

__all__ = [
    "ACTIVE",
    "DATA_JOB_TRANSITIONS",
    "DataJob",
    "DataJobState",
    "DatumRecord",
    "DatumState",
    "Pipeline",
    "PipelineSpec",
    "Transform",
    "check_data_job_transition",
    "parse_duration",
    "parse_spec",
    "plan_job_set",
]


class DataJobState(enum.StrEnum):
    CREATED = "CREATED"  # an input commit exists; no worker has taken the job yet
    STARTING = "STARTING"  # a worker took it and waits for its inputs (upstream jobs)
    RUNNING = "RUNNING"  # datums are being processed
    EGRESS = "EGRESS"  # every datum is done; the output is copied to the egress URL
    FINISHING = "FINISHING"  # the output commit is being written
    SUCCESS = "SUCCESS"  # every datum succeeded and the output commit is written
    FAILURE = "FAILURE"  # a datum failed after its tries, or an upstream job did not succeed
    KILLED = "KILLED"  # stopped by a user, or over its job_timeout

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({DataJobState.SUCCESS, DataJobState.FAILURE, DataJobState.KILLED})
ACTIVE = frozenset(
    {DataJobState.STARTING, DataJobState.RUNNING, DataJobState.EGRESS, DataJobState.FINISHING}
)

_J = DataJobState
# Back to CREATED: a restart, when the job's worker was lost (its RESTART count goes up).
DATA_JOB_TRANSITIONS: dict[DataJobState, frozenset[DataJobState]] = {
    _J.CREATED: frozenset({_J.STARTING, _J.FAILURE, _J.KILLED}),
    _J.STARTING: frozenset({_J.RUNNING, _J.FAILURE, _J.KILLED, _J.CREATED}),
    _J.RUNNING: frozenset({_J.EGRESS, _J.FINISHING, _J.FAILURE, _J.KILLED, _J.CREATED}),
    _J.EGRESS: frozenset({_J.FINISHING, _J.FAILURE, _J.KILLED, _J.CREATED}),
    _J.FINISHING: frozenset({_J.SUCCESS, _J.FAILURE, _J.KILLED, _J.CREATED}),
    _J.SUCCESS: frozenset(),
    _J.FAILURE: frozenset(),
    _J.KILLED: frozenset(),
}


def check_data_job_transition(old: DataJobState, new: DataJobState) -> None:
    """Raises ``TransitionError`` unless the table allows ``old -> new``."""
    if new not in DATA_JOB_TRANSITIONS[old]:
        raise errors.TransitionError(f"Data job cannot go from {old} to {new}")


class DatumState(enum.StrEnum):
    SUCCESS = "SUCCESS"  # processed in this job
    SKIPPED = "SKIPPED"  # processed successfully before: its output reused
    FAILURE = "FAILURE"  # failed every try; its logs are kept


@dataclasses.dataclass(frozen=True, slots=True)
class Transform:
    cmd: tuple[str, ...] = ()
    stdin: tuple[str, ...] = ()
    python: str | None = None  # /abs/file.py:function
    env: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.python is not None:
            out["python"] = self.python
        else:
            out["cmd"] = list(self.cmd)
            if self.stdin:
                out["stdin"] = list(self.stdin)
        if self.env:
            out["env"] = dict(self.env)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class PipelineSpec:
    name: str
    input: datums.Input
    transform: Transform
    description: str = ""
    parallelism: int = 1
    datum_tries: int = 3
    datum_timeout: float | None = None  # seconds
    job_timeout: float | None = None
    egress: str | None = None  # a folder or fsspec URL
    output_branch: str = "master"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pipeline": {"name": self.name},
            "description": self.description,
            "input": datums.input_json(self.input),
            "transform": self.transform.to_json(),
            "parallelism": self.parallelism,
            "datum_tries": self.datum_tries,
            "output_branch": self.output_branch,
        }
        if self.datum_timeout is not None:
            out["datum_timeout"] = f"{self.datum_timeout:g}s"
        if self.job_timeout is not None:
            out["job_timeout"] = f"{self.job_timeout:g}s"
        if self.egress is not None:
            out["egress"] = {"URL": self.egress}
        return out

    @property
    def input_repos(self) -> list[datums.PfsInput]:
        return datums.pfs_inputs(self.input)


_KNOWN = {
    "pipeline",
    "description",
    "input",
    "transform",
    "parallelism",
    "parallelism_spec",
    "datum_tries",
    "datum_timeout",
    "job_timeout",
    "egress",
    "output_branch",
    "salt",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any, field: str) -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"1.5m"``, ``"2h"``, ``"500ms"``; None for None."""
    if value is None:
        return None
    text = str(value)
    found = _DURATION.match(text)
    if found is None or isinstance(value, bool):
        raise errors.DefinitionError(
            f"{field} {value!r} is not a duration; give seconds or text like 30s, 5m, 1h"
        )
    number = (
        float(found.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[found.group(2)]
    )
    if number <= 0:
        raise errors.DefinitionError(f"{field} {value!r} must be more than 0")
    return number


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.DefinitionError(f"{field} {value!r} is not valid; give a whole number >= 1")
    return value


def parse_spec(raw: Any, *, base_dir: str | None = None) -> PipelineSpec:
    """A checked pipeline spec from its parsed JSON / YAML; ``base_dir`` resolves a python
    transform's file. Raises ``DefinitionError`` naming the field and the fix."""
    if not isinstance(raw, Mapping):
        raise errors.DefinitionError("A pipeline spec must be an object (JSON or YAML mapping)")
    unknown = set(raw) - _KNOWN
    if unknown:
        raise errors.DefinitionError(
            f"Pipeline spec has unknown field(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(_KNOWN))}"
        )
    head = raw.get("pipeline")
    if not isinstance(head, Mapping) or "name" not in head:
        raise errors.DefinitionError('Pipeline spec needs pipeline.name, e.g. {"name": "edges"}')
    name = datarepos.check_name(str(head["name"]), "Pipeline")
    if "input" not in raw:
        raise errors.DefinitionError(
            f"Pipeline {name!r} has no input; give input.pfs with repo and glob"
        )
    spec_input = datums.parse_input(raw["input"])
    if any(p.repo == name for p in datums.pfs_inputs(spec_input)):
        raise errors.DefinitionError(
            f"Pipeline {name!r} reads its own output repo {name!r}; read another repo"
        )
    transform = _transform(raw.get("transform"), name, base_dir)
    parallelism = raw.get("parallelism", 1)
    if "parallelism_spec" in raw:
        ps = raw["parallelism_spec"]
        parallelism = ps.get("constant", 1) if isinstance(ps, Mapping) else ps
    egress = raw.get("egress")
    if isinstance(egress, Mapping):
        egress = egress.get("URL") or egress.get("url")
    if egress is not None and (not isinstance(egress, str) or not egress):
        raise errors.DefinitionError(
            f"egress {raw.get('egress')!r} is not valid; give {{'URL': 'file:///dir'}}"
        )
    return PipelineSpec(
        name=name,
        input=spec_input,
        transform=transform,
        description=str(raw.get("description") or ""),
        parallelism=_positive_int(parallelism, "parallelism"),
        datum_tries=_positive_int(raw.get("datum_tries", 3), "datum_tries"),
        datum_timeout=parse_duration(raw.get("datum_timeout"), "datum_timeout"),
        job_timeout=parse_duration(raw.get("job_timeout"), "job_timeout"),
        egress=egress,
        output_branch=datarepos.check_name(str(raw.get("output_branch") or "master"), "Branch"),
    )


def _transform(raw: Any, name: str, base_dir: str | None) -> Transform:
    if not isinstance(raw, Mapping):
        raise errors.DefinitionError(
            f"Pipeline {name!r} has no transform; give transform.cmd (and stdin) or "
            "transform.python: file.py:function"
        )
    unknown = set(raw) - {"cmd", "stdin", "python", "env", "image"}
    if unknown:
        raise errors.DefinitionError(
            f"transform has unknown field(s) {', '.join(sorted(unknown))}; known: cmd, stdin, "
            "python, env"
        )
    env = raw.get("env") or {}
    if not isinstance(env, Mapping):
        raise errors.DefinitionError("transform.env must map names to values")
    pairs = tuple(sorted((str(k), str(v)) for k, v in env.items()))
    if "python" in raw:
        if "cmd" in raw or "stdin" in raw:
            raise errors.DefinitionError("transform gives python and cmd; give one of them")
        ref = str(raw["python"])
        file, colon, function = ref.rpartition(":")
        if not colon or not file or not function.isidentifier():
            raise errors.DefinitionError(
                f"transform.python {ref!r} is not valid; give file.py:function"
            )
        if base_dir is not None and not file.startswith("/"):
            file = f"{base_dir.rstrip('/')}/{file}"
        return Transform(python=f"{file}:{function}", env=pairs)
    cmd = raw.get("cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not all(isinstance(c, str) for c in cmd):
        raise errors.DefinitionError(
            f"transform.cmd {cmd!r} is not valid; give a list like ['sh'] or ['python3', 'tool.py']"
        )
    stdin = raw.get("stdin") or []
    if isinstance(stdin, str):
        stdin = [stdin]
    return Transform(cmd=tuple(cmd), stdin=tuple(str(s) for s in stdin), env=pairs)


@dataclasses.dataclass(frozen=True, slots=True)
class Pipeline:
    """A stored data pipeline: its spec, version (1 up, +1 per update) and datum salt."""

    spec: PipelineSpec
    version: int
    salt: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def name(self) -> str:
        return self.spec.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "salt": self.salt,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "spec": self.spec.to_json(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class DataJob:
    """One pipeline's job for one global ID (the id of the commit that caused it)."""

    pipeline: str
    id: str
    pipeline_version: int
    state: DataJobState
    created_at: dt.datetime
    position: int = 0  # its depth in the DAG of its job set: upstream jobs first
    input_commits: tuple[tuple[str, str], ...] = ()  # (repo, commit id), sorted
    output_commit: str | None = None
    reprocess: bool = False
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    reason: str | None = None
    restarts: int = 0
    data_processed: int = 0
    data_skipped: int = 0
    data_failed: int = 0
    data_total: int = 0
    download_bytes: int = 0
    upload_bytes: int = 0
    download_time: float = 0.0
    process_time: float = 0.0
    upload_time: float = 0.0
    worker: str | None = None
    stop_requested: bool = False

    @property
    def progress(self) -> str:
        return f"{self.data_processed} + {self.data_skipped} / {self.data_total}"

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        def at(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "job": {"pipeline": {"name": self.pipeline}, "id": self.id},
            "pipeline_version": self.pipeline_version,
            "state": f"JOB_{self.state}",
            "reason": self.reason,
            "input_commits": [{"repo": r, "id": c} for r, c in self.input_commits],
            "output_commit": (
                {"repo": self.pipeline, "id": self.output_commit} if self.output_commit else None
            ),
            "data_processed": self.data_processed,
            "data_skipped": self.data_skipped,
            "data_failed": self.data_failed,
            "data_total": self.data_total,
            "stats": {
                "download_time": f"{self.download_time:.6f}s",
                "process_time": f"{self.process_time:.6f}s",
                "upload_time": f"{self.upload_time:.6f}s",
                "download_bytes": self.download_bytes,
                "upload_bytes": self.upload_bytes,
            },
            "restart": self.restarts,
            "reprocess": self.reprocess,
            "created": at(self.created_at),
            "started": at(self.started_at),
            "finished": at(self.finished_at),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class DatumRecord:
    """What a job did with one datum."""

    job_id: str
    pipeline: str
    id: str
    state: DatumState
    files: tuple[str, ...]  # the input paths, as input:/path
    outputs: tuple[datarepos.FileEntry, ...] = ()
    tries: int = 0
    seconds: float = 0.0
    logs: str = ""
    error: str | None = None


def plan_job_set(
    everything: Mapping[str, Pipeline],
    direct: Sequence[Pipeline],
    *,
    global_id: str,
    heads: Callable[[str, str], str | None],
    now: dt.datetime,
    origin: tuple[str, str, str] | None = None,
    reprocess: bool = False,
) -> list[tuple[DataJob, Pipeline]]:
    """The jobs of a job set: one for each of ``direct`` and of every pipeline downstream
    of them (through their output repos), upstream first.

    A job's input commits are: ``origin``'s commit for the input reading ``origin``'s repo
    and branch; the job set's id for an input that is an upstream pipeline's output (that
    job writes it); else the branch's head (``heads(repo, branch)``; "" when it has none).
    ``reprocess`` applies to the ``direct`` jobs.
    """
    depth: dict[str, int] = {p.name: 0 for p in direct}
    changed = True
    while changed:
        changed = False
        for p in everything.values():
            ups = [
                depth[i.repo] + 1
                for i in p.spec.input_repos
                if i.repo in depth
                and i.repo in everything
                and i.branch == everything[i.repo].spec.output_branch
                and i.repo != p.name
            ]
            # A depth above the pipeline count would mean a cycle: stop growing there.
            if ups and depth.get(p.name, -1) < max(ups) <= len(everything):
                depth[p.name] = max(ups)
                changed = True
    direct_names = {p.name for p in direct}
    planned = []
    for name in sorted(depth, key=lambda n: (depth[n], n)):
        pipeline = everything[name]
        commits = []
        for i in pipeline.spec.input_repos:
            if origin is not None and (i.repo, i.branch) == origin[:2]:
                commit = origin[2]
            elif i.repo in depth and i.repo != name:
                commit = global_id
            else:
                commit = heads(i.repo, i.branch) or ""
            commits.append((i.name, commit))
        job = DataJob(
            pipeline=name,
            id=global_id,
            pipeline_version=pipeline.version,
            state=DataJobState.CREATED,
            created_at=now,
            position=depth[name],
            input_commits=tuple(commits),
            reprocess=reprocess and name in direct_names,
        )
        planned.append((job, pipeline))
    return planned
