"""``runyard token create|list|revoke``: API tokens for the REST API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from runyard.app import service
from runyard.cli import render
from runyard.core import tokens

__all__ = ["app"]

app = typer.Typer(help="API tokens: who may call the REST API, and with what scope.")


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it.")] = "default",
    scope: Annotated[
        tokens.Scope,
        typer.Option(
            "--scope",
            case_sensitive=False,
            help="read: look only; write: also create, start, stop and delete; admin: all.",
        ),
    ] = tokens.Scope.READ,
) -> None:
    """Make a token and print it. It is shown this once: only a digest of it is stored."""
    with service.connect() as ryard:
        token, text = ryard.create_token(name, scope)
    render.err_console.print(
        f"Token {token.id} ({token.scope}) made for {token.name!r}; it is shown only now:",
        markup=False,
    )
    render.console.print(text, markup=False, soft_wrap=True)


@app.command("list")
def list_tokens() -> None:
    """List tokens (never their secrets)."""
    with service.connect() as ryard:
        made = ryard.list_tokens()
    table = Table("ID", "NAME", "SCOPE", "CREATED", "REVOKED", box=None)
    for token in made:
        table.add_row(
            token.id,
            token.name,
            token.scope.value,
            token.created_at.isoformat(timespec="seconds"),
            token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else "-",
        )
    render.console.print(table)


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The token's id.")],
) -> None:
    """Revoke a token: the API refuses it from now on."""
    with service.connect() as ryard:
        token = ryard.revoke_token(token_id)
    render.console.print(f"Token {token.id} ({token.name!r}) revoked", markup=False)
