"""The UI's pure parts: the DAG layout and what the pages compute from records."""

from __future__ import annotations

import datetime as dt
import itertools

from runyard.core import records, schedules, states
from runyard.ui import dag, views

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_steps_are_laid_out_in_layers_after_their_upstream_steps() -> None:
    drawn = dag.layout(["a", "b", "c", "d"], {"b": ["a"], "c": ["a"], "d": ["b", "c"]})
    at = {n.name: n for n in drawn.nodes}
    assert [at[n].layer for n in "abcd"] == [0, 1, 1, 2]
    assert at["a"].x < at["b"].x == at["c"].x < at["d"].x
    assert at["b"].y != at["c"].y
    assert {(e.source, e.target) for e in drawn.edges} == {
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
    }
    assert drawn.width >= at["d"].x + dag.BOX_W and drawn.height >= max(
        n.y + dag.BOX_H for n in drawn.nodes
    )


def test_boxes_of_a_layer_never_overlap_and_unknown_upstream_names_are_ignored() -> None:
    names = [f"s{i}" for i in range(60)]
    upstream = {f"s{i}": [f"s{i // 3}", "ghost"] for i in range(1, 60)}
    drawn = dag.layout(names, upstream)
    boxes = sorted((n.layer, n.y) for n in drawn.nodes)
    for (layer, y), (next_layer, next_y) in itertools.pairwise(boxes):
        if layer == next_layer:
            assert next_y - y >= dag.BOX_H
    assert all(e.source != "ghost" for e in drawn.edges)


def test_a_step_listed_before_its_upstream_step_still_comes_after_it() -> None:
    drawn = dag.layout(["late", "early"], {"late": ["early"]})
    at = {n.name: n for n in drawn.nodes}
    assert at["early"].layer == 0 and at["late"].layer == 1


def test_progress_counts_succeeded_and_failed_runs_of_all() -> None:
    p = views.progress({states.RunState.SUCCESS: 3, states.RunState.FAILURE: 1, "KILLED": 1})
    assert (p.total, p.done, p.failed) == (5, 5, 2)
    q = views.progress({"QUEUED": 3, "SUCCESS": 1})
    assert (q.done, q.total, round(q.percent)) == (1, 4, 25)
    assert views.progress({}).percent == 0


def test_durations_read_well() -> None:
    assert views.duration(None, None, T0) == ""
    assert views.duration(T0, T0 + dt.timedelta(seconds=1.234), T0) == "1.23 s"
    assert views.duration(T0, None, T0 + dt.timedelta(seconds=185)) == "3 min 5 s"
    assert views.duration(T0, T0 + dt.timedelta(hours=2, minutes=5), T0) == "2 h 5 min"


def test_a_trigger_is_said_in_words() -> None:
    cron = schedules.Trigger(cron="0 9 * * 1-5", timezone="Europe/Amsterdam")
    assert views.trigger_text(None) == "now"
    assert (
        views.trigger_text(records.Schedule("j", cron, paused=True, next_fire_at=None))
        == "cron 0 9 * * 1-5 (Europe/Amsterdam) · paused"
    )
    once = schedules.Trigger(at=T0)
    assert views.trigger_text(records.Schedule("j", once, False, T0)) == "at 2026-01-01 00:00 UTC"


def test_the_parameters_that_vary_are_the_columns() -> None:
    grid = {"pipeline_parameters": {"region": ["eu", "us"], "fixed": [1]}, "t": {"f": [1, 2]}}
    axes = views.axes_of(grid)
    assert axes == [(None, "region"), ("t", "f")]
    params = {"pipeline": {"region": "us"}, "steps": {"t": {"f": 2}}}
    assert [views.value_at(params, a) for a in axes] == ["us", 2]
    assert views.format_value("us") == "us" and views.format_value([1]) == "[1]"


def step(name: str, start: float, end: float | None, state: str) -> records.StepRun:
    return records.StepRun(
        run_id="r",
        step_name=name,
        attempt=1,
        state=states.StepState(state),
        started_at=T0 + dt.timedelta(seconds=start),
        finished_at=None if end is None else T0 + dt.timedelta(seconds=end),
    )


def test_the_timeline_places_step_runs_on_the_run_s_span() -> None:
    bars, span = views.timeline(
        [step("a", 0, 2, "SUCCESS"), step("b", 2, None, "RUNNING")],
        T0 + dt.timedelta(seconds=4),
    )
    assert span == "4.00 s"
    assert [(b.step_name, b.left, b.width) for b in bars] == [("a", 0, 50), ("b", 50, 50)]
    assert views.timeline([], T0) == ([], "")


def test_an_edge_that_skips_layers_goes_around_the_boxes_between() -> None:
    # transform feeds load directly and through summarize: the direct edge skips a layer.
    drawn = dag.layout(
        ["extract", "transform", "summarize", "load"],
        {"transform": ["extract"], "summarize": ["transform"], "load": ["transform", "summarize"]},
    )
    (long_edge,) = [e for e in drawn.edges if (e.source, e.target) == ("transform", "load")]
    # Each straight stretch ("L x,y") is the edge passing a layer, at height y.
    heights = [float(part.split(" ")[0].split(",")[1]) for part in long_edge.path.split(" L")[1:]]
    assert heights, long_edge.path
    boxes = [n for n in drawn.nodes if n.layer == 2]
    for y in heights:
        for box in boxes:
            assert not (box.y <= y <= box.y + dag.BOX_H), (box, y)
