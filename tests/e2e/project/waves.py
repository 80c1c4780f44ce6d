"""A pipeline slow enough to watch: fetch -> (clean, stats) -> report, each step pausing."""

import logging
import time

import runyard

log = logging.getLogger("waves")


@runyard.step(version="1")
def fetch(*, rows: int = 10) -> list[int]:
    time.sleep(runyard.get_pipeline_param("pause"))
    log.info("fetched %d rows", rows)
    return list(range(rows))


@runyard.step(version="1")
def clean(data: list[int], *, keep_odd: bool = True) -> list[int]:
    time.sleep(runyard.get_pipeline_param("pause"))
    kept = [d for d in data if d % 2 == 1] if keep_odd else data
    print(f"kept {len(kept)} of {len(data)}")
    return kept


@runyard.step(version="1")
def stats(data: list[int]) -> float:
    time.sleep(runyard.get_pipeline_param("pause"))
    return sum(data) / len(data) if data else 0.0


@runyard.step(version="1")
def report(data: list[int], mean: float) -> str:
    print(f"report: {len(data)} rows, mean {mean:.2f}")
    return f"{len(data)}:{mean}"


@runyard.pipeline(version="1", params={"pause": 0.1})
def waves():
    data = fetch()
    report(clean(data), stats(data))
