"""The web UI in a real browser against a real ``runyard serve``: a job made in the form,
watched live, its run's DAG and logs; bad input refused in place; schedules; login."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from .conftest import Server, screenshot, skip_without_a_browser

skip_without_a_browser()

GRID = {"pipeline_parameters": {"pause": [0.7]}, "fetch": {"rows": [10, 20, 30]}}

pytestmark = pytest.mark.e2e


def jobs_of(server: Server) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = server.api.get("/api/v1/jobs").json()["items"]
    return items


def choose_waves(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/new")
    page.select_option("#processing", label="waves 1 (pipeline)")
    # The pipeline's defaults are pre-loaded as a grid, and its one run previewed.
    page.wait_for_function("document.querySelector('#grid').value.includes('pause')")
    assert json.loads(page.input_value("#grid")) == {
        "pipeline_parameters": {"pause": [0.1]},
        "fetch": {"rows": [10]},
        "clean": {"keep_odd": [True]},
    }
    page.wait_for_selector("#preview tbody tr")


def test_a_job_made_in_the_form_runs_live_and_its_run_shows_its_dag_and_logs(
    server: Server, page: Any
) -> None:
    before = len(jobs_of(server))
    choose_waves(page, server)
    page.fill("#grid", json.dumps(GRID, indent=2))
    page.wait_for_function("document.querySelectorAll('#preview tbody tr').length === 3")
    assert page.inner_text("#preview thead").split() == ["Run", "#", "fetch.rows"]
    page.uncheck("#preview tbody input[value='1']")  # leave out the run with rows=20
    assert "2 of 3 runs selected" in page.inner_text("#preview-summary")
    page.fill("#name", "made in the browser")
    page.fill("#tags", "e2e, browser")
    screenshot(page, "new-job")
    page.click("#create")
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    made = server.api.get(f"/api/v1/jobs/{job_id}").json()
    assert (made["name"], made["tags"], made["run_count"]) == (
        "made in the browser",
        ["browser", "e2e"],
        2,
    )
    assert len(jobs_of(server)) == before + 1

    # The page follows the job through the event stream, without reloading.
    page.evaluate("window.notReloaded = true")
    assert "SUCCESS" not in page.inner_text(".facts dd")  # the steps take seconds
    page.wait_for_selector(".facts[data-state=SUCCESS]", timeout=60_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.inner_text(".facts .count") == "2/2"
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 2
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)] == ["10", "30"]
    screenshot(page, "job")

    page.goto(server.url + "/")
    row = page.locator(f"tr[data-job='{job_id}']")
    assert "made in the browser" in row.inner_text() and "2/2" in row.inner_text()

    page.goto(f"{server.url}/jobs/{job_id}")
    page.click("table.runs tbody tr:first-child a")
    page.wait_for_url("**/runs/*")
    nodes = page.locator("svg.dag .node")
    assert sorted(nodes.nth(i).get_attribute("data-step") for i in range(4)) == [
        "clean",
        "fetch",
        "report",
        "stats",
    ]
    assert page.locator("svg.dag .node.state-success").count() == 4
    assert page.locator("svg.dag .edge").count() == 4  # fetch->clean, fetch->stats, ->report
    assert page.locator(".gantt li").count() == 4
    page.wait_for_function("document.querySelector('#logs').textContent.includes('fetched 10')")
    assert "report: 5 rows, mean 4.50" in page.inner_text("#logs")
    page.locator("svg.dag .node[data-step=clean]").focus()
    page.keyboard.press("Enter")  # a step's box opens its logs, from the keyboard too
    page.wait_for_function(
        "!document.querySelector('#logs').textContent.includes('fetched')"
        " && document.querySelector('#logs').textContent.includes('kept 5 of 10')"
    )
    screenshot(page, "run")


def test_the_jobs_list_shows_a_new_job_live(server: Server, page: Any) -> None:
    page.goto(server.url + "/")
    page.evaluate("window.notReloaded = true")
    made = server.api.post(
        "/api/v1/jobs",
        json={"processing": {"name": "waves"}, "name": "live on the list", "grid": GRID},
    ).json()
    row = page.locator(f"tr[data-job='{made['id']}']")
    row.wait_for()
    page.wait_for_function(
        f"document.querySelector(\"tr[data-job='{made['id']}']\").innerText.includes('3/3')",
        timeout=60_000,
    )
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "jobs")


def test_bad_json_shows_an_error_in_place_and_creates_nothing(server: Server, page: Any) -> None:
    before = len(jobs_of(server))
    choose_waves(page, server)
    page.fill("#grid", '{"pipeline_parameters": {"pause": [0.1]},')
    error = page.locator("#grid-error")
    error.wait_for()
    assert "not valid JSON" in error.inner_text()
    assert page.get_attribute("#grid", "aria-invalid") == "true"
    page.click("#create")
    assert "Nothing was created" in page.inner_text("#create-error")

    # Valid JSON the pipeline refuses: the server's message, in the same place.
    page.fill("#grid", '{"fetch": {"rows": ["many"]}}')
    page.wait_for_function("document.querySelector('#grid-error').textContent.includes('rows')")
    assert "expects int" in error.inner_text()
    page.click("#create")
    page.locator("#create-error").wait_for()
    assert "not created" in page.inner_text("#create-error")
    assert "expects int" in error.inner_text()  # still beside the grid
    screenshot(page, "new-job-error")
    assert len(jobs_of(server)) == before


def test_cron_jobs_show_their_next_fire_times_and_pause(server: Server, page: Any) -> None:
    choose_waves(page, server)
    page.check("input[name=when][value=cron]")
    page.fill("#cron", "0 9 * * 1-5")
    page.fill("#timezone", "Europe/Amsterdam")
    page.wait_for_selector("#cron-times li")
    assert page.locator("#cron-times li").count() == 5
    page.fill("#cron", "0 25 * * *")
    page.wait_for_selector("#cron-times .error")
    assert "not valid" in page.inner_text("#cron-times")
    page.fill("#cron", "30 6 * * *")
    page.wait_for_selector("#cron-times li")
    page.fill("#name", "every morning")
    page.click("#create")
    page.wait_for_url("**/jobs/*")
    assert "cron 30 6 * * * (Europe/Amsterdam)" in page.inner_text(".facts")

    page.goto(server.url + "/schedules")
    row = page.locator("tr", has_text="every morning")
    assert row.locator(".times li").count() == 5
    screenshot(page, "schedules")
    row.get_by_role("button", name="Pause").click()
    page.locator("tr", has_text="every morning").get_by_role("button", name="Resume").wait_for()
    assert "paused" in page.locator("tr", has_text="every morning").inner_text()


def test_pages_are_clear_when_empty_or_wrong(server: Server, page: Any) -> None:
    page.goto(server.url + "/?tag=no-such-tag")
    assert "No job matches these filters" in page.inner_text("main")
    response = page.goto(server.url + "/jobs/0000000000000000")
    assert response.status == 404
    assert "NotFoundError" in page.inner_text("h1")
    page.goto(server.url + "/data")
    assert "No data repo yet" in page.inner_text("main")
    response = page.goto(server.url + "/data/repos/no-such-repo")
    assert response.status == 404 and "no-such-repo" in page.inner_text("main")


def test_with_auth_on_the_pages_ask_for_a_token(tmp_path: pathlib.Path, browser: Any) -> None:
    secured = Server(tmp_path, auth=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(secured.url + "/")
        page.wait_for_url("**/login?**")
        page.fill("#token", "ry_not_a_real_token")
        page.click("button[type=submit]")
        page.locator("#login-error").wait_for()
        assert "not valid" in page.inner_text("#login-error")
        screenshot(page, "login")
        page.fill("#token", secured.token)
        page.click("button[type=submit]")
        page.wait_for_url(secured.url + "/")
        assert page.inner_text("h1") == "Jobs"
        # The page's own API calls carry the token: an action works.
        made = secured.api.post(
            "/api/v1/jobs", json={"processing": {"name": "waves"}, "grid": GRID}
        ).json()
        page.goto(f"{secured.url}/jobs/{made['id']}")
        page.wait_for_selector(".facts[data-state=SUCCESS]", timeout=60_000)
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button[data-action=delete]")
        page.wait_for_url(secured.url + "/")
        assert secured.api.get(f"/api/v1/jobs/{made['id']}").status_code == 404
    finally:
        context.close()
        secured.stop()


def test_a_large_job_has_a_status_matrix_that_opens_a_page_of_runs(
    server: Server, page: Any
) -> None:
    made = server.api.post(
        "/api/v1/jobs",
        json={
            "processing": {"name": "waves"},
            "name": "a large grid",
            "grid": {"fetch": {"rows": list(range(1, 351))}},
            "start": False,
        },
    ).json()
    page.goto(f"{server.url}/jobs/{made['id']}")
    matrix = page.locator("canvas#matrix")
    assert matrix.get_attribute("data-codes") == "c" * 350
    box = matrix.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 10
    assert "page 1 of 4 · 350 runs" in page.inner_text("main")
    screenshot(page, "job-matrix")
    page.mouse.click(box["x"] + 3, box["y"] + box["height"] - 3)  # the last row's first run
    page.wait_for_url("**page=*")
    assert "page 1 of 4" not in page.inner_text(".pager")
    page.get_by_role("button", name="Start").click()  # made with start: false
    page.wait_for_function("document.querySelector('.facts').dataset.state !== 'CREATED'")
    page.once("dialog", lambda dialog: dialog.accept())  # "Stop every run of this job?"
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("document.querySelector('#notice').textContent.includes('Stop asked')")
    page.wait_for_selector(".facts[data-state=KILLED]", timeout=60_000)
