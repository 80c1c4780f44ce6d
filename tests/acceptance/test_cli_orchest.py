"""The real CLI runs the .orchest example: its scripts and notebook, its grid file, and a
refused pipeline file."""

from __future__ import annotations

import json
import pathlib
import shutil

from tests.acceptance.test_cli import Cli

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "orchest"


def test_the_orchest_example_runs_once_and_as_a_job_over_its_grid_file(
    tmp_path: pathlib.Path,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    (project / "runyard.toml").write_text("")
    cli = Cli(tmp_path / "home", project, None)

    out = cli("run", "main.orchest", "-p", "days=2").stdout
    run_id = out.split()[1]
    assert out.strip() == f"Run {run_id} success"
    logs = cli("logs", run_id).stdout.splitlines()
    assert "[load] loaded 6 rows for 2 days and 3 stores" in logs
    assert any(line.startswith("[clean] kept ") for line in logs)
    assert any(line.startswith("[summarize] store 0: total ") for line in logs)
    assert any(line.startswith("[explore] 5 rows; the best sale: ") for line in logs)
    kept = [line for line in logs if line.startswith("[explore] stderr Executed notebook")]
    assert len(kept) == 2 and kept[1].endswith("explore.html")
    html = pathlib.Path(kept[1].split(": ", 1)[1])
    assert html.is_file() and "the best sale" in html.read_text()
    inspected = cli("run", "inspect", run_id, "--raw").stdout
    files = json.loads(inspected)["files"]
    assert [(f["step"], pathlib.Path(f["path"]).name) for f in files] == [
        ("explore", "explore.html"),
        ("explore", "explore.ipynb"),
    ]
    assert "File of explore" in cli("run", "inspect", run_id).stdout

    created = cli("job", "create", "main.orchest", "--max-parallel", "2").stdout
    assert "4 run(s) of pipeline sales (grid file main.parameters.json)" in created
    job_id = created.split()[1]
    shown = cli("run", "list", job_id).stdout
    assert shown.count("success") == 4, shown


def test_a_pipeline_file_with_a_cycle_is_refused_naming_it(tmp_path: pathlib.Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    document = json.loads((project / "main.orchest").read_text())
    load, clean = (s for s in document["steps"].values() if s["title"] in ("Load", "Clean"))
    load["incoming_connections"] = [clean["uuid"]]
    (project / "loop.orchest").write_text(json.dumps(document))
    cli = Cli(tmp_path / "home", project, None)

    result = cli("run", "loop.orchest", code=2)
    assert "loop.orchest: the steps' connections make a cycle: 'Load' -> 'Clean' -> 'Load'" in (
        " ".join(result.stderr.split())
    )
    assert cli("job", "list").stdout.strip().splitlines()[1:] == []  # nothing was created
