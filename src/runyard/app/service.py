"""The one facade the edges call: jobs created, executed, listed, inspected and waited on.

``Runyard`` composes the metadata store, the artifact store and an executor. The CLI, the
Python API (and later the REST API and UI) call it; none of them touch SQL or processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, BinaryIO

from runyard import errors
from runyard.app import data as data_mod
from runyard.app import gridfile, projects, settings
from runyard.core import grid as grid_mod
from runyard.core import (
    hooks,
    pipelines,
    records,
    registry,
    retries,
    schedules,
    snapshots,
    states,
    tokens,
)
from runyard.core import projects as projects_mod
from runyard.execution import environment, loader
from runyard.storage import artifacts as artifacts_mod
from runyard.storage import snapshots as snapshots_store
from runyard.storage import store as store_mod
from runyard.worker import engine, notifier, recorder, workdirs

__all__ = ["Runyard", "connect", "create_job"]

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclasses.dataclass(frozen=True, slots=True)
class _Planned:
    """A job checked and ready to store, with its runs (or, scheduled, its run template)."""

    job: records.Job
    runs: list[records.Run]
    trigger: schedules.Trigger | None
    first_fire: dt.datetime | None
    tag_limits: dict[str, int]
    inputs: tuple[str, ...] = ()  # WorkData ids the job takes as inputs


class Runyard:
    """runyard on one metadata store and one artifact store."""

    def __init__(
        self,
        store: store_mod.Store,
        artifacts: artifacts_mod.ArtifactStore,
        *,
        clock: Clock = _utcnow,
        snapshot_store: snapshots_store.SnapshotStore | None = None,
        home: pathlib.Path | None = None,
        work_dir: pathlib.Path | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.clock = clock
        self.snapshot_store = snapshot_store or snapshots_store.SnapshotStore(artifacts.url)
        self.home = home  # runyard's home: never part of a snapshot
        # Where runs get their working copies; without it runs work where they are started.
        self.workdirs = (
            workdirs.Workdirs(work_dir, self.snapshot_store) if work_dir is not None else None
        )
        self._environment: snapshots.Environment | None = None
        self._data: data_mod.DataService | None = None

    @property
    def data(self) -> data_mod.DataService:
        """Data repos, data pipelines, their jobs and datums (see ``app.data``)."""
        if self._data is None:
            if self.workdirs is not None:
                work_root = self.workdirs.root
            elif self.home is not None:
                work_root = self.home / "work"
            else:
                work_root = pathlib.Path(tempfile.gettempdir()) / "runyard-work"
            self._data = data_mod.DataService(
                self.store.data, self.snapshot_store, work_root=work_root, clock=self.clock
            )
        return self._data

    @classmethod
    def open(cls, config: settings.Settings | None = None) -> Runyard:
        """Open the stores named by ``config`` (default: the environment), migrating them.

        Raises ``StoreError`` when the database cannot be used.
        """
        config = config or settings.Settings.from_env()
        return cls(
            store_mod.Store.open(config.database_url),
            artifacts_mod.ArtifactStore(config.artifacts_url),
            snapshot_store=snapshots_store.SnapshotStore(config.artifacts_url),
            home=config.home,
            work_dir=config.work_dir,
        )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Runyard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- creating jobs -----------------------------------------------------------------

    def create_job(
        self,
        pipeline: pipelines.PipelineDefinition,
        *,
        grid: Mapping[str, Any] | None = None,
        grid_source: str = "Grid",
        name: str | None = None,
        tags: Iterable[str] = (),
        deselect: Iterable[grid_mod.Deselection] = (),
        max_parallel_runs: int | None = None,
        allow_large_grid: bool = False,
        pipeline_ref: str | None = None,
        run_timeout: float | None = None,
        memory_limit_mb: int | None = None,
        priority: int = 0,
        trigger: schedules.Trigger | None = None,
        tag_limits: Mapping[str, int] | None = None,
        retry: retries.RetryPolicy | None = None,
        hooks: Iterable[hooks.Hook] = (),
        max_retained_runs: int | None = None,
        snapshot: bool = True,
        snapshot_id: str | None = None,
        parent_run: records.Run | None = None,
        input_workdata: Sequence[str] = (),
    ) -> records.JobSummary:
        """Validate the grid, expand it, snapshot the pipeline's project, and store the job
        with its selected runs; with a ``trigger`` (at a time, on a cron schedule) every tick
        makes a batch of them.

        The project is the folder of the pipeline's file, or the nearest folder above it
        holding ``runyard.toml`` or ``pyproject.toml``; every run of the job works in its
        own copy of the snapshot and loads the pipeline from it, whatever happens to the
        project afterwards. No snapshot is taken for a pipeline without a file (defined
        interactively) or with ``snapshot=False``; ``snapshot_id`` gives one taken before
        (the pipeline's registration's). ``parent_run``: the run whose step makes this job,
        which is then its sub job. ``input_workdata``: ids of WorkData the job reads
        (recorded for lineage; a step opens one with ``runyard.open_workdata(id)``).

        ``retry``, ``max_retained_runs`` (when given) replace the pipeline's defaults;
        ``hooks`` are added to the pipeline's.

        Every value is checked against its parameter's type first; on any error
        (``GridError``, ``ParameterError``) nothing is stored.
        """
        planned = self._plan_job(
            pipeline,
            grid=grid,
            grid_source=grid_source,
            name=name,
            tags=tags,
            deselect=deselect,
            max_parallel_runs=max_parallel_runs,
            allow_large_grid=allow_large_grid,
            pipeline_ref=pipeline_ref,
            run_timeout=run_timeout,
            memory_limit_mb=memory_limit_mb,
            priority=priority,
            trigger=trigger,
            tag_limits=tag_limits,
            retry=retry,
            hooks=hooks,
            max_retained_runs=max_retained_runs,
            snapshot=snapshot,
            snapshot_id=snapshot_id,
            parent_run=parent_run,
            input_workdata=input_workdata,
        )
        self._store_planned([planned])
        return self.store.job_summary(planned.job.id)

    def _plan_job(
        self,
        pipeline: pipelines.PipelineDefinition,
        *,
        grid: Mapping[str, Any] | None = None,
        grid_source: str = "Grid",
        name: str | None = None,
        tags: Iterable[str] = (),
        deselect: Iterable[grid_mod.Deselection] = (),
        max_parallel_runs: int | None = None,
        allow_large_grid: bool = False,
        pipeline_ref: str | None = None,
        run_timeout: float | None = None,
        memory_limit_mb: int | None = None,
        priority: int = 0,
        trigger: schedules.Trigger | None = None,
        tag_limits: Mapping[str, int] | None = None,
        retry: retries.RetryPolicy | None = None,
        hooks: Iterable[hooks.Hook] = (),
        max_retained_runs: int | None = None,
        snapshot: bool = True,
        snapshot_id: str | None = None,
        parent_run: records.Run | None = None,
        input_workdata: Sequence[str] = (),
    ) -> _Planned:
        """The job and runs ``create_job`` stores, checked; nothing stored but a snapshot."""
        checked = grid_mod.parse_grid(
            pipeline, grid, source=grid_source, allow_large=allow_large_grid
        )
        deselect = list(deselect)
        selected = grid_mod.select_runs(checked.expand(pipeline), deselect, size=checked.size)
        tag_limits = dict(tag_limits or {})
        for tag, most in tag_limits.items():
            if most < 1:
                raise errors.UsageError(
                    f"Tag limit {tag}={most} is not valid; give 1 or more runs at once"
                )
        tags = _checked_tags([*tags, *tag_limits])
        parallel = max_parallel_runs if max_parallel_runs is not None else os.cpu_count() or 1
        if parallel < 1:
            raise errors.UsageError(f"max_parallel_runs={parallel} is not valid; give 1 or more")
        retained = (
            max_retained_runs if max_retained_runs is not None else pipeline.max_retained_runs
        )
        if retained is not None and retained < 1:
            raise errors.UsageError(
                f"max_retained_runs={retained} is not valid; give 1 or more runs to keep"
            )
        policy = retry if retry is not None else pipeline.retry
        reference = pipeline_ref if pipeline_ref is not None else loader.reference_of(pipeline)
        if snapshot_id is None and snapshot and reference:
            snapshot_id = self._snapshot_for(reference).id
        now = self.clock()
        job = records.Job(
            id=new_id(),
            name=name or pipeline.name,
            pipeline_name=pipeline.name,
            pipeline_version=pipeline.version,
            pipeline_ref=reference,
            grid=checked.to_json(),
            deselected=tuple(
                sorted(
                    {i for i in deselect if isinstance(i, int)}
                    | (set(range(checked.size)) - {i for i, _ in selected})
                )
            ),
            tags=tags,
            max_parallel_runs=parallel,
            run_count=len(selected),
            created_at=now,
            run_timeout=run_timeout,
            memory_limit_mb=memory_limit_mb,
            retry=policy if policy is not None and policy.retries else None,
            hooks=tuple(dict.fromkeys([*pipeline.hooks, *hooks])),
            max_retained_runs=retained,
            snapshot_id=snapshot_id,
            parent_job_id=parent_run.job_id if parent_run is not None else None,
            parent_run_id=parent_run.id if parent_run is not None else None,
        )
        runs = [
            records.Run(
                id=new_id(),
                job_id=job.id,
                index=index,
                params=params,
                state=states.RunState.CREATED,
                created_at=now,
                priority=priority,
            )
            for index, params in selected
        ]
        first_fire = None
        if trigger is not None and trigger.kind != "now":
            first_fire = trigger.first_fire(now)
        else:
            trigger = None
        return _Planned(
            job, runs, trigger, first_fire, dict(tag_limits), tuple(dict.fromkeys(input_workdata))
        )

    def _store_planned(self, planned: Sequence[_Planned]) -> None:
        for plan in planned:
            for tag, most in plan.tag_limits.items():
                self.store.set_tag_limit(tag, most)
        self.store.create_jobs(
            [(plan.job, plan.runs, plan.trigger, plan.first_fire) for plan in planned],
            inputs={plan.job.id: plan.inputs for plan in planned if plan.inputs},
        )

    def _snapshot_for(self, reference: str) -> snapshots.Snapshot:
        """A snapshot of the project of the pipeline file ``reference`` names, with the file's
        pipelines and steps registered in it. Raises ``UsageError`` (the project is too big,
        its settings are bad) or ``LoadError`` (the pipeline file itself is left out of the
        snapshot)."""
        file = reference.partition(":")[0]
        taken = self.take_snapshot(projects.find_project(file))
        snapshots.pipeline_file_in(taken.snapshot, reference)
        self._register(file, taken.snapshot.id)
        return taken.snapshot

    # -- WorkData ------------------------------------------------------------------------

    def upload_workdata(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        media_type: str = "application/octet-stream",
        producer: tuple[str, str, str] | None = None,
    ) -> records.WorkData:
        """Keep a file as WorkData: its content from ``chunks``, hashed as it is stored;
        ``producer`` is (job id, run id, step) when a step wrote it. Raises ``UsageError``
        for an empty or overlong name or media type (storing nothing)."""
        if not name.strip() or len(name) > 300 or "/" in name or "\\" in name:
            raise errors.UsageError(
                f"WorkData name {name!r} is not valid; give a file name (1-300 characters, "
                "no slashes)"
            )
        if not media_type or len(media_type) > 200 or "/" not in media_type:
            raise errors.UsageError(
                f"Media type {media_type!r} is not valid; give one like text/csv"
            )
        workdata_id = new_id()
        uri, size, digest = self.artifacts.put_stream(workdata_id, chunks)
        job_id, run_id, step = producer or (None, None, None)
        data = records.WorkData(
            id=workdata_id,
            name=name,
            size=size,
            digest=digest,
            media_type=media_type,
            uri=uri,
            created_at=self.clock(),
            producer_job_id=job_id,
            producer_run_id=run_id,
            producer_step=step,
        )
        try:
            self.store.save_workdata(data)
        except BaseException:
            self.artifacts.delete_uri(uri)
            raise
        return data

    def workdata(self, workdata_id: str) -> records.WorkData:
        """One WorkData with the jobs that read it; raises ``NotFoundError``."""
        return self.store.get_workdata(workdata_id)

    def list_workdata(
        self, *, producer_job_id: str | None = None, limit: int = 1000
    ) -> list[records.WorkData]:
        return self.store.list_workdata(producer_job_id=producer_job_id, limit=limit)

    def inputs_of(self, job_id: str) -> list[records.WorkData]:
        """The WorkData a job reads."""
        return [self.store.get_workdata(w) for w in self.store.workdata_inputs(job_id)]

    def open_workdata(self, workdata_id: str) -> BinaryIO:
        """A WorkData's content, for reading."""
        return self.artifacts.open_uri(self.store.get_workdata(workdata_id).uri)

    def delete_workdata(self, workdata_id: str) -> None:
        """Delete a WorkData for good; raises ``ConflictError`` naming the jobs that read
        it."""
        for uri in self.store.delete_workdata(workdata_id):
            self.artifacts.delete_uri(uri)

    # -- the registry --------------------------------------------------------------------

    def register_file(self, file: str | os.PathLike[str]) -> list[registry.Registration]:
        """Load a pipeline file, snapshot its project and register the pipelines and steps
        it defines, so jobs can be made of them by name and version (over the API too).

        Raises ``LoadError`` for a file that does not load, ``UsageError`` for a project that
        cannot be snapshotted.
        """
        path = pathlib.Path(file).expanduser().resolve()
        defined = loader.definitions_in(path, fresh=True)  # as it is now; or why it fails
        taken = self.take_snapshot(projects.find_project(path))
        snapshots.pipeline_file_in(taken.snapshot, f"{path}:")
        return self._register(str(path), taken.snapshot.id, defined)

    def _register(
        self,
        file: str,
        snapshot_id: str | None,
        defined: list[tuple[str, Any]] | None = None,
    ) -> list[registry.Registration]:
        found = registry.registrations_of(
            defined if defined is not None else loader.definitions_in(file),
            file=file,
            snapshot_id=snapshot_id,
            at=self.clock(),
        )
        self.store.register(found)
        return found

    def registrations(
        self, *, name: str | None = None, kind: registry.Kind | None = None
    ) -> list[registry.Registration]:
        """The registered processing steps (of one name), each version oldest first."""
        return self.store.registrations(name=name, kind=kind)

    def load_registered(self, registration: registry.Registration) -> pipelines.PipelineDefinition:
        """The registered pipeline (or step, as a one-step pipeline), loaded from its
        snapshot's copy as its runs will load it. Raises ``LoadError`` when it no longer
        loads or loads as another version (the environment changed)."""
        reference = registration.reference
        if registration.snapshot_id is not None and self.workdirs is not None:
            snapshot = self.store.get_snapshot(registration.snapshot_id)
            reference = self.workdirs.reference(snapshot, reference)
            loader.use_source(str(self.workdirs.source(snapshot)))
        pipeline = loader.load_pipeline(reference).pipeline
        if pipeline.version != registration.version:
            raise errors.LoadError(
                f"{registration.kind} {registration.name!r} {registration.version} now loads as "
                f"version {pipeline.version} from {registration.reference}; register it again"
            )
        return pipeline

    def create_job_from(
        self,
        processing: str,
        version: str | None = None,
        *,
        start: bool = False,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> records.JobSummary:
        """A job of the registered processing step ``processing`` (at ``version``), run
        against the snapshot it was registered with; ``options`` as for ``create_job``,
        ``parameters`` one set of values instead of a grid (see ``configure_job``). With
        ``start`` its runs are queued at once."""
        registration = self.registration(processing, version)
        pipeline = self.load_registered(registration)
        if parameters is not None:
            if options.get("grid") is not None:
                raise errors.UsageError("Give grid or parameters, not both")
            options["grid"] = grid_mod.grid_of_one(pipeline, parameters)
            options.setdefault("grid_source", "Parameters")
        summary = self.create_job(
            pipeline,
            pipeline_ref=registration.reference,
            snapshot_id=registration.snapshot_id,
            **options,
        )
        if start:
            self.start_job(summary.id)
            summary = self.get_job(summary.id)
        return summary

    def create_jobs_from(self, specs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many jobs of registered processing steps at once, all or none: each spec holds
        ``processing`` (a name), and optionally ``version``, ``start``, ``parameters`` and
        the options of ``create_job``. Every spec is checked before any job is stored;
        an error names the spec by its position. Returns the new jobs' ids, in order."""
        loaded: dict[tuple[str, str | None], tuple[registry.Registration, Any]] = {}
        planned: list[tuple[_Planned, bool]] = []
        for position, given in enumerate(specs):
            spec = dict(given)
            try:
                key = (str(spec.pop("processing")), spec.pop("version", None))
                if key not in loaded:
                    registration = self.registration(*key)
                    loaded[key] = (registration, self.load_registered(registration))
                registration, pipeline = loaded[key]
                start = bool(spec.pop("start", False))
                parameters = spec.pop("parameters", None)
                if parameters is not None:
                    if spec.get("grid") is not None:
                        raise errors.UsageError("Give grid or parameters, not both")
                    spec["grid"] = grid_mod.grid_of_one(pipeline, parameters)
                    spec.setdefault("grid_source", "Parameters")
                plan = self._plan_job(
                    pipeline,
                    pipeline_ref=registration.reference,
                    snapshot_id=registration.snapshot_id,
                    **spec,
                )
            except errors.RunyardError as exc:
                raise type(exc)(f"Job {position} of the batch: {exc.message}") from exc
            except (KeyError, TypeError) as exc:
                raise errors.UsageError(
                    f"Job {position} of the batch is not valid ({exc}); give processing and "
                    "the options of a job"
                ) from exc
            planned.append((plan, start))
        self._store_planned([plan for plan, _ in planned])
        for plan, start in planned:
            if start and plan.runs:
                self.store.queue_runs(plan.job.id, at=self.clock())
        return [plan.job.id for plan, _ in planned]

    def preview_grid(
        self,
        processing: str,
        version: str | None = None,
        *,
        grid: Mapping[str, Any] | None = None,
        limit: int = 1000,
    ) -> tuple[int, list[tuple[int, records.RunParams]]]:
        """The runs a job of ``processing`` over ``grid`` would have: how many, and the
        first ``limit`` as (index, parameters). Nothing is stored. Raises
        ``GridError``/``ParameterError`` naming each bad value, as creating the job would."""
        registration = self.registration(processing, version)
        pipeline = self.load_registered(registration)
        checked = grid_mod.parse_grid(pipeline, grid)
        shown = []
        for index, params in enumerate(checked.expand(pipeline)):
            if index >= limit:
                break
            shown.append((index, params))
        return checked.size, shown

    def registration(self, name: str, version: str | None = None) -> registry.Registration:
        """The processing step ``name`` at ``version``; raises ``NotFoundError`` (no such
        name or version) or ``UsageError`` (no version given and there are several)."""
        return registry.pick(name, version, self.store.registrations(name=name))

    # -- jobs made step by step (seed 004): empty, then a processing step, then parameters

    def create_empty_job(self, name: str, *, tags: Iterable[str] = ()) -> records.JobSummary:
        """A job with no processing step yet (``processing_state`` created)."""
        if not name.strip() or len(name) > 200:
            raise errors.UsageError(f"Job name {name!r} is not valid; give 1-200 characters")
        job = records.Job(
            id=new_id(),
            name=name,
            pipeline_name="",
            pipeline_version="",
            pipeline_ref="",
            grid={},
            deselected=(),
            tags=_checked_tags(tags),
            max_parallel_runs=os.cpu_count() or 1,
            run_count=0,
            created_at=self.clock(),
        )
        self.store.create_job(job, [])
        return self.store.job_summary(job.id)

    def select_processing(
        self, job_id: str, processing: str, version: str | None = None
    ) -> records.JobSummary:
        """Give a job not started yet the registered processing step ``processing``; with
        its defaults it is ready for processing unless a parameter has none.

        Raises ``NotFoundError``/``UsageError`` (see ``registration``), ``ConflictError``
        when the job has started.
        """
        job = self.store.get_job(job_id)
        registration = self.registration(processing, version)
        pipeline = self.load_registered(registration)
        chosen = job.evolve(
            pipeline_name=pipeline.name,
            pipeline_version=pipeline.version,
            pipeline_ref=registration.reference,
            snapshot_id=registration.snapshot_id,
        )
        try:
            return self._configure(chosen, pipeline, None, "Defaults")
        except (errors.ParameterError, errors.GridError):
            # A parameter without a default: chosen, but not ready until configured.
            return self._configure(chosen, pipeline, None, "Defaults", runs=False)

    def configure_job(
        self,
        job_id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        grid: Mapping[str, Any] | None = None,
    ) -> records.JobSummary:
        """Set the parameters of a job not started yet: one set (``{"name": value}`` for a
        step, ``{"pipeline": {...}, "steps": {...}}`` for a pipeline) or a grid. Raises
        ``ParameterError``/``GridError`` naming each bad value (nothing changes),
        ``UsageError`` when no processing step was chosen, ``ConflictError`` once started."""
        job = self.store.get_job(job_id)
        if not job.pipeline_name:
            raise errors.UsageError(
                f"Job {job.id} has no processing step yet; select one before configuring it"
            )
        if (parameters is None) == (grid is None):
            raise errors.UsageError("Give parameters or a grid (one of them)")
        pipeline = self.load_pipeline(job)
        if parameters is not None:
            grid = grid_mod.grid_of_one(pipeline, parameters)
        return self._configure(job, pipeline, grid, "Parameters")

    def _configure(
        self,
        job: records.Job,
        pipeline: pipelines.PipelineDefinition,
        grid: Mapping[str, Any] | None,
        source: str,
        *,
        runs: bool = True,
    ) -> records.JobSummary:
        made: list[records.Run] = []
        grid_json: Mapping[str, Any] = {}
        if runs:
            checked = grid_mod.parse_grid(pipeline, grid, source=source)
            now = self.clock()
            made = [
                records.Run(
                    id=new_id(),
                    job_id=job.id,
                    index=index,
                    params=params,
                    state=states.RunState.CREATED,
                    created_at=now,
                )
                for index, params in grid_mod.select_runs(
                    checked.expand(pipeline), [], size=checked.size
                )
            ]
            grid_json = checked.to_json()
        changed = job.evolve(grid=grid_json, deselected=(), run_count=len(made))
        self.store.reconfigure_job(changed, made, at=self.clock())
        return self.store.job_summary(job.id)

    def set_tags(self, job_id: str, tags: Iterable[str]) -> records.JobSummary:
        """Replace a job's tags."""
        job = self.store.get_job(job_id)
        self.store.set_tags(job.id, _checked_tags(tags), at=self.clock())
        return self.store.job_summary(job.id)

    def delete_job(
        self,
        job_id: str,
        *,
        with_sub_jobs: bool = False,
        with_outputs: bool = False,
        with_inputs: bool = False,
    ) -> int:
        """Delete a job with its runs, their records and files (its events stay); returns
        how many runs went. Raises ``ConflictError`` while it runs, while it has sub jobs
        (unless ``with_sub_jobs``: then they go first, under the same rules) and while it
        has output WorkData (unless ``with_outputs``); ``with_inputs`` deletes the WorkData
        it read that no other job reads."""
        job = self.store.get_job(job_id)
        gone = 0
        if with_sub_jobs:
            for child in self.store.list_jobs(parent=job.id, limit=1_000_000):
                gone += self.delete_job(
                    child.id,
                    with_sub_jobs=True,
                    with_outputs=with_outputs,
                    with_inputs=with_inputs,
                )
        deleted = self.store.delete_job(
            job.id, at=self.clock(), with_outputs=with_outputs, with_inputs=with_inputs
        )
        if deleted.run_ids:
            self.artifacts.discard(deleted.run_ids, deleted.uris, ())
            if self.workdirs is not None:
                self.workdirs.discard(deleted.run_ids)
        return gone + len(deleted.run_ids)

    def grid_for(
        self, loaded: loader.LoadedPipeline, grid_file: pathlib.Path | None
    ) -> tuple[Any, str, pathlib.Path | None]:
        """The grid to use: ``grid_file``, else ``<pipeline>.parameters.json`` beside it.

        Returns (grid or None, the label for messages, the file used).
        """
        path = grid_file or gridfile.find_grid_file(loaded.path, loaded.pipeline.name)
        if path is None:
            return None, "Grid", None
        return gridfile.read_grid_file(path), f"Grid file {path.name}", path

    # -- API tokens ----------------------------------------------------------------------

    def create_token(self, name: str, scope: tokens.Scope) -> tuple[tokens.Token, str]:
        """Make an API token; returns it and its text, which is shown only this once.

        Raises ``UsageError`` for an empty or overlong name.
        """
        if not name.strip() or len(name) > 200:
            raise errors.UsageError(
                f"Token name {name!r} is not valid; give 1-200 characters saying who uses it"
            )
        token = tokens.Token(secrets.token_hex(6), name, scope, self.clock())
        secret = secrets.token_urlsafe(32)
        self.store.create_token(token, secret)
        return token, f"{tokens.PREFIX}{token.id}_{secret}"

    def check_token(self, text: str) -> tokens.Token:
        """The active token ``text`` is; raises ``AuthError``."""
        return self.store.check_token(text)

    def list_tokens(self) -> list[tokens.Token]:
        return self.store.list_tokens()

    def revoke_token(self, token_id: str) -> tokens.Token:
        return self.store.revoke_token(token_id, at=self.clock())

    # -- snapshots -----------------------------------------------------------------------

    def take_snapshot(
        self, project: projects_mod.Project | str | os.PathLike[str]
    ) -> snapshots_store.Taken:
        """Snapshot a project (or the project whose root is the folder given) with this
        process's environment, storing its new contents and then its record.

        runyard's own files are left out wherever they are: its home, a local artifact
        directory, a SQLite database. Raises ``UsageError`` (storing nothing) for a project
        over its size limit, bad project settings or a folder that cannot be read.
        """
        if not isinstance(project, projects_mod.Project):
            project = projects.project_at(project)
        if self._environment is None:
            # Read once: listing the installed distributions is ~25 ms.
            self._environment = environment.capture()
        taken = self.snapshot_store.take(
            project,
            environment=self._environment,
            created_at=self.clock(),
            exclude=self._own_paths(),
        )
        # Contents first, record second: a crash in between leaves unused blobs, never a
        # snapshot whose contents are missing.
        self.store.save_snapshot(taken.snapshot)
        return taken

    def _own_paths(self) -> list[pathlib.Path]:
        own = [p for p in (self.home, self.snapshot_store.local_root) if p is not None]
        url = self.store.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            database = pathlib.Path(url.database or "")
            ends = ("", "-wal", "-shm", "-journal")
            own += [database.with_name(database.name + end) for end in ends]
        return own

    def get_snapshot(self, snapshot_id: str) -> snapshots.Snapshot:
        """The snapshot with this id (or unique prefix); raises ``NotFoundError``."""
        return self.store.get_snapshot(snapshot_id)

    def list_snapshots(self, *, limit: int = 100) -> list[snapshots.SnapshotSummary]:
        """Snapshots newest first."""
        return self.store.list_snapshots(limit=limit)

    def diff_snapshots(self, a: str, b: str) -> snapshots.SnapshotDiff:
        """What was added, removed and changed from snapshot ``a`` to snapshot ``b``."""
        return snapshots.diff(self.store.get_snapshot(a), self.store.get_snapshot(b))

    def materialize_snapshot(self, snapshot_id: str, dest: str | os.PathLike[str]) -> int:
        """Write a private, writable copy of a snapshot's files at ``dest`` (which must not
        exist); returns the bytes copied. See ``SnapshotStore.materialize``."""
        return self.snapshot_store.materialize(self.store.get_snapshot(snapshot_id), dest)

    # -- executing ---------------------------------------------------------------------

    def start_job(self, job_id: str) -> int:
        """Queue a job's CREATED runs; returns how many were queued. Raises
        ``ConflictError`` for a job with no processing step or with parameters missing."""
        job = self.store.get_job(job_id)
        if not job.pipeline_name or (
            job.run_count == 0 and self.store.get_schedule(job.id) is None
        ):
            raise errors.ConflictError(
                f"Job {job.id} is not ready for processing: "
                + (
                    "select a processing step"
                    if not job.pipeline_name
                    else "configure its parameters"
                )
            )
        return self.store.queue_runs(job.id, at=self.clock())

    def execute_job(
        self,
        job_id: str,
        pipeline: pipelines.PipelineDefinition | None = None,
        *,
        max_parallel_runs: int | None = None,
        run_timeout: float | None = None,
        memory_limit_mb: int | None = None,
        on_step: recorder.StepCallback | None = None,
        on_run_finished: recorder.RunCallback | None = None,
    ) -> records.JobSummary:
        """Execute a job's queued runs here, each in its own process, until none is left.

        ``pipeline`` is loaded from the job's reference when not given. Returns the job as
        it stands afterwards.
        """
        job = self.store.get_job(job_id)
        if pipeline is None:
            pipeline = self.load_pipeline(job)
        if pipeline.version != job.pipeline_version:
            raise errors.UsageError(
                f"Job {job.id} was made for version {job.pipeline_version} of pipeline "
                f"{job.pipeline_name!r} but {pipeline.version} is loaded; create a new job"
            )
        self.store.queue_runs(job.id, at=self.clock())
        hooks_out = notifier.Notifier(self.store, clock=self.clock) if job.hooks else None
        worker = engine.Worker(
            self.store,
            self.artifacts,
            options=engine.WorkerOptions(
                slots=max_parallel_runs or job.max_parallel_runs,
                run_timeout=run_timeout,
                memory_limit_mb=memory_limit_mb,
            ),
            kind="foreground",
            job_id=job.id,
            pipeline=pipeline,
            exit_when_idle=True,
            on_step=on_step,
            on_run_finished=on_run_finished,
            artifacts=self.artifacts,
            notifier=hooks_out,
            workdirs=self.workdirs,
            run_env=self.run_env(),
            clock=self.clock,
        )
        try:
            worker.run()
            if hooks_out is not None:
                # The last runs' notices (the job's completion among them) were written
                # as the worker stopped: deliver them once now. What fails stays in the
                # store, for an engine to try again.
                hooks_out.deliver_due()
        except BaseException:
            # Interrupted: the executor has killed and recorded the runs it had started;
            # nothing here will start the rest, so they end too rather than wait forever.
            self.store.kill_unstarted_runs(
                job.id, at=self.clock(), reason="stopped: runyard was interrupted before it ran"
            )
            raise
        return self.store.job_summary(job.id)

    def load_pipeline(self, job: records.Job) -> pipelines.PipelineDefinition:
        if not job.pipeline_ref:
            raise errors.LoadError(
                f"Job {job.id} has no pipeline file on record (it was defined interactively); "
                "execute it from the process that created it"
            )
        reference = job.pipeline_ref
        if job.snapshot_id is not None and self.workdirs is not None:
            # As the job's runs will: from its snapshot, not from today's project.
            reference = self.workdirs.reference(self.store.get_snapshot(job.snapshot_id), reference)
        return loader.load_pipeline(reference).pipeline

    # -- reading -----------------------------------------------------------------------

    def get_job(self, job_id: str) -> records.JobSummary:
        return self.store.job_summary(job_id)

    def jobs_by_id(self, job_ids: Sequence[str]) -> list[records.JobSummary]:
        """The jobs with these exact ids that exist, newest first."""
        return self.store.job_summaries(job_ids) if job_ids else []

    def list_jobs(
        self,
        *,
        pipeline: str | None = None,
        state: states.JobState | None = None,
        tag: str | None = None,
        limit: int = 100,
        before: tuple[dt.datetime, str] | None = None,
        parent: str | None = None,
        name: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
    ) -> list[records.JobSummary]:
        return self.store.list_jobs(
            pipeline=pipeline,
            state=state,
            tag=tag,
            limit=limit,
            before=before,
            parent=parent,
            name=name,
            created_after=created_after,
            created_before=created_before,
        )

    def list_runs(self, job_id: str, *, state: states.RunState | None = None) -> list[records.Run]:
        return self.store.list_runs(self.store.get_job(job_id).id, state=state)

    def page_runs(
        self,
        job_id: str,
        *,
        state: states.RunState | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[records.Run], int]:
        """One page of a job's runs in grid order, and how many there are in all."""
        job_id = self.store.get_job(job_id).id
        found = self.store.list_runs(job_id, state=state, limit=limit, offset=offset)
        return found, self.store.count_runs(job_id, state=state)

    def run_states(self, job_id: str) -> list[tuple[int, str]]:
        """(grid index, state) of each of a job's runs (its last attempts), in grid order."""
        return self.store.run_states(self.store.get_job(job_id).id)

    def get_run(self, run_id: str) -> records.Run:
        return self.store.get_run(run_id)

    def last_attempt(self, run_id: str) -> records.Run:
        """The run, or the newest retry of it (following retries of retries)."""
        run = self.store.get_run(run_id)
        while run.retried_by:
            run = self.store.get_run(run.retried_by)
        return run

    def step_runs(self, run_id: str) -> list[records.StepRun]:
        return self.store.list_step_runs(self.store.get_run(run_id).id)

    def logs(self, run_id: str, *, step: str | None = None) -> list[records.LogLine]:
        return self.store.list_logs(self.store.get_run(run_id).id, step=step)

    def working_copy(self, run_id: str) -> pathlib.Path | None:
        """The folder run ``run_id`` worked in, when it had its own copy of its job's
        snapshot and the copy is on this machine."""
        if self.workdirs is None:
            return None
        folder = self.workdirs.run_dir(self.store.get_run(run_id).id)
        return folder if folder.is_dir() else None

    def kept_files(self, run_id: str) -> list[tuple[str, str]]:
        """Files run ``run_id``'s steps left to keep (executed notebooks and their HTML), as
        (step, path or URL)."""
        return self.artifacts.kept_files(self.store.get_run(run_id).id)

    def read_kept_file(self, run_id: str, step: str, name: str) -> bytes:
        """A file run ``run_id``'s ``step`` kept (see ``kept_files``), by its name; raises
        ``NotFoundError`` for one it did not keep."""
        return self.artifacts.read_kept(self.store.get_run(run_id).id, step, name)

    def artifacts_of(self, run_id: str) -> list[records.Artifact]:
        return self.store.list_artifacts(self.store.get_run(run_id).id)

    def result(self, job_id: str) -> Any:
        """A completed job's result: what the last step of its one run returned (a dict by
        output name when it has several). Raises ``ConflictError`` for a job that has not
        completed or has several runs (read each run's outputs then)."""
        summary = self.get_job(job_id)
        if summary.processing_state is not states.ProcessingState.COMPLETED:
            raise errors.ConflictError(
                f"Job {summary.id} is {summary.processing_state}, not completed: it has no "
                "result yet"
            )
        runs = [r for r in self.list_runs(summary.id) if not r.retried_by]
        if len(runs) != 1:
            raise errors.ConflictError(
                f"Job {summary.id} has {len(runs)} runs; its result is each run's outputs "
                "(GET /api/v1/runs/{id}/outputs)"
            )
        stored = self.artifacts_of(runs[0].id)
        last = stored[-1].step_name if stored else None
        values = {a.output_name: self.artifacts.get(a.uri) for a in stored if a.step_name == last}
        if not values:
            return None
        return next(iter(values.values())) if len(values) == 1 else values

    def output(self, run_id: str, step: str, output: str | None = None) -> Any:
        """The stored value of ``step``'s output in run ``run_id``.

        Raises ``NotFoundError`` when the step stored no such output.
        """
        stored = [a for a in self.artifacts_of(run_id) if a.step_name == step]
        if output is not None:
            stored = [a for a in stored if a.output_name == output]
        if len(stored) != 1:
            names = sorted({f"{a.step_name}.{a.output_name}" for a in self.artifacts_of(run_id)})
            raise errors.NotFoundError(
                f"Run {run_id} has no single stored output for step {step!r}"
                f"{'' if output is None else f' output {output!r}'}; stored: "
                f"{', '.join(names) or 'none'}"
            )
        return self.artifacts.get(stored[0].uri)

    def events(
        self, *, job_id: str | None = None, run_id: str | None = None, after: int | None = None
    ) -> list[records.Event]:
        return self.store.list_events(job_id=job_id, run_id=run_id, after=after)

    def notices(self, job_id: str | None = None) -> list[records.Notice]:
        """The hooks' notices (of one job), oldest first, with how their delivery went."""
        return self.store.list_notices(
            job_id=self.store.get_job(job_id).id if job_id is not None else None
        )

    def set_priority(
        self, priority: int, *, job_id: str | None = None, run_id: str | None = None
    ) -> int:
        """Change the priority of a job's (or one run's) queued runs; how many changed."""
        if job_id is not None:
            return self.store.set_priority(priority, job_id=self.store.get_job(job_id).id)
        assert run_id is not None
        return self.store.set_priority(priority, run_id=self.store.get_run(run_id).id)

    def retry_run(self, run_id: str, *, all_steps: bool = False) -> records.Run:
        """Queue a new run retrying a finished one, with the same parameters.

        From failure (the default) it reuses the stored outputs of the steps that succeeded
        and runs only the others and what depends on them; ``all_steps`` runs everything.
        The retried run no longer counts in its job. Raises ``UsageError`` for a run still
        going, one already retried, or (from failure) one with nothing to re-run.
        """
        parent = self.store.get_run(run_id)
        if parent.state not in states.FINISHED_RUN_STATES:
            raise errors.UsageError(
                f"Run {parent.id} is {parent.state}; retry it once it has finished, or stop "
                "it first with `runyard run stop`"
            )
        if parent.retried_by:
            raise errors.UsageError(
                f"Run {parent.id} was already retried as run {parent.retried_by}; retry that one"
            )
        job = self.store.get_job(parent.job_id)
        pipeline = self.load_pipeline(job)
        reuse: dict[str, dict[str, str]] = {}
        if not all_steps:
            stored = self.store.reusable_outputs(parent.id)
            rerun: set[str] = set()
            for node in pipeline:  # pipeline order: upstream steps come first
                if not set(node.step.output_names) <= set(stored.get(node.name, {})) or any(
                    u in rerun for u in node.upstream
                ):
                    rerun.add(node.name)
            if not rerun:
                raise errors.UsageError(
                    f"Run {parent.id} ended {parent.state} with every step done; there is "
                    "nothing to re-run from failure. Use --all to run every step again"
                )
            reuse = {name: stored[name] for name in pipeline.nodes if name not in rerun}
        now = self.clock()
        run = records.Run(
            id=new_id(),
            job_id=job.id,
            index=parent.index,
            params=parent.params,
            state=states.RunState.QUEUED,
            created_at=now,
            queued_at=now,
            priority=parent.priority,
            tick_at=parent.tick_at,
            parent_run_id=parent.id,
            reuse=reuse,
            attempt=parent.attempt + 1,
        )
        self.store.create_retry(parent, run)
        return run

    def retry_failed(self, job_id: str, *, all_steps: bool = False) -> list[records.Run]:
        """Retry every run of a job that ended without success (FAILURE or KILLED) and was
        not retried yet, each as ``retry_run`` does; the new runs. Raises ``UsageError``
        when there is none."""
        job = self.store.get_job(job_id)
        ended = [
            r
            for r in self.store.list_runs(job.id)
            if r.state in (states.RunState.FAILURE, states.RunState.KILLED) and not r.retried_by
        ]
        if not ended:
            raise errors.UsageError(
                f"Job {job.id} has no failed or killed run to retry; `runyard run retry RUN` "
                "re-runs a run that succeeded"
            )
        retried = []
        for run in ended:
            try:
                retried.append(self.retry_run(run.id, all_steps=all_steps))
            except errors.UsageError:
                # Every step succeeded and the run still failed (its timeout, a kill after
                # the last step): there is nothing to re-run from failure, so all of it runs.
                retried.append(self.retry_run(run.id, all_steps=True))
        return retried

    # -- engines and stopping ------------------------------------------------------------

    def run_env(self) -> dict[str, str]:
        """The settings a run's process needs to open these stores again (to make sub
        jobs), as environment variables: absolute, whatever the run's directory."""
        env = {
            "RUNYARD_DATABASE_URL": self.store.engine.url.render_as_string(hide_password=False),
            "RUNYARD_ARTIFACTS_URL": self.artifacts.url,
        }
        if self.home is not None:
            env["RUNYARD_HOME"] = str(self.home)
        if self.workdirs is not None:
            env["RUNYARD_WORK_DIR"] = str(self.workdirs.root)
        return env

    def engines(self, *, within: float = 5.0) -> list[records.Worker]:
        """The engines (``runyard serve`` / ``runyard worker``) serving this store: those
        that sent a heartbeat in the last ``within`` seconds."""
        since = self.clock() - dt.timedelta(seconds=within)
        return [w for w in self.store.live_workers(since=since) if w.kind != "foreground"]

    def worker(
        self,
        *,
        kind: str,
        options: engine.WorkerOptions,
        on_run_finished: recorder.RunCallback | None = None,
        companions: Sequence[engine.Companion] = (),
    ) -> engine.Worker:
        """A worker executing this store's queued runs; call ``run()`` on it. It delivers
        the hooks' notices and deletes runs beyond their job's ``max_retained_runs``; the
        ``serve`` kind also fires the schedules' due ticks."""
        return engine.Worker(
            self.store,
            self.artifacts,
            options=options,
            kind=kind,
            on_run_finished=on_run_finished,
            on_heartbeat=self.fire_due if kind == "serve" else None,
            artifacts=self.artifacts,
            notifier=notifier.Notifier(self.store, clock=self.clock),
            workdirs=self.workdirs,
            companions=companions,
            run_env=self.run_env(),
            clock=self.clock,
        )

    # -- schedules -----------------------------------------------------------------------

    def fire_due(self) -> list[tuple[str, dt.datetime, int, str | None]]:
        """Fire every schedule tick that is due now, each exactly once."""
        return self.store.fire_due_ticks(at=self.clock(), new_id=new_id)

    def schedule(self, job_id: str) -> records.Schedule | None:
        return self.store.get_schedule(self.store.get_job(job_id).id)

    def list_schedules(
        self, *, limit: int = 1000, job_ids: Sequence[str] | None = None
    ) -> list[records.Schedule]:
        """Every scheduled job's schedule (or those of ``job_ids``), the next to fire first."""
        return self.store.list_schedules(limit=limit, job_ids=job_ids)

    def pause(self, job_id: str, *, paused: bool = True) -> None:
        """Pause (or resume) a scheduled job; ticks missed while paused do not fire."""
        self.store.set_paused(self.store.get_job(job_id).id, paused=paused, at=self.clock())

    def run_now(self, job_id: str) -> int:
        """Make a batch of a scheduled job's runs now; how many."""
        job = self.store.get_job(job_id)
        if self.store.get_schedule(job.id) is None:
            raise errors.UsageError(
                f"Job {job.id} has no schedule; `run now` is for --at and --cron jobs"
            )
        return self.store.run_now(job.id, at=self.clock(), new_id=new_id)

    def stop_job(self, job_id: str) -> records.StopOutcome:
        """Stop every run of a job: queued ones never start, running ones are killed by
        their worker (SIGTERM, then SIGKILL after its grace period)."""
        return self.store.request_stop(at=self.clock(), job_id=self.store.get_job(job_id).id)

    def stop_run(self, run_id: str) -> records.StopOutcome:
        return self.store.request_stop(at=self.clock(), run_id=self.store.get_run(run_id).id)

    def wait_runs(
        self, run_ids: Iterable[str], *, timeout: float, poll: float = 0.1
    ) -> list[records.Run]:
        """Wait (at most ``timeout`` s) until these runs have finished; their records. A run
        that was retried is followed to its last attempt, whose record is returned."""
        deadline = time.monotonic() + timeout
        while True:
            found = [self.last_attempt(r) for r in run_ids]
            if all(r.state in states.FINISHED_RUN_STATES for r in found):
                return found
            if time.monotonic() >= deadline:
                return found
            time.sleep(poll)

    def wait_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll: float = 0.2,
        on_progress: Callable[[records.JobSummary], None] | None = None,
    ) -> records.JobSummary:
        """Block until every run of the job has finished; returns the finished job.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        job_id = self.store.get_job(job_id).id
        while True:
            summary = self.store.job_summary(job_id)
            if on_progress is not None:
                on_progress(summary)
            total = sum(summary.counts.values())
            if total and summary.done == total:
                return summary
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Job {job_id} has {total - summary.done} run(s) still unfinished (or "
                    f"none made yet) after {timeout} s"
                )
            time.sleep(poll)


def connect(*, home: str | os.PathLike[str] | None = None) -> Runyard:
    """runyard on the stores named by the environment (or under ``home``)."""
    return Runyard.open(settings.Settings.from_env(home=home))


def create_job(
    pipeline: pipelines.PipelineDefinition,
    *,
    grid: Mapping[str, Any] | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
    deselect: Iterable[grid_mod.Deselection] = (),
    max_parallel_runs: int | None = None,
    allow_large_grid: bool = False,
    start: bool = True,
    home: str | os.PathLike[str] | None = None,
) -> records.JobSummary:
    """Create a job running ``pipeline`` once per combination of ``grid``; by default, run it.

    Without ``grid``, ``<pipeline>.parameters.json`` beside the pipeline's file is used when
    there is one. With ``start`` the runs execute here, each in its own process, and the
    finished job is returned. Raises ``GridError`` / ``ParameterError`` before storing
    anything when the grid is wrong.
    """
    app = connect(home=home)
    try:
        reference = loader.reference_of(pipeline)
        source = "Grid"
        if grid is None and reference:
            path = gridfile.find_grid_file(
                pathlib.Path(reference.rpartition(":")[0]), pipeline.name
            )
            if path is not None:
                grid, source = gridfile.read_grid_file(path), f"Grid file {path.name}"
        summary = app.create_job(
            pipeline,
            grid=grid,
            grid_source=source,
            name=name,
            tags=tags,
            deselect=deselect,
            max_parallel_runs=max_parallel_runs,
            allow_large_grid=allow_large_grid,
            pipeline_ref=reference,
        )
        if start:
            summary = app.execute_job(summary.job.id, pipeline)
        return summary
    finally:
        app.close()


def _checked_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags in order, without repeats; raises ``UsageError`` for an empty or long one."""
    out = tuple(dict.fromkeys(tags))
    for tag in out:
        if not tag or len(tag) > 200 or tag != tag.strip():
            raise errors.UsageError(
                f"Tag {tag!r} is not valid; use 1-200 characters without surrounding spaces"
            )
    return out
