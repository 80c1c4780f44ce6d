"""Datums, repo paths, pipeline specs and job sets: the pure rules of data pipelines."""

from __future__ import annotations

import datetime as dt

import pytest

from runyard import errors
from runyard.core import datapipelines as dp
from runyard.core import datarepos, datums

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

FILES = [
    datarepos.FileEntry(p, f"{i:064x}", 10 + i)
    for i, p in enumerate(
        sorted(
            [
                "/a.csv",
                "/b.txt",
                "/dir/c.csv",
                "/dir/d.txt",
                "/dir/sub/e.csv",
                "/other/f.txt",
            ]
        )
    )
]


def _cut(glob: str) -> dict[str, list[str]]:
    spec = datums.PfsInput("in", "repo", "master", glob)
    return {
        d.inputs[0].path: [f.path for f in d.inputs[0].files]
        for d in datums.glob_datums(spec, "c1", FILES)
    }


def test_root_glob_is_one_datum_of_every_file() -> None:
    assert _cut("/") == {"/": [f.path for f in FILES]}


def test_star_is_one_datum_per_top_level_file_or_folder() -> None:
    cut = _cut("/*")
    assert sorted(cut) == ["/a.csv", "/b.txt", "/dir", "/other"]
    assert cut["/dir"] == ["/dir/c.csv", "/dir/d.txt", "/dir/sub/e.csv"]


def test_star_star_slash_star_goes_one_level_down() -> None:
    assert sorted(_cut("/*/*")) == ["/dir/c.csv", "/dir/d.txt", "/dir/sub", "/other/f.txt"]


def test_double_star_crosses_folders() -> None:
    assert sorted(_cut("/**.csv")) == ["/a.csv", "/dir/c.csv", "/dir/sub/e.csv"]


def test_character_classes_and_question_marks() -> None:
    assert sorted(_cut("/[ab].*")) == ["/a.csv", "/b.txt"]
    assert sorted(_cut("/[!a].???")) == ["/b.txt"]


def test_a_broken_glob_is_refused_at_definition() -> None:
    with pytest.raises(errors.DefinitionError, match="unclosed"):
        datums.parse_input({"pfs": {"repo": "r", "glob": "/[abc"}})
    with pytest.raises(errors.DefinitionError, match="must start with '/'"):
        datums.parse_input({"pfs": {"repo": "r", "glob": "*"}})


def test_cross_is_every_combination_and_union_every_datum() -> None:
    left = datums.glob_datums(datums.PfsInput("l", "r1", "master", "/*"), "c1", FILES[:2])
    right = datums.glob_datums(datums.PfsInput("r", "r2", "master", "/*"), "c2", FILES[:3])
    assert len(datums.cross([left, right])) == 6
    assert len(datums.union([left, right])) == 5
    pair = datums.cross([left, right])[0]
    assert [p.name for p in pair.inputs] == ["l", "r"]


def test_datum_id_depends_on_paths_contents_and_salt_only() -> None:
    spec = datums.PfsInput("in", "repo", "master", "/*")
    (first,) = [d for d in datums.glob_datums(spec, "c1", FILES) if d.inputs[0].path == "/dir"]
    (again,) = [d for d in datums.glob_datums(spec, "c9", FILES) if d.inputs[0].path == "/dir"]
    assert first.id_for("salt") == again.id_for("salt")  # another commit, same files
    assert first.id_for("salt") != first.id_for("other salt")
    changed = [
        datarepos.FileEntry(f.path, "f" * 64, f.size) if f.path == "/dir/d.txt" else f
        for f in FILES
    ]
    (edited,) = [d for d in datums.glob_datums(spec, "c2", changed) if d.inputs[0].path == "/dir"]
    assert edited.id_for("salt") != first.id_for("salt")


@pytest.mark.parametrize("bad", ["/../etc/passwd", "a/../../b", "..", "a\\b", "a\x00b"])
def test_paths_that_would_leave_the_repo_are_refused(bad: str) -> None:
    with pytest.raises(errors.UsageError):
        datarepos.normalize_path(bad)


def test_paths_are_normalized_to_absolute_posix() -> None:
    assert datarepos.normalize_path("a//b/./c/") == "/a/b/c"
    assert datarepos.normalize_path("") == "/"


