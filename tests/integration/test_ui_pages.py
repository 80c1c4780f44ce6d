"""The web UI's pages as the server renders them (the browser tests drive them in
Chromium): who may look, pages of runs, live fragments, clear errors."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import httpx
import nbformat
import pytest

from runyard.app import service
from runyard.core import tokens
from runyard.execution import loader

from .test_api import serving

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "etl" / "etl.py"


@pytest.fixture
def ui(app: service.Runyard) -> Iterator[httpx.Client]:
    app.register_file(EXAMPLE)
    with serving(app, auth=True) as made:
        yield made


def login(app: service.Runyard, client: httpx.Client) -> None:
    _, text = app.create_token("browser", tokens.Scope.READ)
    client.cookies.set("runyard_token", text)


def test_pages_need_a_token_when_the_api_does(app: service.Runyard, ui: httpx.Client) -> None:
    away = ui.get("/jobs/abc?page=1")
    assert away.status_code == 303
    assert away.headers["location"].startswith("/login?next=%2Fjobs%2Fabc%3Fpage%3D1")
    ui.cookies.set("runyard_token", "ry_wrong")
    assert "not+valid" in ui.get("/").headers["location"]
    assert ui.get("/login").status_code == 200  # the login page itself is open
    login(app, ui)
    page = ui.get("/")
    assert page.status_code == 200 and "No jobs yet" in page.text
    # The assets need no token, and are all served from the package (no CDN).
    script = ui.get("/ui/static/ui.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert not re.search(r"(src|href)=\"https?://", page.text)


def test_the_login_page_sends_back_only_to_this_site(ui: httpx.Client) -> None:
    for target, kept in [("/jobs/1", "/jobs/1"), ("//evil.example", "/"), ("http://x", "/")]:
        page = ui.get("/login", params={"next": target})
        assert f'data-next="{kept}"' in page.text


def test_a_large_job_is_shown_one_page_of_runs_at_a_time(
    app: service.Runyard, ui: httpx.Client
) -> None:
    login(app, ui)
    job = app.create_job_from("etl", grid={"extract": {"rows": list(range(250))}})
    first = ui.get(f"/jobs/{job.id}")
    assert first.status_code == 200
    assert first.text.count('<tr id="run-') == 100
    assert "page 1 of 3 · 250 runs" in first.text
    assert re.search(r'data-codes="c{250}"', first.text)  # the status matrix: all created
    last = ui.get(f"/jobs/{job.id}", params={"page": 2})
    assert last.text.count('<tr id="run-') == 50 and 'id="run-249"' in last.text
    live = ui.get(f"/jobs/{job.id}", params={"fragment": "live"})
    assert "<html" not in live.text and 'id="run-0"' in live.text
    assert ui.get(f"/jobs/{job.id}", params={"state": "NOPE"}).status_code == 400


def test_jobs_are_filtered_on_the_server(app: service.Runyard, ui: httpx.Client) -> None:
    login(app, ui)
    app.create_job_from("etl", name="tagged", tags=["blue"])
    app.create_job_from("etl", name="plain")
    page = ui.get("/", params={"tag": "blue"})
    assert "tagged" in page.text and ">plain<" not in page.text
    assert "No job matches" in ui.get("/", params={"pipeline": "nothing"}).text


def test_a_run_page_shows_the_pipeline_and_unknown_things_say_so(
    app: service.Runyard, ui: httpx.Client
) -> None:
    login(app, ui)
    job = app.create_job_from("etl", start=True)
    app.execute_job(job.id)
    (run,) = app.list_runs(job.id)
    page = ui.get(f"/runs/{run.id}")
    assert page.status_code == 200
    assert page.text.count('class="node state-success"') == 4
    assert page.text.count('class="edge"') == 4  # extract->transform->(summarize, load)
    missing = ui.get("/runs/ffffffffffff")
    assert missing.status_code == 404 and "NotFoundError" in missing.text


def test_a_run_page_links_the_workdata_its_job_reads(
    app: service.Runyard, ui: httpx.Client
) -> None:
    data = app.upload_workdata("readings.csv", [b"a,b\n1,2\n"], media_type="text/csv")
    job = app.create_job_from("etl", input_workdata=[data.id])
    (run,) = app.list_runs(job.id)
    assert ui.get(f"/workdata/{data.id}").status_code == 303  # no token: the login page
    login(app, ui)
    page = ui.get(f"/runs/{run.id}")
    assert f'href="/workdata/{data.id}">readings.csv</a>' in page.text
    content = ui.get(f"/workdata/{data.id}")
    assert content.content == b"a,b\n1,2\n" and content.headers["content-type"].startswith(
        "text/csv"
    )
    assert ui.get("/workdata/nope").status_code == 404


def test_names_are_shown_as_text_never_as_markup(app: service.Runyard, ui: httpx.Client) -> None:
    login(app, ui)
    job = app.create_job_from("etl", name="<script>alert(1)</script>", tags=["<b>x</b>"])
    for page in (ui.get("/"), ui.get(f"/jobs/{job.id}")):
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<b>x</b>" not in page.text


def test_a_run_page_links_its_executed_notebook_shown_without_its_scripts(
    app: service.Runyard, ui: httpx.Client, tmp_path: pathlib.Path
) -> None:
    project = tmp_path / "nbproject"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    book.cells = [
        nbformat.v4.new_markdown_cell("# Looked at"),
        nbformat.v4.new_code_cell("print('from the notebook', 6 * 7)"),
    ]
    nbformat.write(book, project / "look.ipynb")
    (project / "nb.py").write_text(
        "import runyard\n\nlook = runyard.notebook('look.ipynb')\n\n\n"
        "@runyard.pipeline\ndef nb():\n    look()\n"
    )
    pipe = loader.load_pipeline(f"{project / 'nb.py'}:nb").pipeline
    job = app.create_job(pipe)
    app.execute_job(job.id, pipe)
    (run,) = app.list_runs(job.id)
    login(app, ui)
    page = ui.get(f"/runs/{run.id}")
    (link,) = re.findall(r'href="(/runs/[^"]+/notebooks/[^"]+)"', page.text)
    assert link.endswith("/look/look.html")
    shown = ui.get(link)
    assert shown.status_code == 200 and "from the notebook 42" in shown.text
    assert shown.headers["content-security-policy"] == "sandbox"
    assert ui.get(f"/runs/{run.id}/notebooks/look/..%2Fnb.py").status_code == 404
    assert ui.get(f"/runs/{run.id}/notebooks/look/look.ipynb").status_code == 404
