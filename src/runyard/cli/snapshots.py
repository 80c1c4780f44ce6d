"""``runyard snapshot ...``: take, list, show and compare project snapshots."""

from __future__ import annotations

import pathlib
from typing import Annotated

import typer
from rich.table import Table

from runyard.app import service
from runyard.cli import render

__all__ = ["app"]

app = typer.Typer(
    help="Take, list, show and compare snapshots of projects (their files and environment).",
    no_args_is_help=True,
)

SnapshotArg = Annotated[
    str, typer.Argument(metavar="SNAPSHOT_ID", help="A snapshot id or its prefix.")
]


@app.command("take")
def take(
    directory: Annotated[
        pathlib.Path,
        typer.Argument(metavar="[DIR]", help="The project folder (default: the current folder)."),
    ] = pathlib.Path("."),
) -> None:
    """Snapshot a project folder: its files (minus what .gitignore ignores, the data folder
    and runyard's home) and its environment. Unchanged contents are not stored again."""
    with service.connect() as ryard:
        taken = ryard.take_snapshot(directory)
    for note in taken.notes:
        render.err_console.print(f"note: {note}", markup=False)
    s = taken.snapshot
    render.console.print(
        f"Snapshot {s.id}: {s.file_count} files, {render.size(s.total_bytes)}; "
        f"{render.size(taken.bytes_written)} newly stored ({taken.blobs_written} new "
        f"blob{'' if taken.blobs_written == 1 else 's'})",
        markup=False,
    )


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 100,
) -> None:
    """List snapshots, newest first."""
    with service.connect() as ryard:
        found = ryard.list_snapshots(limit=limit)
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("ID", "ROOT", "FILES", "SIZE", "CREATED"):
        table.add_column(column, no_wrap=True, justify="right" if column == "FILES" else "left")
    for s in found:
        size, created = render.size(s.total_bytes), render.relative(s.created_at)
        table.add_row(s.id, s.root, str(s.file_count), size, created)
    render.console.print(table)


@app.command("show")
def show(
    snapshot_id: SnapshotArg,
    raw: Annotated[bool, typer.Option("--raw", help="Every field as JSON.")] = False,
) -> None:
    """Show a snapshot's files with their sizes, and the environment it was taken in."""
    with service.connect() as ryard:
        s = ryard.get_snapshot(snapshot_id)
    if raw:
        render.console.print(render.to_json(s.to_json()), markup=False)
        return
    created = s.created_at.isoformat(timespec="seconds")
    lines = [
        f"Snapshot {s.id}",
        f"  root: {s.root}",
        f"  created: {created} ({render.relative(s.created_at)})",
        f"  files: {s.file_count}, {render.size(s.total_bytes)}",
        f"  environment: {s.environment.summary}",
    ]
    render.console.print("\n".join(lines), markup=False)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("MODE", no_wrap=True)
    table.add_column("PATH", no_wrap=True)
    for f in s.files:
        table.add_row(render.size(f.size), oct(f.mode)[2:], f.path)
    render.console.print(table)


@app.command("diff")
def diff(snapshot_a: SnapshotArg, snapshot_b: SnapshotArg) -> None:
    """What changed from snapshot A to snapshot B: + added, - removed, ~ changed files."""
    with service.connect() as ryard:
        changes = ryard.diff_snapshots(snapshot_a, snapshot_b)
    for mark, paths in (("+", changes.added), ("-", changes.removed), ("~", changes.changed)):
        for path in paths:
            render.console.print(f"{mark} {path}", markup=False)
    render.console.print(
        f"{len(changes.added)} added, {len(changes.removed)} removed, "
        f"{len(changes.changed)} changed",
        markup=False,
    )
