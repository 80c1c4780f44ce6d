"""A python transform: called once per datum with the folders runyard prepared."""

import pathlib


def count(inputs: dict[str, pathlib.Path], output_dir: pathlib.Path) -> None:
    words = 0
    for path in sorted(inputs["edges"].rglob("*")):
        if path.is_file():
            words += len(path.read_text().split())
    (output_dir / "words.txt").write_text(f"{words}\n")
