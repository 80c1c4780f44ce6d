"""``runyard repo ...``, ``put file``, ``get file``, ``delete file``, ``list file``,
``list commit`` and ``inspect commit``: data repos as a Pachyderm user drives them."""

from __future__ import annotations

import pathlib
import sys
from typing import Annotated

import typer
from rich.table import Table

from runyard import errors
from runyard.app import service
from runyard.cli import datajobs, render
from runyard.core import datarepos

__all__ = [
    "delete_app",
    "delete_file",
    "get_app",
    "get_file",
    "inspect_commit",
    "list_commit",
    "list_file",
    "list_repo",
    "put_app",
    "put_file",
    "repo_app",
]

repo_app = typer.Typer(
    help="Create, list and delete data repos: versioned file sets with branches.",
    no_args_is_help=True,
)
put_app = typer.Typer(help="Put data into a repo.", no_args_is_help=True)
get_app = typer.Typer(help="Get data out of a repo.", no_args_is_help=True)
delete_app = typer.Typer(help="Delete data from a repo (as a new commit).", no_args_is_help=True)

TargetArg = Annotated[
    str,
    typer.Argument(metavar="REPO@BRANCH:/PATH", help="A repo, branch (or commit id) and path."),
]


@repo_app.command("create")
def create_repo(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The repo's name.")],
    description: Annotated[
        str, typer.Option("--description", "-d", help="What the repo holds.")
    ] = "",
) -> None:
    """Create an empty repo with a master branch."""
    with service.connect() as ryard:
        repo = ryard.data.create_repo(name, description=description)
    render.console.print(f"Repo {repo.name} created", markup=False)


@repo_app.command("list")
def list_repo() -> None:
    """List repos: name, when made, the size of master's head, and what they hold."""
    with service.connect() as ryard:
        found = ryard.data.list_repos()
    table = Table("NAME", "CREATED", "SIZE (MASTER)", "FILES", "DESCRIPTION", box=None)
    for repo, size, count in found:
        table.add_row(
            repo.name,
            render.relative(repo.created_at),
            render.size(size),
            str(count),
            repo.description,
        )
    render.console.print(table)


@repo_app.command("delete")
def delete_repo(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The repo to delete.")],
) -> None:
    """Delete a repo with its branches and commits (refused while a pipeline reads it)."""
    with service.connect() as ryard:
        ryard.data.delete_repo(name)
    render.console.print(f"Repo {name} deleted", markup=False)


@put_app.command("file")
def put_file(
    target: TargetArg,
    files: Annotated[
        list[pathlib.Path],
        typer.Option("--file", "-f", help="A local file (or folder, with -r); repeat it."),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Put every file under folders.")
    ] = False,
    message: Annotated[
        str, typer.Option("--message", "-m", help="A description of the commit.")
    ] = "",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="With no engine running, run the triggered data jobs here (the default); "
            "--no-wait leaves them for an engine.",
        ),
    ] = True,
) -> None:
    """Put local files into a repo as one new commit on the branch. The commit triggers a
    data job for every pipeline downstream of the branch, all with the commit's id."""
    with service.connect() as ryard:
        commit, jobs = ryard.data.put_files(target, files, recursive=recursive, description=message)
        render.console.print(
            f"Commit {commit.repo}@{commit.id} on {commit.branch}: {commit.file_count} "
            f"files, {render.size(commit.size)}",
            markup=False,
        )
        datajobs.follow(ryard, commit.id, jobs, wait=wait)


@get_app.command("file")
def get_file(
    target: TargetArg,
    output: Annotated[
        pathlib.Path | None,
        typer.Option("--output", "-o", help="Write here (a folder for a folder's files)."),
    ] = None,
) -> None:
    """Write a file's content to stdout (or -o FILE), or a folder's files under -o DIR."""
    parsed = datarepos.parse_target(target, need_path=True)
    with service.connect() as ryard:
        if output is not None:
            count = ryard.data.get_files(parsed, output)
            render.err_console.print(f"{count} file(s) written to {output}", markup=False)
            return
        for chunk in ryard.data.read_file(parsed):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


@delete_app.command("file")
def delete_file(
    target: TargetArg,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="As for `runyard put file`.")
    ] = True,
) -> None:
    """Delete a file or folder from the branch, as a new commit (older commits keep it)."""
    with service.connect() as ryard:
        commit, jobs = ryard.data.delete_files(target)
        render.console.print(
            f"Commit {commit.repo}@{commit.id} on {commit.branch}: {commit.file_count} files",
            markup=False,
        )
        datajobs.follow(ryard, commit.id, jobs, wait=wait)


def list_file(target: TargetArg) -> None:
    """List the files and folders in a folder of a commit (a branch means its head)."""
    with service.connect() as ryard:
        entries = ryard.data.list_files(target)
    table = Table("NAME", "TYPE", "SIZE", box=None)
    for e in entries:
        table.add_row(e.path, e.kind, render.size(e.size))
    render.console.print(table)


def list_commit(
    repo: Annotated[
        str, typer.Argument(metavar="REPO[@BRANCH]", help="A repo, and a branch to show only.")
    ],
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
) -> None:
    """List a repo's commits, newest first."""
    parsed = datarepos.parse_target(repo)
    with service.connect() as ryard:
        commits = ryard.data.list_commits(parsed.repo, parsed.ref, limit=limit)
    table = Table("REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "DESCRIPTION", box=None)
    for c in commits:
        table.add_row(
            c.repo,
            c.branch,
            c.id,
            render.relative(c.created_at),
            render.size(c.size),
            str(c.origin),
            c.description,
        )
    render.console.print(table)


def inspect_commit(
    ref: Annotated[str, typer.Argument(metavar="REPO@COMMIT_ID", help="Or REPO@BRANCH.")],
    raw: Annotated[bool, typer.Option("--raw", help="Every field, as JSON.")] = False,
) -> None:
    """Show a commit: its branch, parent, origin, size, and the data jobs of its id."""
    parsed = datarepos.parse_target(ref)
    if "@" not in ref:
        raise errors.UsageError(f"{ref!r} names no commit; give REPO@COMMIT_ID or REPO@BRANCH")
    with service.connect() as ryard:
        commit = ryard.data.commit_of(parsed)
        jobs = ryard.data.list_jobs(job_id=commit.id)
    if raw:
        out = commit.to_json()
        out["jobs"] = [j.to_json()["job"] | {"state": str(j.state)} for j in jobs]
        render.console.print_json(render.to_json(out))
        return
    table = Table(box=None, show_header=False)
    rows = [
        ("Commit", f"{commit.repo}@{commit.id}"),
        ("Branch", commit.branch),
        ("Parent", commit.parent or "-"),
        ("Origin", str(commit.origin)),
        ("Started", commit.created_at.isoformat(timespec="seconds")),
        ("Size", f"{render.size(commit.size)} in {commit.file_count} file(s)"),
        ("Description", commit.description or "-"),
        ("Jobs", ", ".join(f"{j.pipeline} ({j.state.lower()})" for j in jobs) or "-"),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    render.console.print(table)
