"""A worker: claims runs from the store, executes them, keeps their leases alive, stops the
ones it is asked to, and recovers runs whose worker was lost.

``runyard serve`` and ``runyard worker`` run one until they are told to stop; a foreground
``runyard job create`` runs one for its own job until the job has no run left. Several
workers, on one host or many, can share one PostgreSQL store: claims never hand a run to
two of them, and a run whose worker dies is found when its lease expires.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from runyard import errors
from runyard.core import pipelines, records, snapshots, states
from runyard.execution import environment, loader, processes
from runyard.storage import artifacts as artifacts_mod
from runyard.storage import store as store_mod
from runyard.worker import notifier as notifier_mod
from runyard.worker import recorder, workdirs

__all__ = ["Companion", "Worker", "WorkerOptions"]

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker paces itself. Seconds throughout."""

    slots: int = os.cpu_count() or 1  # runs at once
    lease: float = 15.0  # how long a claimed run stays ours without a heartbeat
    heartbeat: float = 0.5  # how often leases are renewed and stop requests read
    poll: float = 0.05  # how often to look for queued runs while idle
    grace: float = 5.0  # between SIGTERM and SIGKILL when a run is stopped
    reap_every: float = 2.0  # how often to look for runs whose worker was lost
    run_timeout: float | None = None  # for runs whose job sets none
    memory_limit_mb: int | None = None  # for runs whose job sets none
    # Runs claimed ahead of a free slot (None: as many as ``slots``, and none for a worker
    # that exits when idle): a slot that frees starts one of them at once, and one claim
    # serves several runs. Bounded by each job's max_parallel_runs like any claim, since a
    # claimed run counts as active. Only while this worker's runs are short (take less than
    # ``prefetch_below`` seconds, on a moving average): for longer runs a claim costs
    # nothing worth saving, and a run held ahead would wait for a slot here while another
    # worker's stands free.
    prefetch: int | None = None
    prefetch_below: float = 1.0


class Companion(Protocol):
    """Something a worker starts once its fork server is running (so no run process is
    forked from a process with its threads) and stops when it stops: the REST API."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Place:
    """Where a job's runs load their pipeline from and what their working copies copy."""

    reference: str  # the pipeline's reference: in the snapshot's copy when there is one
    source_root: str | None = None  # the snapshot's copy on this machine
    project_root: str | None = None  # the folder the snapshot was taken of
    data_dir: str | None = None  # its data folder, relative to it
    note: str | None = None  # how this worker's environment differs from the snapshot's


