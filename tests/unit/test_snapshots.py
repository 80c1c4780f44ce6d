"""Snapshot manifests, ids, differences and environments (pure ``core.snapshots``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import platform

import pytest

from runyard import errors
from runyard.core import snapshots
from runyard.execution import environment

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
ENV = snapshots.Environment("3.11.7", "cpython", "Linux-x86_64", {"numpy": "1.26.4"})


def f(path: str, content: bytes = b"x", mode: int = snapshots.PLAIN) -> snapshots.SnapshotFile:
    return snapshots.SnapshotFile(path, hashlib.sha256(content).hexdigest(), len(content), mode)


def snap(*files: snapshots.SnapshotFile, root: str = "/p") -> snapshots.Snapshot:
    return snapshots.make_snapshot(root=root, files=files, environment=ENV, created_at=T0)


def test_the_same_files_of_one_folder_and_environment_give_one_id_in_any_order_or_time() -> None:
    a = snap(f("b.py", b"b"), f("a.py", b"a"), f("lib/c.py", b"c"))
    b = snapshots.make_snapshot(
        root=a.root,
        files=[f("lib/c.py", b"c"), f("a.py", b"a"), f("b.py", b"b")],
        environment=ENV,
        created_at=T0 + dt.timedelta(days=3),
    )

    assert a.id == b.id
    assert len(a.id) == 64 and int(a.id, 16) >= 0
    assert [x.path for x in a.files] == ["a.py", "b.py", "lib/c.py"]
    assert a.total_bytes == 3 and a.file_count == 3


def test_the_same_files_taken_elsewhere_or_in_another_environment_are_another_snapshot() -> None:
    files = [f("a.py", b"a")]
    a = snap(*files)
    other_env = snapshots.Environment("3.12.1", "cpython", "Darwin-arm64", {})
    moved = snapshots.make_snapshot(root="/elsewhere", files=files, environment=ENV, created_at=T0)
    upgraded = snapshots.make_snapshot(
        root=a.root, files=files, environment=other_env, created_at=T0
    )

    assert len({a.id, moved.id, upgraded.id}) == 3


@pytest.mark.parametrize(
    "changed",
    [
        [f("a.py", b"A")],  # content
        [f("a2.py", b"a")],  # path
        [f("a.py", b"a", mode=snapshots.EXECUTABLE)],  # executable bit
        [f("a.py", b"a"), f("b.py", b"")],  # one more file, even empty
    ],
    ids=["content", "path", "mode", "added"],
)
def test_any_change_of_the_files_changes_the_id(changed: list[snapshots.SnapshotFile]) -> None:
    assert snap(f("a.py", b"a")).id != snap(*changed).id


def test_the_id_is_the_sha256_of_the_canonical_manifest_with_root_and_environment() -> None:
    one = f("a.py", b"a")
    environment = (
        '{"distributions":{"numpy":"1.26.4"},"implementation":"cpython",'
        '"platform":"Linux-x86_64","python_version":"3.11.7"}'
    )
    manifest = f'["/p",{environment},[["a.py","{one.digest}",1,420]]]'
    assert snap(one).id == hashlib.sha256(manifest.encode()).hexdigest()


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../up.py", "a/../../b", "a//b", "./a", "a/.", "a\x00b", "a/"]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(errors.UsageError, match="not a relative path inside the project"):
        snap(f(path))


def test_a_path_twice_or_as_file_and_folder_is_refused() -> None:
    with pytest.raises(errors.UsageError, match=r"'a\.py' appears twice"):
        snap(f("a.py"), f("a.py", b"y"))
    with pytest.raises(errors.UsageError, match="'lib' is both a file and a folder"):
        snap(f("lib"), f("lib/deep/x.py"))


def test_diff_names_added_removed_and_changed_paths() -> None:
    a = snap(f("keep.py"), f("gone.py"), f("edit.py", b"1"), f("run.sh", b"#!"))
    b = snap(
        f("keep.py"),
        f("new/x.py"),
        f("edit.py", b"2"),
        f("run.sh", b"#!", mode=snapshots.EXECUTABLE),
    )

    d = snapshots.diff(a, b)

    assert d.added == ("new/x.py",)
    assert d.removed == ("gone.py",)
    assert d.changed == ("edit.py", "run.sh")
    assert d and not snapshots.diff(a, a)


def test_environment_difference_is_none_for_the_same_environment() -> None:
    same = snapshots.Environment("3.11.7", "cpython", "Linux-x86_64", {"numpy": "1.26.4"})
    assert snapshots.environment_difference(ENV, same) is None


def test_environment_difference_names_every_kind_of_change_in_one_line() -> None:
    recorded = snapshots.Environment(
        "3.11.7", "cpython", "Linux-x86_64", {"numpy": "1.26.4", "six": "1.16.0", "a": "1"}
    )
    current = snapshots.Environment(
        "3.12.1", "cpython", "Linux-aarch64", {"numpy": "2.0.0", "polars": "1.2.0", "a": "1"}
    )

    text = snapshots.environment_difference(recorded, current)

    assert text == (
        "Python 3.11.7 -> 3.12.1; platform Linux-x86_64 -> Linux-aarch64; "
        "distributions changed: numpy 1.26.4 -> 2.0.0; distributions added: polars 1.2.0; "
        "distributions removed: six 1.16.0"
    )
    assert "\n" not in text


def test_environment_difference_names_the_implementation_and_shortens_long_lists() -> None:
    recorded = snapshots.Environment("3.10.14", "cpython", "Linux-x86_64", {})
    current = snapshots.Environment(
        "3.10.14", "pypy", "Linux-x86_64", {f"pkg{i}": "1" for i in range(8)}
    )

    text = snapshots.environment_difference(recorded, current, most=3)

    assert text == (
        "Python cpython 3.10.14 -> pypy 3.10.14; "
        "distributions added: pkg0 1, pkg1 1, pkg2 1 and 5 more"
    )


def test_environment_and_files_round_trip_through_json() -> None:
    one = f("bin/run", b"#!", mode=snapshots.EXECUTABLE)
    assert snapshots.SnapshotFile.from_json(one.to_json()) == one
    assert snapshots.Environment.from_json(ENV.to_json()) == ENV


def test_capture_records_this_interpreter_and_what_is_installed() -> None:
    env = environment.capture()

    assert env.python_version == platform.python_version()
    assert (
        env.implementation == "cpython"
        or env.implementation == platform.python_implementation().lower()
    )
    assert env.platform == f"{platform.system()}-{platform.machine()}"
    assert env.distributions["sqlalchemy"] == importlib.metadata.version("sqlalchemy")
    assert env.distributions["pydantic"] == importlib.metadata.version("pydantic")
    assert environment.normalise("Typing_Extensions") == "typing-extensions"
    assert snapshots.environment_difference(env, environment.capture()) is None
