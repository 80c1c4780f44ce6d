"""The Data pages as the server renders them: repos and the pipeline DAG, a repo's commits,
a commit's files (paged, downloads that stay in the repo), a pipeline's spec and jobs, a data
job's datums with a failed datum's logs; unknown names are 404 pages naming them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from runyard.app import service
from runyard.core import datapipelines as dp

from .test_api import serving
from .test_ui_pages import login

# Upper-cases each top-level file; a file whose name holds "bad" fails its datum.
SPEC = {
    "pipeline": {"name": "shout"},
    "description": "Upper-cases each file.",
    "input": {"pfs": {"repo": "texts", "glob": "/*"}},
    "transform": {
        "cmd": ["sh"],
        "stdin": [
            'case "$RUNYARD_INPUT_TEXTS" in *bad*) echo "refusing $RUNYARD_INPUT_TEXTS" >&2;'
            " exit 3;; esac",
            'tr a-z A-Z < "$RUNYARD_INPUT_TEXTS" > "$RUNYARD_OUTPUT_DIR/$(basename'
            ' "$RUNYARD_INPUT_TEXTS")"',
        ],
        "env": {"API_KEY": "s3cret-value"},
    },
    "parallelism": 2,
    "datum_tries": 1,
}


@pytest.fixture
def ui(app: service.Runyard) -> Iterator[httpx.Client]:
    with serving(app, auth=True) as made:
        login(app, made)
        yield made


def made_data(app: service.Runyard, *, bad: bool = False) -> dp.DataJob:
    """Repo ``texts`` with two files (and a failing one with ``bad``), pipeline ``shout``
    over it; returns shout's job of the last commit, run to its end."""
    data = app.data
    data.create_repo("texts", description="some words")
    data.create_pipeline(SPEC)
    puts = [("/a.txt", b"hello\n"), ("/b.txt", b"world\n")] + [("/bad.txt", b"no\n")] * bad
    for path, content in puts:
        commit, jobs = data.put_bytes(f"texts@master:{path}", content, description=path)
        for job in jobs:
            data.run_job_set(job.id)
    return data.get_job("shout", commit.id)


def test_the_data_page_draws_repos_and_pipelines_as_one_dag(
    app: service.Runyard, ui: httpx.Client
) -> None:
    empty = ui.get("/data")
    assert empty.status_code == 200
    assert "No data pipeline yet" in empty.text and "No data repo yet" in empty.text
    job = made_data(app)
    page = ui.get("/data")
    # texts -> shout -> shout (its output repo): two edges, three boxes.
    assert page.text.count('class="edge"') == 2
    assert 'data-repo="texts"' in page.text and 'data-pipeline="shout"' in page.text
    assert re.search(r'class="node pipeline state-success" data-pipeline="shout"', page.text)
    assert f'href="/data/jobs/shout@{job.id}"' in page.text
    assert "1 + 1 / 2" in page.text  # the newest job's PROGRESS: a.txt was done before
    live = ui.get("/data", params={"fragment": "live"})
    assert "<html" not in live.text and 'data-pipeline="shout"' in live.text


def test_a_repo_pages_its_commits_newest_first(app: service.Runyard, ui: httpx.Client) -> None:
    app.data.create_repo("many")
    made = [app.data.put_bytes(f"many@master:/f{i}.txt", b"x")[0] for i in range(60)]
    first = ui.get("/data/repos/many")
    assert first.status_code == 200
    shown = re.findall(r'<tr data-commit="(\w+)"', first.text)
    assert shown == [c.id for c in reversed(made)][:50]
    assert "Older »" in first.text
    second = ui.get("/data/repos/many", params={"page": 1})
    assert re.findall(r'<tr data-commit="(\w+)"', second.text) == [c.id for c in made[9::-1]]
    assert "Older »" not in second.text
    missing = ui.get("/data/repos/many", params={"branch": "dev"})
    assert missing.status_code == 404 and "no branch &#39;dev&#39;" in missing.text


