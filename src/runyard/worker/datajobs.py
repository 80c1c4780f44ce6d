"""Executing data jobs: a job's datums cut from its input commits, the ones processed before
skipped (their outputs reused), the others run in a pool of ``parallelism`` processes, the
output committed to the pipeline's repo, and the output copied to its egress.

``DataJobExecutor`` runs claimed jobs (a foreground ``runyard put file`` runs the jobs its
commit made; ``DataJobPoller`` is the thread of ``runyard serve`` / ``runyard worker`` that
claims any). A job waits in STARTING for the jobs of its job set that write its inputs;
when one of them did not succeed, it ends FAILURE without running, saying which.
"""

from __future__ import annotations

import concurrent.futures as futures
import datetime as dt
import gc
import itertools
import os
import pathlib
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable

import fsspec

from runyard import errors
from runyard.core import datapipelines as dp
from runyard.core import datarepos, datums
from runyard.execution import datumrunner
from runyard.storage import datastore
from runyard.storage import snapshots as snapshots_store

__all__ = ["DataJobExecutor", "DataJobPoller"]

Clock = Callable[[], dt.datetime]
_S = dp.DataJobState
_FLUSH_EVERY = 0.25  # seconds between writes of finished datums while a job runs


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Stopped(Exception):
    def __init__(self, state: dp.DataJobState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class DataJobExecutor:
    """Executes data jobs of one store; datums' folders go under ``work_root``."""

    def __init__(
        self,
        data: datastore.DataStore,
        blobs: snapshots_store.SnapshotStore,
        *,
        work_root: pathlib.Path,
        clock: Clock = _utcnow,
        poll: float = 0.1,
        lease: float = 30.0,
        on_finished: Callable[[dp.DataJob], None] | None = None,
    ) -> None:
        self.data = data
        self.blobs = blobs
        self.work_root = work_root
        self.clock = clock
        self.poll = poll
        self.lease = lease  # a job whose heartbeat is older was lost with its worker
        self.on_finished = on_finished
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def recover(self) -> list[dp.DataJob]:
        """Restart the jobs whose worker was lost (no heartbeat for ``lease`` seconds)."""
        return self.data.recover_lost_jobs(at=self.clock(), lease=self.lease)

    def run_set(self, global_id: str) -> list[dp.DataJob]:
        """Execute the jobs of job set ``global_id`` that no worker took yet, upstream
        first; returns the set's jobs as they ended."""
        self.recover()
        while True:
            job = self.data.claim_job(worker=self.name, at=self.clock(), job_id=global_id)
            if job is None:
                break
            self.execute(job)
        return self.data.list_jobs(job_id=global_id)

    def run_next(self) -> dp.DataJob | None:
        """Claim and execute the oldest job waiting; None when there was none."""
        job = self.data.claim_job(worker=self.name, at=self.clock())
        return self.execute(job) if job is not None else None

    def execute(self, job: dp.DataJob) -> dp.DataJob:
        """Execute a claimed (STARTING) job to its end; returns it ended."""
        spec, salt = self.data.job_spec(job.pipeline, job.id)
        deadline = time.monotonic() + spec.job_timeout if spec.job_timeout is not None else None
        try:
            commits = self._wait_for_inputs(job, spec, deadline)
            ended = self._run(job, spec, salt, commits, deadline)
        except _Stopped as stop:
            ended = self._end(job, stop.state, stop.reason)
        except errors.RunyardError as exc:
            ended = self._end(job, _S.FAILURE, exc.message)
        except KeyboardInterrupt:
            self._end(job, _S.KILLED, "interrupted (Ctrl-C) while it ran here")
            raise
        if self.on_finished is not None:
            self.on_finished(ended)
        return ended

    # -- the steps of a job ---------------------------------------------------------------

    def _current(self, job: dp.DataJob) -> dp.DataJob:
        return self.data.get_job(job.pipeline, job.id)

    def _check(self, job: dp.DataJob, deadline: float | None) -> None:
        """Renew the job's heartbeat; raises ``_Stopped`` when it was asked to stop or ran
        past its ``job_timeout``."""
        self.data.update_job(job.pipeline, job.id, heartbeat_at=self.clock())
        now = self._current(job)
        if now.stop_requested:
            raise _Stopped(_S.KILLED, "stopped by a user")
        if deadline is not None and time.monotonic() > deadline:
            raise _Stopped(_S.KILLED, "it ran longer than its job_timeout")

    def _wait_for_inputs(
        self, job: dp.DataJob, spec: dp.PipelineSpec, deadline: float | None
    ) -> dict[str, str | None]:
        """Each input's commit id (None: its branch had none); waits for the upstream jobs
        of the same job set. Raises ``_Stopped`` when one of them did not succeed."""
        commits: dict[str, str | None] = {n: c or None for n, c in job.input_commits}
        for pfs in spec.input_repos:
            repo = self.data.get_repo(pfs.repo)
            if repo.pipeline is None:
                continue
            try:
                upstream = self.data.get_job(repo.pipeline, job.id)
            except errors.NotFoundError:
                continue
            while not upstream.state.finished:
                self._check(job, deadline)
                time.sleep(self.poll)
                upstream = self.data.get_job(repo.pipeline, job.id)
            if upstream.state is not _S.SUCCESS:
                why = f": {upstream.reason}" if upstream.reason else ""
                raise _Stopped(
                    _S.FAILURE,
                    f"upstream job {upstream.pipeline}@{upstream.id} ended "
                    f"{upstream.state}{why}; this job did not run",
                )
            commits[pfs.name] = upstream.output_commit
        return commits

    def datums_of(self, job: dp.DataJob) -> dict[str, datums.Datum]:
        """A job's datums by id, cut again from its input commits (as it cut them)."""
        spec, salt = self.data.job_spec(job.pipeline, job.id)
        commits = {name: commit or None for name, commit in job.input_commits}
        return self._keyed(spec.input, commits, salt)

    def _keyed(
        self, spec_input: datums.Input, commits: dict[str, str | None], salt: str
    ) -> dict[str, datums.Datum]:
        keyed: dict[str, datums.Datum] = {}
        for d in self._datums(spec_input, commits):
            keyed.setdefault(d.id_for(salt), d)
        return keyed

    def _datums(
        self, spec_input: datums.Input, commits: dict[str, str | None]
    ) -> list[datums.Datum]:
        """The datums ``spec_input`` cuts from the input commits (none from an input whose
        branch had no commit)."""
        if isinstance(spec_input, datums.PfsInput):
            commit = commits.get(spec_input.name)
            if commit is None:
                return []
            entries = self.data.files(spec_input.repo, commit)
            return datums.glob_datums(spec_input, commit, entries)
        groups = [self._datums(sub, commits) for sub in spec_input.inputs]
        return datums.cross(groups) if spec_input.kind == "cross" else datums.union(groups)

    def _run(
        self,
        job: dp.DataJob,
        spec: dp.PipelineSpec,
        salt: str,
        commits: dict[str, str | None],
        deadline: float | None,
    ) -> dp.DataJob:
        keyed = self._keyed(spec.input, commits, salt)
        ids = list(keyed)
        reused = {} if job.reprocess else self.data.reusable(job.pipeline, ids)
        # Skipped datums get no record: ``datums_of`` tells them from the input commits.
        skipped = [(i, reused[i]) for i in ids if i in reused]
        running = self.data.move_job(
            job,
            _S.RUNNING,
            at=self.clock(),
            input_commits=[[n, c or ""] for n, c in sorted(commits.items())],
            data_total=len(ids),
        )
        if running is None:
            raise _Stopped(_S.KILLED, "stopped by a user")
        job = running
        self.data.update_job(job.pipeline, job.id, data_skipped=len(skipped))
        todo = [i for i in ids if i not in reused]
        results = self._process(job, spec, keyed, todo, deadline)
        failed = [r for r in results if r.state is dp.DatumState.FAILURE]
        if failed:
            first = failed[0]
            return self._end(
                job,
                _S.FAILURE,
                f"{len(failed)} of {len(ids)} datum(s) failed (first: {first.id}: "
                f"{first.error}); see `runyard list datum {job.pipeline}@{job.id}` and "
                f"`runyard logs --datum {first.id}`",
            )
        outputs: dict[str, datarepos.FileEntry] = {}
        writers: dict[str, str] = {}
        done = [*skipped, *((r.id, r.outputs) for r in results)]
        for datum_id, entries in done:
            for entry in entries:
                seen = outputs.get(entry.path)
                if seen is not None and seen.digest != entry.digest:
                    return self._end(
                        job,
                        _S.FAILURE,
                        f"datums {writers[entry.path]} and {datum_id} both wrote "
                        f"{entry.path} with different contents; write distinct paths",
                    )
                outputs[entry.path] = entry
                writers[entry.path] = datum_id
        if spec.egress is not None:
            moved = self.data.move_job(job, _S.EGRESS, at=self.clock())
            if moved is None:
                raise _Stopped(_S.KILLED, "stopped by a user")
            job = moved
            try:
                self._egress(spec.egress, outputs)
            except OSError as exc:
                return self._end(job, _S.FAILURE, f"egress to {spec.egress} failed: {exc}")
        finishing = self.data.move_job(job, _S.FINISHING, at=self.clock())
        if finishing is None:
            raise _Stopped(_S.KILLED, "stopped by a user")
        job = finishing
        self.data.commit(
            repo=job.pipeline,
            branch=spec.output_branch,
            commit_id=job.id,
            changes=outputs,
            origin=datarepos.CommitOrigin.AUTO,
            at=self.clock(),
            description=f"output of job {job.pipeline}@{job.id}",
            replace=True,
            jobs=self._late_readers(job, spec),
            job_update=(job.pipeline, job.id, {"output_commit": job.id}),
        )
        ended = self.data.move_job(job, _S.SUCCESS, at=self.clock())
        return ended if ended is not None else self._current(job)

    def _late_readers(
        self, job: dp.DataJob, spec: dp.PipelineSpec
    ) -> list[tuple[dp.DataJob, dp.Pipeline]]:
        """Jobs for the pipelines that read this job's output but have no job in its job
        set (they were made after the set was): the output commit triggers them."""
        everything = {p.name: p for p in self.data.list_pipelines()}
        have = {j.pipeline for j in self.data.list_jobs(job_id=job.id)}
        readers = [
            p
            for p in everything.values()
            if p.name not in have
            and any(
                i.repo == job.pipeline and i.branch == spec.output_branch
                for i in p.spec.input_repos
            )
        ]
        if not readers:
            return []
        planned = dp.plan_job_set(
            everything,
            readers,
            global_id=job.id,
            heads=self._head,
            now=self.clock(),
            origin=(job.pipeline, spec.output_branch, job.id),
        )
        return [(j, p) for j, p in planned if p.name not in have]

    def _head(self, repo: str, branch: str) -> str | None:
        return next((b.head for b in self.data.branches(repo) if b.name == branch), None)

    def _process(
        self,
        job: dp.DataJob,
        spec: dp.PipelineSpec,
        keyed: dict[str, datums.Datum],
        todo: list[str],
        deadline: float | None,
    ) -> list[datumrunner.DatumResult]:
        """Run the datums ``todo`` in a pool of ``spec.parallelism``, writing their records
        as they end; raises ``_Stopped`` (having killed what ran) on a stop or timeout."""
        if not todo:
            return []
        folder = self.work_root / "datums" / f"{job.pipeline}-{job.id}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        runner = datumrunner.DatumRunner(
            pipeline=job.pipeline, job_id=job.id, spec=spec, blobs=self.blobs, work_root=folder
        )
        results: list[datumrunner.DatumResult] = []
        pending_records: list[dp.DatumRecord] = []
        stats = {"processed": 0, "failed": 0, "dl": 0, "ul": 0, "dlt": 0.0, "ult": 0.0, "pt": 0.0}
        # The job's datums and reused outputs are many long-lived objects: keep the
        # collector from walking them again and again while the pool makes garbage.
        gc.freeze()
        pool = futures.ThreadPoolExecutor(max_workers=spec.parallelism)
        # A few datums queued per thread, not all: waiting on a set of futures costs a
        # pass over the set, and a job may have 100,000 datums.
        window = spec.parallelism * 4
        queue = iter(todo)
        try:
            waiting = {
                pool.submit(runner.run, keyed[i], i) for i in itertools.islice(queue, window)
            }
            next_flush = time.monotonic() + _FLUSH_EVERY
            while waiting:
                finished, waiting = futures.wait(
                    waiting, timeout=_FLUSH_EVERY, return_when=futures.FIRST_COMPLETED
                )
                for i in itertools.islice(queue, len(finished)):
                    waiting.add(pool.submit(runner.run, keyed[i], i))
                for fut in finished:
                    result = fut.result()
                    results.append(result)
                    pending_records.append(_record(job, result))
                    stats["processed" if result.state is dp.DatumState.SUCCESS else "failed"] += 1
                    stats["dl"] += result.download_bytes
                    stats["ul"] += result.upload_bytes
                    stats["dlt"] += result.download_time
                    stats["ult"] += result.upload_time
                    stats["pt"] += result.seconds - result.download_time - result.upload_time
                if time.monotonic() >= next_flush or not waiting:
                    self._flush(job, pending_records, stats)
                    pending_records = []
                    next_flush = time.monotonic() + _FLUSH_EVERY
                    self._check(job, deadline)
        except BaseException:  # a stop, a timeout, Ctrl-C: kill what runs, run no more
            runner.stop()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()
            if pending_records:
                self._flush(job, pending_records, stats)
            shutil.rmtree(folder, ignore_errors=True)
        return results

    def _flush(
        self, job: dp.DataJob, records: list[dp.DatumRecord], stats: dict[str, float]
    ) -> None:
        self.data.add_datums(
            records,
            counts=(
                job.pipeline,
                job.id,
                {
                    "data_processed": int(stats["processed"]),
                    "data_failed": int(stats["failed"]),
                    "download_bytes": int(stats["dl"]),
                    "upload_bytes": int(stats["ul"]),
                    "download_time": stats["dlt"],
                    "upload_time": stats["ult"],
                    "process_time": max(0.0, stats["pt"]),
                },
            ),
            at=self.clock(),
        )

    def _egress(self, url: str, outputs: dict[str, datarepos.FileEntry]) -> None:
        """Copy the output files under ``url`` (a folder or an fsspec URL)."""
        fs, root = fsspec.core.url_to_fs(url)
        root = str(root).rstrip("/")
        for path, entry in sorted(outputs.items()):
            target = f"{root}{path}"
            fs.makedirs(target.rpartition("/")[0] or "/", exist_ok=True)
            with self.blobs.open_blob(entry.digest) as src, fs.open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)

    def _end(self, job: dp.DataJob, state: dp.DataJobState, reason: str) -> dp.DataJob:
        current = self._current(job)
        if current.state.finished:
            return current
        ended = self.data.move_job(current, state, at=self.clock(), reason=reason)
        return ended if ended is not None else self._current(job)


def _record(job: dp.DataJob, result: datumrunner.DatumResult) -> dp.DatumRecord:
    return dp.DatumRecord(
        job_id=job.id,
        pipeline=job.pipeline,
        id=result.id,
        state=result.state,
        files=result.files,
        outputs=result.outputs,
        tries=result.tries,
        seconds=result.seconds,
        logs=result.logs,
        error=result.error,
    )


class DataJobPoller:
    """The thread of an engine that claims and executes data jobs until stopped (an
    ``engine.Companion``)."""

    def __init__(self, executor: DataJobExecutor, *, idle: float = 0.2) -> None:
        self.executor = executor
        self.idle = idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="runyard-datajobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        next_recovery = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_recovery:
                    self.executor.recover()
                    next_recovery = time.monotonic() + 2.0
                job = self.executor.run_next()
            except errors.RunyardError:
                job = None  # the store was busy or gone; try again after a pause
            if job is None:
                self._stop.wait(self.idle)
