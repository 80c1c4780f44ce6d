"""The artifact store: outputs written and read back, under a path or an fsspec URL."""

import pathlib

import pytest

from runyard.storage import artifacts


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_outputs_round_trip_and_are_deleted_with_their_run(
    tmp_path: pathlib.Path, as_url: bool
) -> None:
    root = tmp_path / "artifacts"
    store = artifacts.ArtifactStore(f"file://{root}" if as_url else str(root))
    uri, size, serializer = store.put("run1", "extract", "result", {"rows": [1, 2, 3]})
    store.put("run1", "split", "train", [1])
    other, _, _ = store.put("run2", "extract", "result", "kept")

    assert store.get(uri) == {"rows": [1, 2, 3]}
    assert serializer == "pickle" and size > 0
    assert uri.startswith("file://") == as_url
    assert sorted(p.name for p in (root / "runs" / "run1").iterdir()) == [
        "extract.result.pickle",
        "split.train.pickle",
    ]

    store.delete_run("run1")
    assert not (root / "runs" / "run1").exists()
    assert store.get(other) == "kept"
    # Writing to a deleted run's folder makes it again.
    again, _, _ = store.put("run1", "extract", "result", 5)
    assert store.get(again) == 5


def test_a_value_that_cannot_be_pickled_raises(tmp_path: pathlib.Path) -> None:
    store = artifacts.ArtifactStore(str(tmp_path))
    with pytest.raises(Exception, match="pickle"):
        store.put("run1", "step", "result", lambda: None)