def test_a_commit_lists_a_folder_a_page_at_a_time_and_serves_its_files(
    app: service.Runyard, ui: httpx.Client, tmp_path: object
) -> None:
    import pathlib

    folder = pathlib.Path(str(tmp_path)) / "src"
    (folder / "sub").mkdir(parents=True)
    for i in range(450):
        (folder / f"f{i:04d}.txt").write_text(str(i))
    (folder / "sub" / "inner.csv").write_text("a,b\n")
    app.data.create_repo("big")
    commit, _ = app.data.put_files("big@master:/", [folder], recursive=True)
    base = f"/data/repos/big/commits/{commit.id}"
    root = ui.get(base)
    assert root.status_code == 200
    assert root.text.count("<tr data-path=") == 200
    assert "page 1 of 3 · 451 entries" in root.text
    last = ui.get(base, params={"page": 2})
    assert last.text.count("<tr data-path=") == 51
    assert 'data-path="/sub/" class="dir"' in last.text
    inner = ui.get(base, params={"path": "/sub"})
    assert f'href="{base}/files/sub/inner.csv"' in inner.text
    # By branch name too; a file comes as a download, never as a page of this site.
    got = ui.get("/data/repos/big/commits/master/files/sub/inner.csv")
    assert got.status_code == 200 and got.content == b"a,b\n"
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["content-type"] == "application/octet-stream"
    # A path cannot leave the repo, however it is written.
    for sneaky in ("/files/..%2F..%2Fetc%2Fpasswd", "/files/sub/%2E%2E/%2E%2E/x"):
        refused = ui.get(base + sneaky)
        assert refused.status_code == 400 and "outside the repo" in refused.text
    assert ui.get(base + "/files/nope.txt").status_code == 404
    assert ui.get(base, params={"path": "/nope"}).status_code == 404
    unknown = ui.get("/data/repos/big/commits/ffffffff")
    assert unknown.status_code == 404 and "ffffffff" in unknown.text


def test_a_pipeline_page_shows_its_spec_and_jobs(app: service.Runyard, ui: httpx.Client) -> None:
    job = made_data(app)
    page = ui.get("/data/pipelines/shout")
    assert page.status_code == 200
    assert "Upper-cases each file." in page.text and "<code>/*</code>" in page.text
    assert 'href="/data/repos/texts?branch=master">texts</a>' in page.text
    assert "API_KEY" in page.text and "s3cret-value" not in page.text  # names, not values
    rows = re.findall(r'<tr data-datajob="shout@(\w+)"', page.text)
    assert rows[0] == job.id and len(rows) == 2  # one job per commit, newest first
    missing = ui.get("/data/pipelines/shuot")
    assert missing.status_code == 404 and "shuot" in missing.text
    assert 'href="/data">Back to the data</a>' in missing.text


def test_a_data_job_shows_failed_datums_first_with_their_logs(
    app: service.Runyard, ui: httpx.Client
) -> None:
    job = made_data(app, bad=True)
    assert job.state is dp.DataJobState.FAILURE
    page = ui.get(f"/data/jobs/shout@{job.id}")
    assert page.status_code == 200
    statuses = re.findall(r'data-status="(\w+)"', page.text)
    assert statuses == ["FAILURE", "SKIPPED", "SKIPPED"]  # a.txt and b.txt done before
    assert "refusing /" in page.text and "bad.txt" in page.text
    assert "0 + 2 / 3" in page.text and "1 failed" in page.text
    # Its transitions, from the event log.
    assert re.search(r"RUNNING</span> → <span class=\"state state-failure\">FAILURE", page.text)
    live = ui.get(f"/data/jobs/shout@{job.id}", params={"fragment": "live"})
    assert "<html" not in live.text and 'data-state="FAILURE"' in live.text
    for wrong, named in [("shout@ffff", "ffff"), (f"nope@{job.id}", "nope"), (job.id, job.id)]:
        missing = ui.get(f"/data/jobs/{wrong}")
        assert missing.status_code == 404 and named in missing.text


def test_the_data_pages_need_a_token(app: service.Runyard) -> None:
    made_data(app)
    with serving(app, auth=True) as client:
        for path in ("/data", "/data/repos/texts", "/data/pipelines/shout"):
            assert client.get(path).status_code == 303
        assert client.get("/data/repos/texts/commits/master/files/a.txt").status_code == 303


def test_datums_page_across_recorded_and_skipped_ones(app: service.Runyard) -> None:
    job = made_data(app, bad=True)
    everything = app.data.list_datums(f"shout@{job.id}")
    pages = [app.data.page_datums(job, limit=2, offset=k) for k in (0, 2, 4)]
    assert [total for _, total in pages] == [3, 3, 3]
    shown = [d for records, _ in pages for d in records]
    assert [(d.id, d.state) for d in shown] == [(d.id, d.state) for d in everything]
    assert [d.state for d in shown] == [
        dp.DatumState.FAILURE,
        dp.DatumState.SKIPPED,
        dp.DatumState.SKIPPED,
    ]
    assert pages[2][0] == []
