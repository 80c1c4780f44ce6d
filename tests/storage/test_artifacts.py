"""The artifact store: outputs written and read back, under a path or an fsspec URL."""

import pathlib
import pickle

import pytest

from runyard.storage import artifacts


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_outputs_round_trip_and_are_deleted_with_their_run(
    tmp_path: pathlib.Path, as_url: bool
) -> None:
    root = tmp_path / "artifacts"
    store = artifacts.ArtifactStore(f"file://{root}" if as_url else str(root))
    rows = {"rows": list(range(1000))}  # too big to keep in its URI: a file
    uri, size, serializer = store.put("run1", "extract", "result", rows)
    store.put("run1", "split", "train", [1.5] * 500)
    other, _, _ = store.put("run2", "extract", "result", "kept" * 1000)

    assert store.get(uri) == rows
    assert serializer == "pickle" and size > 0
    assert uri.startswith("file://") == as_url
    assert sorted(p.name for p in (root / "runs" / "run1").iterdir()) == [
        "extract.result.pickle",
        "split.train.pickle",
    ]

    store.delete_run("run1")
    assert not (root / "runs" / "run1").exists()
    assert store.get(other) == "kept" * 1000
    # Writing to a deleted run's folder makes it again.
    again, _, _ = store.put("run1", "extract", "result", list(range(500)))
    assert store.get(again) == list(range(500))


def test_a_small_output_is_kept_in_its_uri_and_writes_no_file(tmp_path: pathlib.Path) -> None:
    store = artifacts.ArtifactStore(str(tmp_path / "artifacts"))
    uri, size, serializer = store.put("run1", "count", "result", {"rows": 3, "name": "é"})
    assert artifacts.is_inline(uri) and uri.startswith("data:")
    assert serializer == "pickle" and 0 < size <= artifacts.INLINE_MAX
    assert store.get(uri) == {"rows": 3, "name": "é"}
    assert not (tmp_path / "artifacts").exists()
    # The biggest pickle kept inline, and the smallest that is not.
    edge = b"x" * (artifacts.INLINE_MAX - 40)
    while len(pickle.dumps(edge, protocol=pickle.HIGHEST_PROTOCOL)) < artifacts.INLINE_MAX:
        edge += b"x"
    assert artifacts.is_inline(store.put("run1", "edge", "result", edge)[0])
    big_uri, big_size, _ = store.put("run1", "edge", "bigger", edge + b"x")
    assert not artifacts.is_inline(big_uri) and big_size == artifacts.INLINE_MAX + 1
    assert store.get(big_uri) == edge + b"x"
    # Nothing to delete for an inline output; deleting the run leaves the others alone.
    store.delete_uri(uri)
    store.discard(["run1"], [uri], [])
    assert not (tmp_path / "artifacts" / "runs" / "run1").exists()


def test_a_local_store_sent_to_another_process_does_not_carry_fsspec(
    tmp_path: pathlib.Path,
) -> None:
    store = artifacts.ArtifactStore(str(tmp_path))
    assert store.kept_files("run1") == []  # makes its fsspec filesystem
    copy = pickle.loads(pickle.dumps(store))
    assert copy._fs is None and copy.root == store.root
    uri, _, _ = copy.put("run1", "s", "o", list(range(1000)))
    assert store.get(uri) == list(range(1000))


def test_a_value_that_cannot_be_pickled_raises(tmp_path: pathlib.Path) -> None:
    store = artifacts.ArtifactStore(str(tmp_path))
    with pytest.raises(Exception, match="pickle"):
        store.put("run1", "step", "result", lambda: None)
