"""Transactions that lock several runs at once, racing: a stop request against workers
renewing their leases and recording their runs. On PostgreSQL two such transactions that
lock the same runs in different orders deadlock, and PostgreSQL aborts one of them: a worker
whose heartbeat is aborted dies. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

from runyard.core import records, states
from runyard.storage import store as store_mod

from .conftest import Clock, JobBuilder

R = states.RunState


def test_stop_requests_racing_heartbeats_and_records_never_fail(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, database_url: str
) -> None:
    job, _ = jobs.create(runs=400, max_parallel_runs=400, shuffled=True)
    store.queue_runs(job.id, at=at(1))
    owned: dict[str, list[records.Run]] = {}
    for wid in ("w1", "w2"):
        store.register_worker(records.Worker(wid, "host", 1, "worker", 60, at(0), at(0)))
        owned[wid] = store.claim_runs(
            job_id=None, worker=wid, limit=60, at=at(2), worker_id=wid, lease_until=at(100)
        )
    start = threading.Barrier(3)
    failures: list[BaseException] = []

    def worker(wid: str) -> None:
        own = store_mod.Store.open(database_url)
        try:
            start.wait(timeout=30)
            runs = owned[wid]
            for n in range(100):
                own.heartbeat(wid, at=at(3 + n), lease_until=at(200))
                if n == 10:  # its runs start, in one batch
                    own.apply(
                        store_mod.Changes(
                            runs=[
                                store_mod.RunTransition(r.id, job.id, R.STARTING, R.RUNNING, at(3))
                                for r in reversed(runs)
                            ]
                        )
                    )
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.close()

    def stopper() -> None:
        own = store_mod.Store.open(database_url)
        try:
            start.wait(timeout=30)
            for n in range(40):
                own.request_stop(at=at(4 + n), job_id=job.id)
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in owned]
    threads.append(threading.Thread(target=stopper))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    runs = store.list_runs(job.id)
    assert {r.state for r in runs if r.worker is None} == {R.KILLED}
    assert all(r.stop_requested_at is not None for r in runs if r.worker is not None)