def test_targets_parse_repo_ref_and_path() -> None:
    assert datarepos.parse_target("images@dev:/x/y.png") == datarepos.Target(
        "images", "dev", "/x/y.png"
    )
    assert datarepos.parse_target("images") == datarepos.Target("images", None, "/")
    with pytest.raises(errors.UsageError, match="names no path"):
        datarepos.parse_target("images@master", need_path=True)
    with pytest.raises(errors.UsageError, match="not valid"):
        datarepos.parse_target("bad name@master")


def _spec(**changes: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "pipeline": {"name": "edges"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "transform": {"cmd": ["sh"], "stdin": ["true"]},
    }
    raw.update(changes)
    return raw


def test_a_spec_parses_with_pachyderm_field_names() -> None:
    spec = dp.parse_spec(
        _spec(
            parallelism_spec={"constant": 4},
            datum_tries=2,
            datum_timeout="1m",
            job_timeout="2h",
            egress={"URL": "file:///tmp/out"},
        )
    )
    assert spec.parallelism == 4
    assert spec.datum_tries == 2
    assert spec.datum_timeout == 60
    assert spec.job_timeout == 7200
    assert spec.egress == "file:///tmp/out"
    assert dp.parse_spec(spec.to_json()) == spec  # what is stored reads back the same


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline": {}}, "pipeline.name"),
        ({"transform": {"cmd": []}}, "transform.cmd"),
        ({"transform": {"python": "nofunction"}}, "file.py:function"),
        ({"datum_tries": 0}, "datum_tries"),
        ({"datum_timeout": "soon"}, "datum_timeout"),
        ({"inputs": {}}, "unknown field"),
        ({"input": {"pfs": {"repo": "edges", "glob": "/"}}}, "its own output"),
        (
            {
                "input": {
                    "cross": [
                        {"pfs": {"repo": "a", "glob": "/"}},
                        {"pfs": {"repo": "a", "glob": "/*"}},
                    ]
                }
            },
            "more than once",
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(errors.DefinitionError, match=message):
        dp.parse_spec(_spec(**changes))


def test_python_transform_files_resolve_against_the_spec_folder() -> None:
    spec = dp.parse_spec(_spec(transform={"python": "steps/t.py:run"}), base_dir="/proj")
    assert spec.transform.python == "/proj/steps/t.py:run"


def test_job_transitions_follow_the_table() -> None:
    dp.check_data_job_transition(dp.DataJobState.CREATED, dp.DataJobState.STARTING)
    with pytest.raises(errors.TransitionError):
        dp.check_data_job_transition(dp.DataJobState.SUCCESS, dp.DataJobState.RUNNING)
    with pytest.raises(errors.TransitionError):
        dp.check_data_job_transition(dp.DataJobState.CREATED, dp.DataJobState.SUCCESS)


def _pipeline(name: str, *repos: str) -> dp.Pipeline:
    inputs = [{"pfs": {"repo": r, "glob": "/"}} for r in repos]
    raw = _spec(
        pipeline={"name": name},
        input=inputs[0] if len(inputs) == 1 else {"cross": inputs},
    )
    return dp.Pipeline(dp.parse_spec(raw), 1, "salt", T0, T0)


def test_a_job_set_holds_every_downstream_pipeline_upstream_first() -> None:
    everything = {
        p.name: p
        for p in [
            _pipeline("clean", "raw"),
            _pipeline("stats", "clean"),
            _pipeline("report", "stats", "labels"),
            _pipeline("unrelated", "other"),
        ]
    }
    planned = dp.plan_job_set(
        everything,
        [everything["clean"]],
        global_id="g1",
        heads=lambda repo, branch: {"labels": "L7"}.get(repo),
        now=T0,
        origin=("raw", "master", "g1"),
    )
    assert [(j.pipeline, j.position) for j, _ in planned] == [
        ("clean", 0),
        ("stats", 1),
        ("report", 2),
    ]
    report = planned[2][0]
    assert dict(report.input_commits) == {"stats": "g1", "labels": "L7"}
    assert all(j.id == "g1" and j.state is dp.DataJobState.CREATED for j, _ in planned)
