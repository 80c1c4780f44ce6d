"""An extract -> transform -> load pipeline, run as a job over etl.parameters.json's grid.

    runyard job create examples/etl/etl.py:etl
"""

import logging
import statistics

import runyard

log = logging.getLogger("etl")


@runyard.step(version="1.0.0")
def extract(*, source: str = "sensors", rows: int = 1000) -> list[int]:
    """Pretend to read `rows` readings from `source`."""
    seed = sum(map(ord, source))
    data = [(seed * 7919 + i * 104729) % 1000 for i in range(rows)]
    log.info("extracted %d rows from %s", len(data), source)
    return data


@runyard.step(version="1.0.0")
def transform(rows: list[int], *, factor: float = 1.0, threshold: int = 0) -> list[float]:
    """Scale the readings and drop those below the threshold."""
    kept = [r * factor for r in rows if r >= threshold]
    print(f"kept {len(kept)} of {len(rows)} rows")
    return kept


@runyard.step(version="1.0.0")
def summarize(rows: list[float]) -> dict[str, float]:
    return {"count": len(rows), "mean": statistics.fmean(rows) if rows else 0.0}


@runyard.step(version="1.0.0")
def load(rows: list[float], summary: dict[str, float]) -> str:
    region = runyard.get_pipeline_param("region")
    print(f"loading {summary['count']} rows (mean {summary['mean']:.1f}) into {region}")
    return f"{region}/{summary['count']}"


@runyard.pipeline(params={"region": "eu"})
def etl():
    rows = transform(extract())
    load(rows, summarize(rows))