class Worker:
    """Executes queued runs (of every job, or of ``job_id`` only) until told to stop.

    A run's pipeline is loaded from its job's file, in the copy of the job's snapshot when
    it has one (given ``workdirs``), and must still have the job's version; ``pipeline``
    gives it instead (a foreground job's, possibly defined interactively). Each run of a job
    with a snapshot works in its own copy of it. With ``exit_when_idle`` it returns once
    nothing is queued for it and nothing runs.
    """

    def __init__(
        self,
        store: store_mod.Store,
        outputs: processes.OutputStore,
        *,
        options: WorkerOptions | None = None,
        kind: str = "worker",
        job_id: str | None = None,
        pipeline: pipelines.PipelineDefinition | None = None,
        exit_when_idle: bool = False,
        on_step: recorder.StepCallback | None = None,
        on_run_finished: recorder.RunCallback | None = None,
        on_heartbeat: Callable[[], object] | None = None,
        artifacts: artifacts_mod.ArtifactStore | None = None,
        notifier: notifier_mod.Notifier | None = None,
        workdirs: workdirs.Workdirs | None = None,
        companions: Sequence[Companion] = (),
        run_env: Mapping[str, str] | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.store = store
        self.options = options or WorkerOptions()
        self.kind = kind
        self.job_id = job_id
        self.exit_when_idle = exit_when_idle
        self.clock = clock
        self.id = uuid.uuid4().hex
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._fixed = pipeline
        self._loader = processes.ReferenceLoader()
        self._on_heartbeat = on_heartbeat
        self._artifacts = artifacts  # with it, runs beyond a job's max_retained_runs are deleted
        self._notifier = notifier  # delivers hooks' notices on its thread while we work
        self._companions = companions  # threads that live as long as we work (the API)
        self._run_env = dict(run_env or {})  # set in every run's process
        self._jobs: dict[str, records.Job] = {}
        self._pipelines: dict[str, pipelines.PipelineDefinition] = {}
        self._workdirs = workdirs
        self._places: dict[str, _Place] = {}
        self._environment: snapshots.Environment | None = None
        self._recorder = recorder.Recorder(store, on_step=on_step, on_run_finished=on_run_finished)
        self._executor = processes.ProcessExecutor(
            max_parallel=self.options.slots,
            outputs=outputs,
            run_timeout=self.options.run_timeout,
            memory_limit_mb=self.options.memory_limit_mb,
        )
        self._draining = False
        self._killing = False
        self._ready: collections.deque[records.Run] = collections.deque()  # claimed ahead
        prefetch = self.options.prefetch
        if prefetch is None:  # a foreground job's runs stay queued until a slot is free
            prefetch = 0 if exit_when_idle else self.options.slots
        self._prefetch = max(0, prefetch)

    def shut_down(self, *, kill: bool = False) -> None:
        """Stop claiming; let running runs finish, or with ``kill`` stop them now. Safe to
        call from a signal handler."""
        self._draining = True
        self._killing = self._killing or kill

    def run(self) -> None:
        """Work until shut down (or, with ``exit_when_idle``, until idle)."""
        started = self.clock()
        if self._workdirs is not None:
            self._workdirs.discard_stale()
        self.store.register_worker(
            records.Worker(
                self.id,
                socket.gethostname(),
                os.getpid(),
                self.kind,
                self.options.slots,
                started,
                started,
            )
        )
        try:
            with self._executor.session(
                self._resolve_task, self._recorder, by_reference=self._fixed is None
            ) as session:
                # The thread starts after the fork server was forked: no run process is
                # forked from a process with a thread that may hold a lock.
                if self._notifier is not None:
                    self._notifier.start()
                running: list[Companion] = []
                try:
                    for companion in self._companions:
                        companion.start()
                        running.append(companion)
                    self._loop(session)
                except BaseException:
                    # If the store is what failed, the runs' leases expire and they are
                    # recovered as those of a lost worker are.
                    with contextlib.suppress(Exception):
                        self._release_ready()
                    raise
                finally:
                    for companion in reversed(running):
                        companion.stop()
        finally:
            if self._notifier is not None:
                self._notifier.stop()
            self.store.stop_worker(self.id, at=self.clock())

    def _loop(self, session: processes.Session) -> None:
        opts = self.options
        next_claim = next_beat = next_reap = 0.0
        while True:
            now = time.monotonic()
            if self._killing and (session.running or self._ready):
                session.kill_all("run stopped: its worker was shut down")
                self._release_ready()
            if self._draining and not session.running and not self._ready:
                self._recorder.flush(force=True)
                self._prune()
                return
            if self._ready and session.free > 0:
                self._start(session, self._take_ready(session.free))
            if self._recorder.has_finished and not self._ready:
                # A run has ended and none claimed ahead took its slot: claim at once rather
                # than after the poll interval. The claim writes what the runs reported
                # first, in its own transaction, so it sees the slot (and the job's limit)
                # free.
                next_claim = now
            if self._draining and self._recorder.has_finished:
                self._recorder.flush(force=True)
                self._wake_notifier()
            if not self._draining and session.free > 0 and now >= next_claim:
                asked = session.free
                started = self._claim_and_start(session, asked)
                next_claim = now if started == asked else now + opts.poll
                if (
                    self.exit_when_idle
                    and started == 0
                    and not session.running
                    and not self._ready
                    and not self._waiting()
                ):
                    self._recorder.flush(force=True)
                    self._prune()
                    return
            if now >= next_beat:
                at = self.clock()
                lease_until = at + dt.timedelta(seconds=opts.lease)
                for run_id in self.store.heartbeat(self.id, at=at, lease_until=lease_until):
                    if not session.stop(run_id, grace=opts.grace):
                        self._end_stopped(run_id)
                if self._on_heartbeat is not None:
                    self._on_heartbeat()
                    next_claim = now  # a tick may have queued runs
                next_beat = now + opts.heartbeat
            if now >= next_reap:
                self.store.recover_lost_runs(at=self.clock())
                self._prune()
                next_reap = now + opts.reap_every
            session.poll(min(opts.poll, max(0.0, next_beat - time.monotonic())))
            if (
                self._recorder.has_finished
                and self._recorder.due
                and (self._ready or session.free == 0)
            ):
                # Ended runs whose slots went to runs claimed ahead: no claim writes them
                # now, so they are written at the recorder's pace.
                self._recorder.flush(force=True)
                self._wake_notifier()

    def _ahead(self) -> int:
        """How many runs to claim ahead now: ``prefetch`` while runs here are short."""
        typical = self._recorder.typical_run
        if typical is None or typical >= self.options.prefetch_below:
            return 0
        return self._prefetch

    def _take_ready(self, most: int) -> list[records.Run]:
        return [self._ready.popleft() for _ in range(min(most, len(self._ready)))]

    def _end_stopped(self, run_id: str) -> None:
        """End run ``run_id`` as KILLED if it is one claimed ahead (its stop was asked)."""
        for run in self._ready:
            if run.id == run_id:
                self._ready.remove(run)
                self._recorder.end_unstarted(
                    run,
                    states.RunState.KILLED,
                    "stopped by request",
                    at=time.time(),
                    follow_up=self._follow_up(self._job(run.job_id)),
                )
                return

    def _release_ready(self) -> None:
        """Put the runs claimed ahead back in the queue, in their place: this worker stops
        before it starts them, and another (or the next) takes them."""
        if not self._ready:
            return
        run_ids = [run.id for run in self._ready]
        self._ready.clear()
        self.store.release_runs(
            run_ids,
            worker_id=self.id,
            at=self.clock(),
            reason=f"back in the queue: {self.name} stopped before starting it",
        )

    def _wake_notifier(self) -> None:
        """Runs ended and what they noticed is written: have it delivered now (when a run
        of a job with hooks or retries was among them; no other run writes notices)."""
        if self._notifier is not None and self._recorder.take_followed_up():
            self._notifier.wake()

    def _waiting(self) -> bool:
        """Whether our job still has queued runs: retries waiting out their backoff, or runs
        held back by a tag limit."""
        return self.job_id is not None and self.store.queued_count(self.job_id) > 0

    def _prune(self) -> None:
        """Delete runs beyond their job's ``max_retained_runs``, with their files."""
        if self._artifacts is None:
            return
        pruned = self.store.prune_runs()
        if pruned.run_ids:
            self._artifacts.discard(pruned.run_ids, pruned.unused, pruned.still_used)
            if self._workdirs is not None:
                self._workdirs.discard(pruned.run_ids)

    def _claim_and_start(self, session: processes.Session, asked: int) -> int:
        """Claim runs for ``asked`` free slots (and as many ahead as ``prefetch`` allows)
        and start them; how many started."""
        # What the runs reported since the last write goes in the claim's transaction.
        changes, finished = self._recorder.take()
        at = self.clock()
        claimed = self.store.claim_runs(
            job_id=self.job_id,
            worker=self.name,
            limit=asked + self._ahead(),
            at=at,
            worker_id=self.id,
            lease_until=at + dt.timedelta(seconds=self.options.lease),
            within_limits=self.job_id is None,
            changes=changes,
        )
        self._recorder.written(finished)
        if finished:
            self._wake_notifier()
        self._ready.extend(claimed[asked:])
        self._start(session, claimed[:asked])
        return min(len(claimed), asked)

    def _start(self, session: processes.Session, runs: Sequence[records.Run]) -> None:
        for run in runs:
            job = self._job(run.job_id)
            follow_up = self._follow_up(job)
            try:
                place = self._place(job)
                pipeline = self._pipeline(job, place)
            except errors.RunyardError as exc:
                self._recorder.end_unstarted(
                    run,
                    states.RunState.FAILURE,
                    exc.message,
                    at=time.time(),
                    kinds=("LoadError",),
                    follow_up=follow_up,
                )
                continue
            self._recorder.track(run, pipeline, follow_up=follow_up, note=place.note)
            workdir = None
            if place.source_root is not None and self._workdirs is not None:
                workdir = str(self._workdirs.run_dir(run.id))
            session.start(
                processes.RunTask(
                    run.id,
                    run.job_id,
                    run.params,
                    pipeline_ref=place.reference,
                    workdir=workdir,
                    source_root=place.source_root,
                    project_root=place.project_root,
                    data_dir=place.data_dir,
                    env=self._run_env,
                    run_timeout=job.run_timeout,
                    memory_limit_mb=job.memory_limit_mb,
                    reuse=run.reuse,
                    step_timeouts={
                        n.name: n.step.timeout for n in pipeline if n.step.timeout is not None
                    },
                ),
                pipeline,
            )

    @staticmethod
    def _follow_up(job: records.Job) -> bool:
        """Whether a run's end must look for a retry or notices: its job has a retry policy
        or hooks."""
        return job.retry is not None or bool(job.hooks)

    def _job(self, job_id: str) -> records.Job:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = self.store.get_job(job_id)
        return job

    def _place(self, job: records.Job) -> _Place:
        """Where ``job``'s runs load their pipeline from: the copy of its snapshot on this
        machine (written the first time) when it has one. Raises ``RunyardError`` when the
        snapshot is gone or damaged."""
        place = self._places.get(job.id)
        if place is not None:
            return place
        if job.snapshot_id is None or self._workdirs is None:
            place = _Place(job.pipeline_ref)
        else:
            snapshot = self.store.get_snapshot(job.snapshot_id)
            source = self._workdirs.source(snapshot)
            reference = job.pipeline_ref
            if reference:
                reference = self._workdirs.reference(snapshot, reference)
            if self._environment is None:
                self._environment = environment.capture()
            differs = snapshots.environment_difference(snapshot.environment, self._environment)
            note = f"environment differs from snapshot {snapshot.id[:12]}: {differs}"
            place = _Place(
                reference,
                str(source),
                snapshot.root,
                snapshot.data_dir,
                note if differs else None,
            )
        self._places[job.id] = place
        return place

    def _pipeline(self, job: records.Job, place: _Place) -> pipelines.PipelineDefinition:
        pipeline = self._pipelines.get(job.id)
        if pipeline is None:
            if self._fixed is None and place.source_root is not None:
                loader.use_source(place.source_root)
            pipeline = self._fixed or self._loader.load(job.id, place.reference)
            if pipeline.version != job.pipeline_version:
                raise errors.LoadError(
                    f"pipeline {job.pipeline_name!r} at {job.pipeline_ref} is now version "
                    f"{pipeline.version}, but the job was made for {job.pipeline_version}; "
                    "create a new job"
                )
            self._pipelines[job.id] = pipeline
        return pipeline

    def _resolve_task(self, task: processes.RunTask) -> pipelines.PipelineDefinition:
        """The run's pipeline, from the task alone, in whichever process forks the run (a
        fork server must not touch the store). A worker with a fixed pipeline forks its
        runs from a fork of itself; one without serves them from a launched fork server
        (see ``ProcessExecutor.session``), and resolves here only for direct forks."""
        if self._fixed is not None:
            return self._fixed
        return self._loader(task)
