"""Fixtures for the storage suites: an open store per backend, fresh databases, records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from runyard.core import hooks as hooks_mod
from runyard.core import records, retries, states
from runyard.storage import store as store_mod

# Microseconds on purpose: the store must keep them.
T0 = dt.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)

Clock = Callable[[float], dt.datetime]


@pytest.fixture
def at() -> Clock:
    """``at(seconds)``: a fixed, timezone-aware UTC time ``seconds`` after ``T0``."""

    def at_(seconds: float) -> dt.datetime:
        return T0 + dt.timedelta(seconds=seconds)

    return at_


@pytest.fixture
def store(database_url: str) -> Iterator[store_mod.Store]:
    """An open store on an empty, migrated database: ``[sqlite]`` and ``[postgresql]``."""
    opened = store_mod.Store.open(database_url)
    yield opened
    opened.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The URL of a database no runyard has touched: no tables at all."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    new_database: Callable[[], str] = request.getfixturevalue("pg_new_database")
    return new_database()


@dataclasses.dataclass
class JobBuilder:
    """Builds real ``Job`` / ``Run`` records; ``create`` also stores them."""

    store: store_mod.Store

    def build(
        self,
        *,
        runs: int = 3,
        job_id: str | None = None,
        pipeline: str = "etl",
        tags: Sequence[str] = (),
        created_at: dt.datetime = T0,
        shuffled: bool = False,
        max_parallel_runs: int = 100,
        priority: int = 0,
        retry: retries.RetryPolicy | None = None,
        hooks: Sequence[hooks_mod.Hook] = (),
        max_retained_runs: int | None = None,
    ) -> tuple[records.Job, list[records.Run]]:
        """A job and its runs in grid order (``shuffled``: handed over in random order)."""
        job = records.Job(
            id=job_id or uuid.uuid4().hex,
            name=f"{pipeline} job",
            pipeline_name=pipeline,
            pipeline_version="v1",
            pipeline_ref=f"pipelines/{pipeline}.py:pipeline",
            grid={"n": list(range(runs)), "train.rate": [0.5]},
            deselected=(),
            tags=tuple(tags),
            max_parallel_runs=max_parallel_runs,
            run_count=runs,
            created_at=created_at,
            retry=retry,
            hooks=tuple(hooks),
            max_retained_runs=max_retained_runs,
        )
        made = [
            records.Run(
                id=uuid.uuid4().hex,
                job_id=job.id,
                index=i,
                params={"pipeline": {"n": i}, "steps": {"train": {"rate": 0.5}}},
                state=states.RunState.CREATED,
                created_at=created_at,
                priority=priority,
            )
            for i in range(runs)
        ]
        if shuffled:
            random.Random(runs).shuffle(made)
        return job, made

    def create(self, **options: Any) -> tuple[records.Job, list[records.Run]]:
        """``build`` with ``options`` and store; returns the runs in grid order."""
        job, made = self.build(**options)
        self.store.create_job(job, made)
        return job, sorted(made, key=lambda run: run.index)


@pytest.fixture
def jobs(store: store_mod.Store) -> JobBuilder:
    return JobBuilder(store)


class Make:
    """Builds the records and transitions ``Store.apply`` takes, for one run at a time."""

    @staticmethod
    def move(
        run: records.Run,
        old: states.RunState,
        new: states.RunState,
        when: dt.datetime,
        reason: str | None = None,
    ) -> store_mod.RunTransition:
        return store_mod.RunTransition(run.id, run.job_id, old, new, when, reason=reason)

    @staticmethod
    def step(
        run: records.Run,
        name: str,
        state: states.StepState,
        old: states.StepState | None,
        when: dt.datetime,
        **fields: Any,
    ) -> store_mod.StepTransition:
        """Step ``name``'s first attempt, now in ``state`` (``old``: None when it is new)."""
        record = records.StepRun(run_id=run.id, step_name=name, attempt=1, state=state, **fields)
        return store_mod.StepTransition(run.job_id, record, old, when)

    @staticmethod
    def log(run: records.Run, step: str | None, text: str, when: dt.datetime) -> records.LogLine:
        return records.LogLine(run.id, step, "stdout", when, text)

    @staticmethod
    def artifact(run: records.Run, step: str, output: str, when: dt.datetime) -> records.Artifact:
        uri = f"file:///blobs/{run.id}/{step}/{output}"
        return records.Artifact(run.id, step, output, uri, 42, "pickle", when)


@pytest.fixture
def make() -> type[Make]:
    return Make


@pytest.fixture
def started(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> tuple[records.Job, list[records.Run]]:
    """A job whose three runs were queued at ``at(1)`` and claimed by ``w:1`` at ``at(2)``."""
    job, _ = jobs.create(runs=3)
    store.queue_runs(job.id, at=at(1))
    return job, store.claim_runs(job_id=job.id, worker="w:1", limit=3, at=at(2))
