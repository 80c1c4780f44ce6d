"""The Data pages in a real browser against a real ``runyard serve``: a repo, a pipeline
over it, files put while the page is open; the pipeline DAG, the data job followed live to
its end, its datum progress and a failed datum's logs; the file browser."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from .conftest import Server, screenshot, skip_without_a_browser

skip_without_a_browser()

pytestmark = pytest.mark.e2e

# Upper-cases each top-level file, a little slowly (so the page sees it run); a file
# whose name holds "bad" fails its datum, after saying why.
SPEC = {
    "pipeline": {"name": "shout"},
    "description": "Upper-cases each text file: one datum per top-level file.",
    "input": {"pfs": {"repo": "words", "branch": "master", "glob": "/*"}},
    "transform": {
        "cmd": ["sh"],
        "stdin": [
            "sleep 0.6",
            'case "$RUNYARD_INPUT_WORDS" in *bad*)'
            ' echo "cannot shout $(basename "$RUNYARD_INPUT_WORDS")" >&2;'
            " exit 3;; esac",
            'tr a-z A-Z < "$RUNYARD_INPUT_WORDS" > "$RUNYARD_OUTPUT_DIR/$(basename'
            ' "$RUNYARD_INPUT_WORDS")"',
        ],
    },
    "parallelism": 1,
    "datum_tries": 1,
}


def test_a_data_job_is_followed_live_to_its_failed_datum_and_logs(
    server: Server, page: Any
) -> None:
    spec = server.root / "shout.json"
    spec.write_text(json.dumps(SPEC))
    counting = server.root / "count.json"
    counting.write_text(
        json.dumps(
            {
                "pipeline": {"name": "count"},
                "input": {"pfs": {"repo": "shout", "glob": "/"}},
                "transform": {"cmd": ["sh"], "stdin": ['cat "$RUNYARD_INPUT_DIR"/shout/* | wc -w']},
            }
        )
    )
    files = server.root / "words"
    files.mkdir()
    for name, text in [("ant", "a small ant"), ("bee", "a busy bee"), ("cat", "one cat")]:
        (files / f"{name}.txt").write_text(text + "\n")
    (files / "bad.txt").write_text("not this one\n")
    server.cli("repo", "create", "words")
    server.cli("pipeline", "create", "-f", str(spec))
    server.cli("pipeline", "create", "-f", str(counting))

    page.goto(server.url + "/data")
    # words -> shout -> shout (repo) -> count -> count (repo)
    page.wait_for_selector("svg.data-dag .node.pipeline[data-pipeline=shout]")
    assert page.locator("svg.data-dag .edge").count() == 4
    assert "no job yet" in page.text_content("svg.data-dag [data-pipeline=shout]")
    page.evaluate("window.notReloaded = true")

    server.cli("put", "file", "-r", "words@master:/", "-f", str(files))
    row = page.locator("tr[data-datajob^='shout@']")
    row.wait_for()  # the overview saw the job through the event stream
    assert page.evaluate("window.notReloaded") is True
    row.locator("a").first.click()
    page.wait_for_url("**/data/jobs/shout@*")
    page.evaluate("window.notReloaded = true")
    assert page.get_attribute(".facts", "data-finished") == "no"  # the datums take seconds
    page.wait_for_selector(".facts[data-state=FAILURE]", timeout=60_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.inner_text(".facts .count") == "3 + 0 / 4"
    assert "1 failed" in page.inner_text(".datum-counts")
    # The failed datum comes first, with its logs.
    first = page.locator("table.datums tbody tr").first
    assert first.get_attribute("data-status") == "FAILURE"
    assert "/bad.txt" in first.inner_text()
    logs = page.inner_text(".datum-logs .logs")
    assert "cannot shout" in logs and "bad.txt" in logs and "exited 3" in logs
    assert "RUNNING" in page.inner_text(".transitions")
    screenshot(page, "data-job")

    # The downstream job did not run, saying why.
    page.locator(".facts a", has_text="count").click()
    page.wait_for_url("**/data/jobs/count@*")
    assert "upstream job shout@" in page.inner_text(".facts .reason")

    page.goto(server.url + "/data")
    assert "failure" in page.text_content("svg.data-dag [data-pipeline=shout]")
    screenshot(page, "data")

    # The repo's commit, its files, and one of them downloaded.
    page.locator("table.repos a", has_text="words").first.click()
    page.wait_for_url("**/data/repos/words*")
    page.locator("table.commits tbody tr a").first.click()
    page.wait_for_url("**/commits/*")
    assert page.locator("table.files-table tbody tr").count() == 4
    with page.expect_download() as made:
        page.locator("table.files-table a", has_text="cat.txt").click()
    saved = pathlib.Path(made.value.path())
    assert saved.read_text() == "one cat\n"
