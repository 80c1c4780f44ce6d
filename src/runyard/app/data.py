"""Data repos and data pipelines, as the edges call them (``Runyard.data``).

A commit to a branch makes a data job for every pipeline downstream of it, all with the
commit's id as their global ID; ``run_job_set`` executes them here (the foreground), or an
engine's ``DataJobPoller`` picks them up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import yaml

from runyard import errors
from runyard.core import datapipelines as dp
from runyard.core import datarepos, records
from runyard.storage import datastore
from runyard.storage import snapshots as snapshots_store
from runyard.worker import datajobs

__all__ = ["DataService", "ListedFile", "read_spec_file"]

Clock = Callable[[], dt.datetime]
_S = dp.DataJobState
_CUTS_KEPT = 8  # jobs whose datums' input paths ``page_datums`` keeps (see ``_cut_datums``)


def _new_id() -> str:
    return uuid.uuid4().hex


class ListedFile:
    """An entry of ``list file``: a file, or a folder with the total size under it."""

    __slots__ = ("count", "digest", "kind", "path", "size")

    def __init__(self, path: str, kind: str, size: int, digest: str | None, count: int) -> None:
        self.path, self.kind, self.size, self.digest, self.count = path, kind, size, digest, count


def read_spec_file(path: str | os.PathLike[str]) -> Any:
    """A pipeline spec file's content (JSON, or YAML for .yaml / .yml); raises
    ``UsageError`` naming the file and what is wrong."""
    file = pathlib.Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.UsageError(f"Cannot read pipeline spec {file}: {exc.strerror or exc}") from exc
    try:
        if file.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise errors.DefinitionError(f"Pipeline spec {file} does not parse: {exc}") from exc


class DataService:
    """Repos, files, commits, pipelines, data jobs and datums of one store."""

    def __init__(
        self,
        data: datastore.DataStore,
        blobs: snapshots_store.SnapshotStore,
        *,
        work_root: pathlib.Path,
        clock: Clock,
    ) -> None:
        self.store = data
        self.blobs = blobs
        self.work_root = work_root
        self.clock = clock
        self._cuts: dict[tuple[object, ...], dict[str, tuple[str, ...]]] = {}
        self._cuts_lock = threading.Lock()

    # -- repos ----------------------------------------------------------------------------

    def create_repo(self, name: str, *, description: str = "") -> datarepos.Repo:
        """A new, empty repo with a ``master`` branch; ``ConflictError`` when it exists."""
        repo = datarepos.Repo(datarepos.check_name(name), description, self.clock())
        self.store.create_repo(repo)
        return repo

    def list_repos(self) -> list[tuple[datarepos.Repo, int, int]]:
        """Each repo with its master head's size in bytes and file count."""
        return self.store.list_repos()

    def get_repo(self, name: str) -> datarepos.Repo:
        return self.store.get_repo(name)

    def branches(self, repo: str) -> list[datarepos.Branch]:
        return self.store.branches(repo)

    def delete_repo(self, name: str) -> None:
        """Delete a repo and its commits. Refused (``ConflictError``) while a pipeline
        reads it or when it is a pipeline's output repo (delete the pipeline instead)."""
        repo = self.store.get_repo(name)
        if repo.pipeline is not None:
            raise errors.ConflictError(
                f"Repo {name!r} is the output of pipeline {repo.pipeline!r}; delete the "
                f"pipeline instead (runyard pipeline delete {repo.pipeline})"
            )
        readers = self._readers(name)
        if readers:
            raise errors.ConflictError(
                f"Repo {name!r} is read by pipeline(s) {', '.join(readers)}; delete them first"
            )
        self.store.delete_repo(name)

    def _readers(self, repo: str) -> list[str]:
        return [
            p.name
            for p in self.store.list_pipelines()
            if any(i.repo == repo for i in p.spec.input_repos)
        ]

    # -- files and commits ----------------------------------------------------------------

    def put_files(
        self,
        target: str | datarepos.Target,
        sources: Iterable[str | os.PathLike[str]],
        *,
        recursive: bool = False,
        description: str = "",
    ) -> tuple[datarepos.Commit, list[dp.DataJob]]:
        """Put local files (folders with ``recursive``) into ``REPO@BRANCH:/path`` as one
        commit; returns it and the data jobs it made (not run yet).

        One file goes to ``/path`` itself, or under it when the target ends with ``/``
        (or is the root); a folder's files go under ``/path`` at their paths inside it.
        Raises ``UsageError`` (a missing file, a folder without ``recursive``, a path
        leaving the repo) or ``NotFoundError`` (no such repo) having stored no commit.
        """
        as_folder = isinstance(target, str) and target.endswith("/")
        if isinstance(target, str):
            target = datarepos.parse_target(target)
        self.store.get_repo(target.repo)
        placed: dict[str, str] = {}
        given = [pathlib.Path(s).expanduser() for s in sources]
        if not given:
            raise errors.UsageError("No file to put; give one or more with -f FILE")
        for source in given:
            if source.is_dir():
                if not recursive:
                    raise errors.UsageError(
                        f"{source} is a folder; add -r to put every file under it"
                    )
                for folder, dirs, names in os.walk(source, followlinks=False):
                    dirs.sort()
                    for name in sorted(names):
                        local = pathlib.Path(folder, name)
                        if local.is_symlink() or not local.is_file():
                            continue
                        inside = local.relative_to(source).as_posix()
                        placed[datarepos.normalize_path(f"{target.path}/{inside}")] = str(local)
            elif source.is_file():
                if as_folder or target.path == "/" or len(given) > 1:
                    where = f"{target.path}/{source.name}"
                else:
                    where = target.path
                placed[datarepos.normalize_path(where)] = str(source)
            else:
                raise errors.UsageError(f"No file {str(source)!r} to put; check the path")
        changes: dict[str, datarepos.FileEntry | None] = {}
        for path, file in placed.items():
            digest, size, _ = self.blobs.put_file(file)
            changes[path] = datarepos.FileEntry(path, digest, size)
        return self._commit(target, changes, description=description)

    def put_bytes(
        self, target: str | datarepos.Target, content: bytes, *, description: str = ""
    ) -> tuple[datarepos.Commit, list[dp.DataJob]]:
        """Put ``content`` as the file ``REPO@BRANCH:/path`` in a new commit."""
        if isinstance(target, str):
            target = datarepos.parse_target(target, need_path=True)
        self.store.get_repo(target.repo)
        with tempfile.NamedTemporaryFile(prefix="runyard-put-") as tmp:
            tmp.write(content)
            tmp.flush()
            digest, size, _ = self.blobs.put_file(tmp.name)
        changes: dict[str, datarepos.FileEntry | None] = {
            target.path: datarepos.FileEntry(target.path, digest, size)
        }
        return self._commit(target, changes, description=description)

    def delete_files(
        self, target: str | datarepos.Target, *, description: str = ""
    ) -> tuple[datarepos.Commit, list[dp.DataJob]]:
        """A new commit without the file or folder ``REPO@BRANCH:/path``."""
        if isinstance(target, str):
            target = datarepos.parse_target(target, need_path=True)
        head = self.store.find_commit(target.repo, target.branch_or_default)
        if not self.store.files(target.repo, head.id, target.path):
            raise errors.NotFoundError(f"No file or folder {target}; list with runyard list file")
        return self._commit(target, {}, description=description, deleted=[target.path])

    def _commit(
        self,
        target: datarepos.Target,
        changes: Mapping[str, datarepos.FileEntry | None],
        *,
        description: str,
        deleted: Iterable[str] = (),
    ) -> tuple[datarepos.Commit, list[dp.DataJob]]:
        commit_id = _new_id()
        branch = target.branch_or_default
        self._check_layout(target.repo, branch, changes, deleted)
        jobs = self._plan(
            [p for p in self.store.list_pipelines() if _reads(p, target.repo, branch)],
            global_id=commit_id,
            origin=(target.repo, branch, commit_id),
        )
        made = self.store.commit(
            repo=target.repo,
            branch=branch,
            commit_id=commit_id,
            changes=changes,
            origin=datarepos.CommitOrigin.USER,
            at=self.clock(),
            description=description,
            deleted_folders=list(deleted),
            jobs=jobs,
        )
        return made, [job for job, _ in jobs]

    def _check_layout(
        self,
        repo: str,
        branch: str,
        changes: Mapping[str, datarepos.FileEntry | None],
        deleted: Iterable[str],
    ) -> None:
        """Refuse (``UsageError``) a commit that would make a path both a file and a
        folder, e.g. /data as a file beside /data/x.csv."""
        head = self._head(repo, branch)
        paths = {e.path for e in self.store.files(repo, head)} if head else set()
        for folder in deleted:
            paths = {p for p in paths if not datarepos.under(p, folder)}
        paths |= {p for p, e in changes.items() if e is not None}
        for path in paths:
            folder = path.rpartition("/")[0]
            while folder:
                if folder in paths:
                    raise errors.UsageError(
                        f"{repo}@{branch} would hold {folder} both as a file and as the folder "
                        f"of {path}; put the file under another name, or delete {folder} first"
                    )
                folder = folder.rpartition("/")[0]

    def _plan(
        self,
        direct: list[dp.Pipeline],
        *,
        global_id: str,
        origin: tuple[str, str, str] | None = None,
        reprocess: bool = False,
        everything: dict[str, dp.Pipeline] | None = None,
    ) -> list[tuple[dp.DataJob, dp.Pipeline]]:
        """The jobs of a new job set: for ``direct`` and every pipeline downstream of them,
        upstream first, each with its input commits (the origin commit, the job set's id for
        an upstream pipeline's repo, else the branch's head). ``everything``: the pipelines
        by name, when one is not stored yet."""
        if everything is None:
            everything = {p.name: p for p in self.store.list_pipelines()}
        return dp.plan_job_set(
            everything,
            direct,
            global_id=global_id,
            heads=self._head,
            now=self.clock(),
            origin=origin,
            reprocess=reprocess,
        )

    def _head(self, repo: str, branch: str) -> str | None:
        for b in self.store.branches(repo):
            if b.name == branch:
                return b.head
        return None

    def commit_of(self, target: str | datarepos.Target) -> datarepos.Commit:
        """The commit ``REPO@BRANCH`` (its head) or ``REPO@COMMIT_ID`` names."""
        if isinstance(target, str):
            target = datarepos.parse_target(target)
        return self.store.find_commit(target.repo, target.ref)

    def list_commits(
        self, repo: str, branch: str | None = None, *, limit: int = 1000, offset: int = 0
    ) -> list[datarepos.Commit]:
        """A repo's commits (of ``branch``), newest first; ``NotFoundError`` for a repo or
        branch that does not exist."""
        return self.store.list_commits(repo, branch, limit=limit, offset=offset)

    def list_files(self, target: str | datarepos.Target) -> list[ListedFile]:
        """The files and folders directly inside ``REPO@REF:/dir`` (or the one file it
        names); a folder's size is the total under it."""
        if isinstance(target, str):
            target = datarepos.parse_target(target)
        commit = self.store.find_commit(target.repo, target.ref)
        entries = self.store.files(target.repo, commit.id, target.path)
        if not entries:
            if target.path == "/":
                return []
            raise errors.NotFoundError(
                f"No file or folder {target.path} in {target.repo}@{commit.id}; list the "
                f"folder above it with `runyard list file {target.repo}@{target.ref or 'master'}"
                f":{target.path.rpartition('/')[0] or '/'}`"
            )
        if len(entries) == 1 and entries[0].path == target.path:
            e = entries[0]
            return [ListedFile(e.path, "file", e.size, e.digest, 1)]
        base = "" if target.path == "/" else target.path
        out: dict[str, ListedFile] = {}
        for e in entries:
            rest = e.path[len(base) + 1 :]
            head, slash, _ = rest.partition("/")
            path = f"{base}/{head}"
            if not slash:
                out[path] = ListedFile(path, "file", e.size, e.digest, 1)
                continue
            folder = out.get(path + "/")
            if folder is None:
                out[path + "/"] = ListedFile(path + "/", "dir", e.size, None, 1)
            else:
                folder.size += e.size
                folder.count += 1
        return [out[k] for k in sorted(out)]

    def read_file(self, target: str | datarepos.Target) -> Iterator[bytes]:
        """The content of the file ``REPO@REF:/path``, in chunks."""
        if isinstance(target, str):
            target = datarepos.parse_target(target, need_path=True)
        entry = self._entry(target)
        with self.blobs.open_blob(entry.digest) as fh:
            while chunk := fh.read(1024 * 1024):
                yield chunk

    def open_file(self, target: str | datarepos.Target) -> BinaryIO:
        if isinstance(target, str):
            target = datarepos.parse_target(target, need_path=True)
        return self.blobs.open_blob(self._entry(target).digest)

    def _entry(self, target: datarepos.Target) -> datarepos.FileEntry:
        commit = self.store.find_commit(target.repo, target.ref)
        found = [e for e in self.store.files(target.repo, commit.id, target.path)]
        exact = [e for e in found if e.path == target.path]
        if exact:
            return exact[0]
        if found:
            raise errors.UsageError(
                f"{target.path} is a folder in {target.repo}@{commit.id}; give -o FOLDER to "
                "get every file under it"
            )
        raise errors.NotFoundError(
            f"No file {target.path} in {target.repo}@{commit.id}; list them with "
            f"`runyard list file {target.repo}@{target.ref or 'master'}:/`"
        )

    def get_files(self, target: str | datarepos.Target, dest: str | os.PathLike[str]) -> int:
        """Write the file (to ``dest``) or every file under the folder (under the folder
        ``dest``, at their paths below it) that ``REPO@REF:/path`` names; returns the count.
        """
        if isinstance(target, str):
            target = datarepos.parse_target(target)
        commit = self.store.find_commit(target.repo, target.ref)
        entries = self.store.files(target.repo, commit.id, target.path)
        if not entries:
            raise errors.NotFoundError(f"No file or folder {target.path} in {target.repo}")
        out = pathlib.Path(dest)
        if len(entries) == 1 and entries[0].path == target.path:
            if out.is_dir():
                out = out / target.path.rpartition("/")[2]
            with self.blobs.open_blob(entries[0].digest) as src, open(out, "wb") as dst:
                while chunk := src.read(1024 * 1024):
                    dst.write(chunk)
            return 1
        base = "" if target.path == "/" else target.path
        real = out.resolve()
        for e in entries:
            where = (real / e.path[len(base) + 1 :]).resolve()
            if not where.is_relative_to(real):  # normalized paths cannot, but be sure
                raise errors.UsageError(f"{e.path} would land outside {out}; refusing it")
            where.parent.mkdir(parents=True, exist_ok=True)
            with self.blobs.open_blob(e.digest) as src, open(where, "wb") as dst:
                while chunk := src.read(1024 * 1024):
                    dst.write(chunk)
        return len(entries)

    # -- pipelines ------------------------------------------------------------------------

    def create_pipeline(
        self,
        raw: Mapping[str, Any],
        *,
        base_dir: str | None = None,
        update: bool = False,
        reprocess: bool = False,
    ) -> tuple[dp.Pipeline, list[dp.DataJob]]:
        """Create (or with ``update`` change) a pipeline from its spec; a job runs at once
        over its inputs' heads when they have commits. With ``reprocess`` (update only) the
        pipeline gets a new salt, so every datum is processed again.

        Raises ``DefinitionError`` for a bad spec, ``NotFoundError`` for an input repo that
        does not exist, ``ConflictError`` when the name is taken (without ``update``) or
        the inputs would make a cycle.
        """
        spec = dp.parse_spec(raw, base_dir=base_dir if base_dir is not None else os.getcwd())
        for i in spec.input_repos:
            self.store.get_repo(i.repo)
        now = self.clock()
        if update:
            old = self.store.get_pipeline(spec.name)
            self._check_no_cycle(spec)
            pipeline = dp.Pipeline(
                spec,
                old.version + 1,
                secrets.token_hex(16) if reprocess else old.salt,
                old.created_at,
                now,
            )
        else:
            pipeline = dp.Pipeline(spec, 1, secrets.token_hex(16), now, now)
        jobs: list[tuple[dp.DataJob, dp.Pipeline]] = []
        if any(self._head(i.repo, i.branch) for i in spec.input_repos):
            everything = {p.name: p for p in self.store.list_pipelines()}
            everything[pipeline.name] = pipeline
            jobs = self._plan(
                [pipeline], global_id=_new_id(), reprocess=reprocess, everything=everything
            )
        if update:
            self.store.update_pipeline(pipeline, jobs)
        else:
            self.store.create_pipeline(pipeline, jobs)
        return pipeline, [job for job, _ in jobs]

    def _check_no_cycle(self, spec: dp.PipelineSpec) -> None:
        everything = {p.name: p.spec for p in self.store.list_pipelines()}
        everything[spec.name] = spec
        seen: set[str] = set()
        stack = [i.repo for i in spec.input_repos]
        while stack:
            repo = stack.pop()
            if repo == spec.name:
                raise errors.ConflictError(
                    f"Pipeline {spec.name!r} would read its own output through its inputs; "
                    "pipelines must form a DAG"
                )
            if repo in seen or repo not in everything:
                continue
            seen.add(repo)
            stack.extend(i.repo for i in everything[repo].input_repos)

    def get_pipeline(self, name: str) -> dp.Pipeline:
        return self.store.get_pipeline(name)

    def list_pipelines(self) -> list[dp.Pipeline]:
        return self.store.list_pipelines()

    def delete_pipeline(self, name: str) -> None:
        """Delete a pipeline with its jobs and output repo; refused (``ConflictError``)
        while another pipeline reads its output or one of its jobs is running."""
        self.store.get_pipeline(name)
        readers = [r for r in self._readers(name) if r != name]
        if readers:
            raise errors.ConflictError(
                f"Pipeline {name!r}'s output is read by pipeline(s) {', '.join(readers)}; "
                "delete them first"
            )
        active = [j for j in self.store.list_jobs(pipeline=name) if not j.state.finished]
        if active:
            raise errors.ConflictError(
                f"Pipeline {name!r} has unfinished job(s) {', '.join(j.id for j in active)}; "
                f"stop them first (runyard stop job {name}@{active[0].id})"
            )
        self.store.delete_pipeline(name)

    # -- data jobs ------------------------------------------------------------------------

    def list_jobs(
        self,
        *,
        job_id: str | None = None,
        pipeline: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dp.DataJob]:
        return self.store.list_jobs(job_id=job_id, pipeline=pipeline, limit=limit, offset=offset)

    def get_job(self, pipeline: str, job_id: str) -> dp.DataJob:
        return self.store.get_job(pipeline, job_id)

    def transitions(self, job: dp.DataJob) -> list[records.Event]:
        """``job``'s state changes, oldest first, as the event log has them."""
        return self.store.transitions(job.pipeline, job.id)

    def job_spec(self, job: dp.DataJob) -> dp.PipelineSpec:
        return self.store.job_spec(job.pipeline, job.id)[0]

    def resolve_jobs(self, ref: str) -> list[dp.DataJob]:
        """The jobs ``PIPELINE@ID`` (one) or ``ID`` (its job set; a prefix will do) name;
        raises ``NotFoundError``."""
        pipeline, at, job_id = ref.rpartition("@")
        if at:
            return [self.store.get_job(pipeline, job_id)]
        found = self.store.list_jobs(job_id=job_id)
        if not found or not job_id:
            raise errors.NotFoundError(f"No data job {ref!r}; list them with `runyard list job`")
        ids = {j.id for j in found}
        if len(ids) > 1:
            raise errors.NotFoundError(f"Job id {job_id!r} is ambiguous; give more of it")
        return found

    def stop_job(self, ref: str) -> list[dp.DataJob]:
        """Stop the job(s) ``ref`` names (see ``resolve_jobs``): ones not started end KILLED
        now, running ones when their worker sees it. Returns those that were unfinished."""
        stopped = []
        for job in self.resolve_jobs(ref):
            if self.store.request_stop(job, at=self.clock()):
                stopped.append(job)
        return stopped

    def wait_job(
        self, ref: str, *, timeout: float | None = None, poll: float = 0.1
    ) -> list[dp.DataJob]:
        """Block until every job ``ref`` names has ended; raises ``TimeoutError``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = self.resolve_jobs(ref)
            if all(j.state.finished for j in jobs):
                return jobs
            if deadline is not None and time.monotonic() >= deadline:
                left = ", ".join(f"{j.pipeline}@{j.id}" for j in jobs if not j.state.finished)
                raise TimeoutError(f"Data job(s) {left} still unfinished after {timeout} s")
            time.sleep(poll)

    def list_datums(self, ref: str) -> list[dp.DatumRecord]:
        """The datums of the job ``PIPELINE@ID``."""
        jobs = self.resolve_jobs(ref)
        if len(jobs) != 1:
            names = ", ".join(f"{j.pipeline}@{j.id}" for j in jobs)
            raise errors.UsageError(f"{ref!r} names several jobs; give one of {names}")
        job = jobs[0]
        records = self.store.list_datums(job.pipeline, job.id)
        if job.data_skipped:
            recorded = {r.id for r in records}
            records += [
                dp.DatumRecord(job.id, job.pipeline, i, dp.DatumState.SKIPPED, tuple(d.paths))
                for i, d in self.executor().datums_of(job).items()
                if i not in recorded
            ]
        return sorted(records, key=lambda r: (str(r.state), r.id))

    def page_datums(
        self, job: dp.DataJob, *, limit: int, offset: int = 0
    ) -> tuple[list[dp.DatumRecord], int]:
        """One page of ``job``'s datums, failed first, then processed, then skipped (each
        by id), and how many it has. The skipped datums a job keeps no record of are cut
        again from its input commits, and only for a page that reaches them."""
        records, counts = self.store.page_datums(job.pipeline, job.id, limit=limit, offset=offset)
        recorded = sum(counts.values())
        unrecorded = max(job.data_skipped - counts.get(dp.DatumState.SKIPPED, 0), 0)
        if unrecorded and offset + limit > recorded:
            known = {r.id for r in self.store.list_datums(job.pipeline, job.id)}
            cut = self._cut_datums(job)
            skipped = [i for i in cut if i not in known]
            start = max(offset - recorded, 0)
            records += [
                dp.DatumRecord(job.id, job.pipeline, i, dp.DatumState.SKIPPED, cut[i])
                for i in skipped[start : start + limit - len(records)]
            ]
            unrecorded = len(skipped)
        return records, recorded + unrecorded

    def _cut_datums(self, job: dp.DataJob) -> dict[str, tuple[str, ...]]:
        """The input paths of each of ``job``'s datums, by id in id order. The same job
        over the same input commits always cuts the same datums, so the last few jobs' cuts
        are kept: paging through a job of 10,000 datums, or following it live, cuts once."""
        # Asked only once a job counted skipped datums: its input commits exist by then.
        key = (job.pipeline, job.id, job.pipeline_version, job.input_commits)
        with self._cuts_lock:
            found = self._cuts.pop(key, None)
        if found is None:
            cut = self.executor().datums_of(job)
            found = {i: tuple(cut[i].paths) for i in sorted(cut)}
        with self._cuts_lock:
            self._cuts[key] = found  # the newest last
            while len(self._cuts) > _CUTS_KEPT:
                del self._cuts[next(iter(self._cuts))]
        return found

    def datum(self, datum_id: str, *, job_id: str | None = None) -> dp.DatumRecord:
        return self.store.find_datum(datum_id, job_id)

    def executor(
        self, *, on_finished: Callable[[dp.DataJob], None] | None = None
    ) -> datajobs.DataJobExecutor:
        return datajobs.DataJobExecutor(
            self.store,
            self.blobs,
            work_root=self.work_root,
            clock=self.clock,
            on_finished=on_finished,
        )

    def run_job_set(
        self, global_id: str, *, on_finished: Callable[[dp.DataJob], None] | None = None
    ) -> list[dp.DataJob]:
        """Execute here the jobs of job set ``global_id`` that no engine took."""
        return self.executor(on_finished=on_finished).run_set(global_id)


def _reads(pipeline: dp.Pipeline, repo: str, branch: str) -> bool:
    return any(i.repo == repo and i.branch == branch for i in pipeline.spec.input_repos)


def _reads_output(reader: dp.Pipeline, pipeline: dp.Pipeline) -> bool:
    return reader.name != pipeline.name and _reads(
        reader, pipeline.name, pipeline.spec.output_branch
    )
