"""SQL for API tokens: made, checked, listed, revoked. Only digests of secrets are stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from runyard import errors
from runyard.core import tokens
from runyard.storage import schema

__all__ = ["check", "insert", "list_tokens", "revoke"]


def insert(conn: sa.Connection, token: tokens.Token, secret: str) -> None:
    conn.execute(
        schema.api_tokens.insert().values(
            id=token.id,
            name=token.name,
            scope=token.scope.value,
            secret_digest=tokens.digest(secret),
            created_at=token.created_at,
        )
    )


def check(conn: sa.Connection, text: str) -> tokens.Token:
    """The active token ``text`` is; raises ``AuthError`` (the same message whether the id is
    unknown, the secret wrong or the token revoked, so nothing is learnt by guessing)."""
    token_id, secret = tokens.parse(text)
    row = conn.execute(
        sa.select(schema.api_tokens).where(schema.api_tokens.c.id == token_id)
    ).first()
    if row is None or row.revoked_at is not None or not tokens.matches(secret, row.secret_digest):
        raise errors.AuthError(
            "The API token is not valid (unknown or revoked); make one with `runyard token create`"
        )
    return _token(row)


def list_tokens(conn: sa.Connection) -> list[tokens.Token]:
    c = schema.api_tokens.c
    rows = conn.execute(sa.select(schema.api_tokens).order_by(c.created_at, c.id)).all()
    return [_token(r) for r in rows]


def revoke(conn: sa.Connection, token_id: str, *, at: dt.datetime) -> tokens.Token:
    """Revoke a token by id; raises ``NotFoundError`` naming the known ids."""
    c = schema.api_tokens.c
    row = conn.execute(sa.select(schema.api_tokens).where(c.id == token_id)).first()
    if row is None:
        known = [r.id for r in conn.execute(sa.select(c.id))]
        raise errors.NotFoundError(
            f"No API token {token_id!r}{errors.did_you_mean(token_id, known)}"
        )
    if row.revoked_at is None:
        conn.execute(schema.api_tokens.update().where(c.id == token_id).values(revoked_at=at))
    return tokens.Token(
        row.id, row.name, tokens.Scope(row.scope), row.created_at, row.revoked_at or at
    )


def _token(row: Any) -> tokens.Token:
    return tokens.Token(row.id, row.name, tokens.Scope(row.scope), row.created_at, row.revoked_at)
