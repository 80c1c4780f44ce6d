"""A job where some runs fail: a bad step parameter value fails its run, and the job's other
runs go on.

    runyard job create examples/flaky/flaky.py:flaky
    runyard job inspect <job id>      # names the failed runs and why
    runyard run inspect <run id>      # the failing step's traceback
"""

import runyard


@runyard.step
def numbers(*, count: int = 5) -> list[int]:
    return list(range(count))


@runyard.step
def divide(values: list[int], *, divisor: int = 1) -> list[float]:
    if divisor == 0:
        print("about to divide by zero", flush=True)
    return [v / divisor for v in values]


@runyard.step
def report(values: list[float]) -> float:
    total = sum(values)
    print(f"total: {total}")
    return total


@runyard.pipeline
def flaky():
    report(divide(numbers()))
