"""Datums: the slices of input one transform call processes, cut from commits by glob patterns.

A ``pfs`` input's glob is matched against every file path and every folder path of its
commit; each match is one datum, holding the matched file or every file under the matched
folder (``/`` is one datum of everything, ``/*`` one per top-level file or folder, ``/*/*``
one per entry one level down, ``/**.csv`` one per CSV file anywhere). A ``cross`` is every
combination of its inputs' datums; a ``union`` all of its inputs' datums, one after another.

A datum's id is the sha256 of the pipeline's salt and, for each input, its name, the matched
path and every file's path and content digest: the same files under the same pipeline salt
give the same id, so a datum processed before is recognised and skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runyard import errors
from runyard.core import datarepos

__all__ = [
    "Datum",
    "DatumInput",
    "Input",
    "PfsInput",
    "cross",
    "glob_datums",
    "glob_regex",
    "parse_input",
    "union",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PfsInput:
    """Files of ``repo@branch``, cut into datums by ``glob``; seen by the transform under
    the input folder's ``name``."""

    name: str
    repo: str
    branch: str
    glob: str


@dataclasses.dataclass(frozen=True, slots=True)
class Combined:
    kind: str  # "cross" or "union"
    inputs: tuple[Input, ...]


Input = PfsInput | Combined


def parse_input(spec: Any, where: str = "input") -> Input:
    """An input from its spec: ``{"pfs": {...}}``, ``{"cross": [...]}`` or
    ``{"union": [...]}``. Raises ``DefinitionError`` naming the field."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise errors.DefinitionError(
            f"{where} must hold exactly one of pfs, cross, union; got {spec!r}"
        )
    ((kind, body),) = spec.items()
    if kind == "pfs":
        if not isinstance(body, Mapping):
            raise errors.DefinitionError(f"{where}.pfs must be an object with repo and glob")
        unknown = set(body) - {"repo", "branch", "glob", "name"}
        if unknown:
            raise errors.DefinitionError(
                f"{where}.pfs has unknown field(s) {', '.join(sorted(unknown))}; known: "
                "repo, branch, glob, name"
            )
        if "repo" not in body or "glob" not in body:
            raise errors.DefinitionError(f"{where}.pfs needs repo and glob, e.g. glob: /*")
        repo = datarepos.check_name(str(body["repo"]))
        glob = str(body["glob"])
        if not glob.startswith("/"):
            raise errors.DefinitionError(
                f"{where}.pfs.glob {glob!r} must start with '/', e.g. / or /* or /**.csv"
            )
        if ".." in glob.split("/"):
            raise errors.DefinitionError(f"{where}.pfs.glob {glob!r} must not hold '..'")
        glob_regex(glob)  # refuse a broken pattern now
        name = datarepos.check_name(str(body.get("name") or repo), "Input")
        branch = datarepos.check_name(str(body.get("branch") or "master"), "Branch")
        return PfsInput(name, repo, branch, glob)
    if kind in ("cross", "union"):
        if not isinstance(body, Sequence) or isinstance(body, str) or not body:
            raise errors.DefinitionError(f"{where}.{kind} must be a non-empty list of inputs")
        inputs = tuple(parse_input(item, f"{where}.{kind}[{i}]") for i, item in enumerate(body))
        names = [p.name for p in pfs_inputs(Combined(kind, inputs))]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise errors.DefinitionError(
                f"{where}.{kind} names input(s) {', '.join(repeated)} more than once; give "
                "each pfs input its own name"
            )
        return Combined(kind, inputs)
    raise errors.DefinitionError(f"{where} has unknown kind {kind!r}; use pfs, cross or union")


def pfs_inputs(spec: Input) -> list[PfsInput]:
    """Every ``pfs`` input inside ``spec``, in order."""
    if isinstance(spec, PfsInput):
        return [spec]
    return [p for sub in spec.inputs for p in pfs_inputs(sub)]


def input_json(spec: Input) -> dict[str, Any]:
    if isinstance(spec, PfsInput):
        return {
            "pfs": {"name": spec.name, "repo": spec.repo, "branch": spec.branch, "glob": spec.glob}
        }
    return {spec.kind: [input_json(i) for i in spec.inputs]}


@functools.lru_cache(maxsize=256)
def glob_regex(glob: str) -> re.Pattern[str]:
    """The regex a glob compiles to: ``**`` crosses folders, ``*`` and ``?`` do not,
    ``[...]`` is a character class. Raises ``DefinitionError`` for a broken class."""
    out: list[str] = []
    i = 0
    normalized = "/" + "/".join(p for p in glob.split("/") if p) if glob != "/" else "/"
    while i < len(normalized):
        ch = normalized[i]
        if ch == "*":
            if normalized.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = normalized.find("]", i + 2)
            if end == -1:
                raise errors.DefinitionError(f"Glob {glob!r} has an unclosed '['")
            body = normalized[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise errors.DefinitionError(f"Glob {glob!r} is not valid: {exc}") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class DatumInput:
    """One input's part of a datum: the matched path and the files it holds."""

    name: str
    repo: str
    commit: str
    path: str
    files: tuple[datarepos.FileEntry, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Datum:
    inputs: tuple[DatumInput, ...]

    def id_for(self, salt: str) -> str:
        hasher = hashlib.sha256(salt.encode())
        for part in sorted(self.inputs, key=lambda p: p.name):
            hasher.update(f"\x00{part.name}\x00{part.path}".encode())
            for f in part.files:
                hasher.update(f"\x01{f.path}\x02{f.digest}".encode())
        return hasher.hexdigest()[:32]

    @property
    def paths(self) -> list[str]:
        return [f"{p.name}:{p.path}" for p in self.inputs]

    @property
    def size(self) -> int:
        return sum(f.size for p in self.inputs for f in p.files)


def glob_datums(spec: PfsInput, commit: str, files: Iterable[datarepos.FileEntry]) -> list[Datum]:
    """The datums ``spec``'s glob cuts from a commit's ``files`` (sorted by path), in
    path order of their matches."""
    regex = glob_regex(spec.glob)
    whole = regex.pattern == "/\\Z"  # the glob "/" is the one pattern matching the root
    matched: dict[str, list[datarepos.FileEntry]] = {}
    verdict: dict[str, bool] = {}
    for entry in files:
        # The file itself and every folder above it are candidates, root first.
        parts = entry.path.split("/")[1:]
        candidates = ["/" + "/".join(parts[: k + 1]) for k in range(len(parts))]
        if whole:
            candidates.insert(0, "/")
        for candidate in candidates:
            ok = verdict.get(candidate)
            if ok is None:
                ok = verdict[candidate] = regex.match(candidate) is not None
            if ok:
                matched.setdefault(candidate, []).append(entry)
    return [
        Datum((DatumInput(spec.name, spec.repo, commit, path, tuple(found)),))
        for path, found in sorted(matched.items())
    ]


def cross(groups: Sequence[list[Datum]]) -> list[Datum]:
    """Every combination of one datum from each group."""
    return [
        Datum(tuple(part for d in combo for part in d.inputs))
        for combo in itertools.product(*groups)
    ]


def union(groups: Sequence[list[Datum]]) -> list[Datum]:
    return [d for group in groups for d in group]
