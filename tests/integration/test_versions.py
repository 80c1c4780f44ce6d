"""Versions computed from code are the same in every process that loads the same file, so a
job created by one process can be executed by another."""

import json
import os
import pathlib
import subprocess
import sys

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"

VERSIONS = """
import json, sys
from runyard.execution import loader
pipe = loader.load_pipeline(sys.argv[1]).pipeline
print(json.dumps([pipe.version, {n.name: n.step.version for n in pipe}]))
"""

CREATE = """
import sys
import runyard
from runyard.execution import loader
pipe = loader.load_pipeline(sys.argv[1]).pipeline
job = runyard.create_job(pipe, home=sys.argv[2], start=False)
print(job.id)
"""

EXECUTE = """
import sys
import runyard
app = runyard.connect(home=sys.argv[2])
print(app.execute_job(sys.argv[1], max_parallel_runs=1).state)
"""


def python(code: str, *args: str, seed: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["PYTHONHASHSEED"] = str(seed)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def versions(reference: str, seed: int) -> list[object]:
    return json.loads(python(VERSIONS, reference, seed=seed))  # type: ignore[no-any-return]


def test_versions_are_the_same_in_another_process() -> None:
    reference = f"{FIXTURES / 'grid_pipeline.py'}:grid_pipeline"
    assert versions(reference, seed=1) == versions(reference, seed=2)


def test_a_job_created_in_one_process_is_executed_by_another(tmp_path: pathlib.Path) -> None:
    reference = f"{FIXTURES / 'grid_pipeline.py'}:grid_pipeline"
    home = str(tmp_path / "home")
    job_id = python(CREATE, reference, home, seed=1)
    assert python(EXECUTE, job_id, home, seed=2) == "SUCCESS"


def test_a_set_literal_in_a_step_does_not_change_its_version_between_processes() -> None:
    reference = f"{FIXTURES / 'versioned.py'}:versioned"
    assert versions(reference, seed=1) == versions(reference, seed=2)


def test_a_job_with_a_set_literal_step_is_executed_by_another_process(
    tmp_path: pathlib.Path,
) -> None:
    reference = f"{FIXTURES / 'versioned.py'}:versioned"
    home = str(tmp_path / "home")
    job_id = python(CREATE, reference, home, seed=1)
    assert python(EXECUTE, job_id, home, seed=2) == "SUCCESS"
