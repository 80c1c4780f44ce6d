"""The pipelines the benchmarks run, in a real module so the runyard loader can find them.

Each runyard pipeline has a plain-Python twin (the ``plain_*`` functions) doing the same
computation with no orchestrator: that is the floor each figure is compared against.
"""

from __future__ import annotations

import runyard

ROWS = 1_000  # ints per list in W1
FAN_WIDTH = 200  # independent steps in W2
CHAIN_LENGTH = 50  # steps in the W3 chain


# -- W1: extract -> transform -> load over a grid --------------------------------------


@runyard.step
def extract(*, x: int = 0) -> list[int]:
    return [x + i for i in range(ROWS)]


@runyard.step
def transform(rows: list[int], *, factor: int = 1) -> list[int]:
    return [r * factor for r in rows]


@runyard.step
def load(rows: list[int]) -> int:
    return sum(rows)


@runyard.pipeline
def etl() -> None:
    load(transform(extract()))


def etl_grid(xs: int, factors: int) -> dict[str, dict[str, list[int]]]:
    """The grid of ``xs`` x ``factors`` runs over extract's x and transform's factor."""
    return {
        "extract": {"x": list(range(xs))},
        "transform": {"factor": list(range(1, factors + 1))},
    }


def plain_extract(x: int) -> list[int]:
    return [x + i for i in range(ROWS)]


def plain_transform(rows: list[int], factor: int) -> list[int]:
    return [r * factor for r in rows]


def plain_load(rows: list[int]) -> int:
    return sum(rows)


def plain_etl(x: int, factor: int) -> int:
    return plain_load(plain_transform(plain_extract(x), factor))


def plain_params(xs: int, factors: int) -> list[dict[str, object]]:
    """The parameter dicts of the ``xs`` x ``factors`` grid, built in plain Python."""
    return [
        {
            "pipeline": {},
            "steps": {"extract": {"x": x}, "transform": {"factor": f}, "load": {}},
        }
        for x in range(xs)
        for f in range(1, factors + 1)
    ]


# -- W2: source -> 200 independent steps -> sink ----------------------------------------


@runyard.step
def source() -> int:
    return 1


@runyard.step
def branch(value: int) -> int:
    return value + 1


@runyard.step
def sink(values: list[int]) -> int:
    return sum(values)


@runyard.pipeline
def fan() -> None:
    start = source()
    sink([branch.alias(f"branch_{i:03d}")(start) for i in range(FAN_WIDTH)])


def plain_source() -> int:
    return 1


def plain_branch(value: int) -> int:
    return value + 1


def plain_sink(values: list[int]) -> int:
    return sum(values)


# 200 distinct plain functions, like the 200 distinct step nodes.
PLAIN_BRANCHES = [
    type(plain_branch)(plain_branch.__code__, globals(), f"branch_{i:03d}")
    for i in range(FAN_WIDTH)
]


def plain_fan() -> int:
    start = plain_source()
    return plain_sink([f(start) for f in PLAIN_BRANCHES])


# -- W3: a chain of 50 no-op steps -------------------------------------------------------


@runyard.step
def first() -> int:
    return 0


@runyard.step
def noop(value: int) -> int:
    return value


@runyard.pipeline
def chain() -> None:
    value = first()
    for i in range(CHAIN_LENGTH - 1):
        value = noop.alias(f"noop_{i:02d}")(value)


def plain_first() -> int:
    return 0


def plain_noop(value: int) -> int:
    return value


def plain_chain() -> int:
    value = plain_first()
    for _ in range(CHAIN_LENGTH - 1):
        value = plain_noop(value)
    return value
