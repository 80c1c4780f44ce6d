"""What the Data pages compute from records: the DAG of repos and pipelines, datum
progress, a folder's crumbs."""

from __future__ import annotations

import datetime as dt

from runyard.core import datapipelines as dp
from runyard.core import datarepos
from runyard.ui import dataviews

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def pipeline(name: str, spec_input: dict[str, object]) -> dp.Pipeline:
    spec = dp.parse_spec(
        {"pipeline": {"name": name}, "input": spec_input, "transform": {"cmd": ["true"]}}
    )
    return dp.Pipeline(spec, 1, "s", T0, T0)


def test_pipelines_join_repos_into_one_dag_through_their_output_repos() -> None:
    repos = [datarepos.Repo(n, "", T0) for n in ("images", "labels", "edges", "lonely")]
    pipes = [
        pipeline("edges", {"pfs": {"repo": "images", "glob": "/*"}}),
        pipeline(
            "joined",
            {
                "cross": [
                    {"pfs": {"repo": "edges", "glob": "/"}},
                    {"pfs": {"repo": "labels", "glob": "/*"}},
                ]
            },
        ),
    ]
    drawn = dataviews.graph(repos, pipes)
    edges = {(e.source, e.target) for e in drawn.layout.edges}
    assert edges == {
        ("repo:images", "pipeline:edges"),
        ("pipeline:edges", "repo:edges"),
        ("repo:edges", "pipeline:joined"),
        ("repo:labels", "pipeline:joined"),
        ("pipeline:joined", "repo:joined"),  # an output repo not listed still gets a box
    }
    layer = {n.name: n.layer for n in drawn.layout.nodes}
    assert layer["repo:images"] < layer["pipeline:edges"] < layer["repo:edges"]
    assert layer["repo:edges"] < layer["pipeline:joined"] < layer["repo:joined"]
    assert "repo:lonely" in layer  # a repo no pipeline reads is drawn too
    assert drawn.kinds["pipeline:edges"] == "pipeline" and drawn.labels["repo:edges"] == "edges"


def test_datum_progress_counts_skipped_as_done_and_never_overflows() -> None:
    job = dp.DataJob(
        "edges", "g", 1, dp.DataJobState.FAILURE, T0,
        data_processed=2, data_skipped=5, data_failed=3, data_total=10,
    )  # fmt: skip
    shown = dataviews.datum_progress(job)
    assert (shown.done, shown.text) == (7, "2 + 5 / 10")
    assert (shown.succeeded_percent, shown.failed_percent) == (70.0, 30.0)
    empty = dataviews.datum_progress(dp.DataJob("edges", "g", 1, dp.DataJobState.CREATED, T0))
    assert (empty.succeeded_percent, empty.failed_percent) == (0.0, 0.0)


def test_crumbs_lead_from_the_root_to_the_folder() -> None:
    assert dataviews.crumbs("/") == [("/", "/")]
    assert dataviews.crumbs("/a/b") == [("/", "/"), ("a", "/a"), ("b", "/a/b")]
