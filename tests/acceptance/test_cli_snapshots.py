"""``runyard snapshot take|list|show|diff``: the real command in a subprocess."""

from __future__ import annotations

import json
import pathlib
import platform

from tests.acceptance.test_cli import Cli


def write(root: pathlib.Path, path: str, content: str | bytes) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        target.write_text(content)
    else:
        target.write_bytes(content)


def snapshot_id(stdout: str) -> str:
    assert stdout.startswith("Snapshot "), stdout
    return stdout.split()[1].rstrip(":")


def test_take_list_show_and_diff_snapshots(tmp_path: pathlib.Path, database_url: str) -> None:
    project = tmp_path / "project"
    write(project, "etl.py", "print('etl')\n")
    write(project, "gone.py", "x = 1\n")
    write(project, ".gitignore", "*.tmp\n")
    write(project, "scratch.tmp", "ignored")
    write(project, "data/raw.csv", "1,2,3\n")
    cli = Cli(tmp_path / "home", project, None if "sqlite" in database_url else database_url)

    first = cli("snapshot", "take").stdout
    again = cli("snapshot", "take", str(project)).stdout
    write(project, "etl.py", "print('etl v2')\n")
    (project / "gone.py").unlink()
    write(project, "new.py", "y = 2\n")
    second = cli("snapshot", "take", ".").stdout

    one, two = snapshot_id(first), snapshot_id(second)
    assert first.strip() == f"Snapshot {one}: 3 files, 25 B; 25 B newly stored (3 new blobs)"
    assert again.strip() == f"Snapshot {one}: 3 files, 25 B; 0 B newly stored (0 new blobs)"
    assert "newly stored (2 new blobs)" in second and two != one

    listed = cli("snapshot", "list").stdout.splitlines()
    assert listed[0].split() == ["ID", "ROOT", "FILES", "SIZE", "CREATED"]
    assert [line.split()[:3] for line in listed[1:]] == [
        [two, str(project), "3"],
        [one, str(project), "3"],
    ]

    shown = cli("snapshot", "show", two[:8]).stdout
    assert f"Snapshot {two}" in shown
    assert f"root: {project}" in shown
    assert f"environment: Python {platform.python_version()} (" in shown
    rows = [line.split() for line in shown.splitlines()[6:]]
    assert rows == [
        ["6", "B", "644", ".gitignore"],
        ["16", "B", "644", "etl.py"],
        ["6", "B", "644", "new.py"],
    ]
    raw = json.loads(cli("snapshot", "show", two, "--raw").stdout)
    assert raw["id"] == two and raw["file_count"] == 3
    assert raw["environment"]["python_version"] == platform.python_version()
    assert "sqlalchemy" in raw["environment"]["distributions"]

    changes = cli("snapshot", "diff", one[:10], two[:10]).stdout.splitlines()
    assert changes == ["+ new.py", "- gone.py", "~ etl.py", "1 added, 1 removed, 1 changed"]


def test_snapshot_mistakes_exit_2_with_one_line_and_store_nothing(tmp_path: pathlib.Path) -> None:
    project = tmp_path / "project"
    write(project, "runyard.toml", "snapshot_max_mb = 1\n")
    write(project, "model.bin", b"z" * 2 * 1024 * 1024)
    write(project, "etl.py", "print('etl')\n")
    cli = Cli(tmp_path / "home", project, None)

    too_big = cli("snapshot", "take", code=2)
    unknown = cli("snapshot", "show", "abc123", code=2)
    missing = cli("snapshot", "take", str(tmp_path / "nowhere"), code=2)
    bad_diff = cli("snapshot", "diff", "abc", "def", code=2)

    for result in (too_big, unknown, missing, bad_diff):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ")
    assert "is 2.0 MB to snapshot, over its limit of 1 MB" in too_big.stderr
    assert (
        "the largest files: model.bin (2.0 MB), runyard.toml (20 B), etl.py (13 B)."
        in too_big.stderr
    )
    assert "Add them to .gitignore, move them to the data folder" in too_big.stderr
    assert "No snapshot 'abc123'; list them with `runyard snapshot list`" in unknown.stderr
    assert "does not exist or is not a folder" in missing.stderr
    assert cli("snapshot", "list").stdout.splitlines()[1:] == []
    blobs = tmp_path / "home" / "artifacts" / "blobs"
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))


def test_a_jobs_snapshot_and_a_runs_working_copy_are_shown(tmp_path: pathlib.Path) -> None:
    project = tmp_path / "project"
    write(project, "runyard.toml", "")
    write(
        project,
        "hello.py",
        "import pathlib\nimport runyard\n\n\n@runyard.step\ndef hello() -> str:\n"
        "    return pathlib.Path('greeting.txt').read_text()\n\n\n"
        "@runyard.pipeline\ndef hello_pipe():\n    hello()\n",
    )
    write(project, "greeting.txt", "hi")
    cli = Cli(tmp_path / "home", project, None)

    created = cli("job", "create", "hello.py:hello_pipe").stdout
    job_id = created.split()[1]
    shown = cli("job", "inspect", job_id).stdout
    raw = cli.json("job", "inspect", job_id, "--raw")
    run_id = cli("run", "list", job_id).stdout.splitlines()[1].split()[0]
    run = cli("run", "inspect", run_id).stdout
    run_raw = cli.json("run", "inspect", run_id, "--raw")

    snap = raw["snapshot"]
    assert snap["file_count"] == 3 and snap["root"] == str(project)
    assert f"{snap['id'][:12]}: 3 files, " in shown
    copy = pathlib.Path(run_raw["working_copy"])
    assert copy.parent == tmp_path / "home" / "work" / "runs"
    assert (copy / "greeting.txt").read_text() == "hi"
    assert "Working copy" in run and str(copy) in run
