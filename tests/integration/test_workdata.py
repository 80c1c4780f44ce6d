"""WorkData: uploaded inputs, files steps keep, lineage both ways, and the deletion rules."""

from __future__ import annotations

import hashlib
import pathlib
import textwrap
import threading
from collections.abc import Iterator

import pytest

from runyard import errors
from runyard.api import server
from runyard.app import service
from runyard.client import Client, ClientError, Job
from runyard.core import tokens
from runyard.worker import engine

STEPS = """
import pathlib

import runyard


@runyard.step(version="1")
def count_rows(*, table: str = "") -> str:
    with runyard.open_workdata(table) as fh:
        rows = fh.read().decode().strip().splitlines()
    pathlib.Path("summary.txt").write_text(f"{len(rows) - 1} rows")
    return runyard.save_workdata("summary.txt")
"""


@pytest.fixture
def client(app: service.Runyard, tmp_path: pathlib.Path) -> Iterator[Client]:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "steps.py").write_text(textwrap.dedent(STEPS))
    app.register_file(project / "steps.py")
    _, token = app.create_token("workdata", tokens.Scope.WRITE)
    api = server.ApiServer(app, host="127.0.0.1", port=0, auth=True)
    api.start()
    working = app.worker(kind="worker", options=engine.WorkerOptions(slots=2, poll=0.02))
    thread = threading.Thread(target=working.run, daemon=True)
    thread.start()
    try:
        with Client(api.url, token) as made:
            yield made
    finally:
        working.shut_down()
        thread.join(30)
        api.stop()


def test_inputs_outputs_lineage_and_deletion(app: service.Runyard, client: Client) -> None:
    content = b"a,b\n1,2\n3,4\n"
    table = client.upload_workdata(content, name="table.csv", media_type="text/csv")
    assert table["size"] == len(content)
    assert table["digest"] == hashlib.sha256(content).hexdigest()
    assert table["producer_job_id"] is None

    job = Job(client).create_and_configure_rapidly(
        function_name="count_rows", parameters={"table": table["id"]}, input_workdata=[table["id"]]
    )
    job.wait_for_completion(timeout_s=60)
    assert job.state == "completed", job.data
    summary_id = job.get_result()

    lineage = job.workdata()
    assert [d["id"] for d in lineage["inputs"]] == [table["id"]]
    (summary,) = lineage["outputs"]
    assert summary["id"] == summary_id and summary["name"] == "summary.txt"
    assert summary["media_type"] == "text/plain"
    (run,) = app.list_runs(job.id)
    assert (summary["producer_job_id"], summary["producer_run_id"], summary["producer_step"]) == (
        job.id,
        run.id,
        "count_rows",
    )
    assert client.download_workdata(summary_id) == b"2 rows"
    assert client.request("GET", f"/workdata/{table['id']}")["read_by"] == [job.id]

    with pytest.raises(ClientError) as in_use:
        client.request("DELETE", f"/workdata/{table['id']}")
    assert in_use.value.status == 409 and job.id in in_use.value.message
    with pytest.raises(ClientError) as has_outputs:
        job.delete()
    assert has_outputs.value.status == 409 and summary_id in has_outputs.value.message

    job.delete_with_associated(delete_output_workdata=True, delete_input_workdata=True)
    for gone in (summary_id, table["id"]):
        with pytest.raises(ClientError) as missing:
            client.request("GET", f"/workdata/{gone}")
        assert missing.value.status == 404
    assert list((app.home / "artifacts" / "workdata").iterdir()) == []


def test_bad_uploads_and_unknown_inputs_store_nothing(app: service.Runyard, client: Client) -> None:
    with pytest.raises(ClientError) as bad_name:
        client.upload_workdata(b"x", name="../escape.txt")
    assert bad_name.value.status == 400
    with pytest.raises(ClientError) as unknown:
        Job(client).create_and_configure_rapidly(
            function_name="count_rows", parameters={"table": "nope"}, input_workdata=["nope"]
        )
    assert unknown.value.status == 404 and "nope" in unknown.value.message
    assert app.list_jobs() == [] and app.list_workdata() == []
    with pytest.raises(errors.OutsideStepError):
        import runyard

        runyard.save_workdata("x.txt")
