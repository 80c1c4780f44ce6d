"""A job whose runs call an unreliable service: failed runs are tried again, hooks are told
what happened, and only the newest runs are kept.

    runyard job create examples/retries/unreliable.py:unreliable
    runyard run list <job id>          # failed attempts, each "retried by" the next
    runyard job hooks <job id>         # what the hooks were sent

The service fails about a third of the calls with ConnectionError: the job retries those up to 4
times (0.2 s, then 0.4 s, 0.8 s, ... with jitter), reusing the stored output of ``prepare``,
which succeeded. A ValueError (a bad ``region``) is not worth retrying: that run fails at
once, and ``report`` hears of it.
"""

import random
import sys

import runyard


def report(notice: runyard.Notice) -> None:
    """A hook: runyard calls it, in the engine, for each failure for good and at the end."""
    if notice.event == "job_complete":
        job = notice.payload["job"]
        print(f"[hook] job {job['id'][:8]} finished: {job['state']}", file=sys.stderr)
    else:
        run = notice.payload["run"]
        print(f"[hook] run {run['id'][:8]} failed for good: {run['reason']}", file=sys.stderr)


@runyard.step
def prepare(*, region: str = "eu") -> list[str]:
    if region not in ("eu", "us", "apac"):
        raise ValueError(f"unknown region {region!r}")
    return [f"{region}-{i}" for i in range(3)]


@runyard.step
def fetch(keys: list[str], *, failure_rate: float = 0.3) -> dict[str, int]:
    if random.random() < failure_rate:
        raise ConnectionError("the service did not answer")
    return {key: len(key) for key in keys}


@runyard.pipeline(
    retries=4,
    retry_delay=0.2,
    retry_on=(ConnectionError,),
    on_run_failure=report,
    on_job_complete=report,
    max_retained_runs=50,
)
def unreliable() -> None:
    fetch(prepare())
