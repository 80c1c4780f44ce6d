"""API tokens: who may call the REST API, and with what scope.

A token reads ``ry_<id>_<secret>``. The id names the token (it is shown in lists and logs);
the secret is shown once, when the token is made, and only its sha256 is stored: the secret
is 32 random bytes, so a plain hash of it cannot be reversed by guessing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac

from runyard import errors

__all__ = ["PREFIX", "Scope", "Token", "digest", "matches", "parse"]

PREFIX = "ry_"


class Scope(enum.StrEnum):
    """What a token may do; each scope allows what the ones before it allow."""

    READ = "read"  # list, inspect, read logs and results, follow events
    WRITE = "write"  # also create, start, stop and delete jobs; upload data
    ADMIN = "admin"  # also manage tokens

    def allows(self, needed: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(needed)


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """A token as stored: never its secret."""

    id: str
    name: str
    scope: Scope
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def parse(text: str) -> tuple[str, str]:
    """(id, secret) of a token's text; raises ``AuthError`` for text of another form."""
    if text.startswith(PREFIX):
        token_id, _, secret = text[len(PREFIX) :].partition("_")
        if token_id.isalnum() and secret:
            return token_id, secret
    raise errors.AuthError(
        "The API token is not one runyard made (they read ry_<id>_<secret>); make one with "
        "`runyard token create`"
    )


def digest(secret: str) -> str:
    """What is stored of a secret: its sha256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    """Whether ``secret`` is the one whose digest is stored, compared in constant time."""
    return hmac.compare_digest(digest(secret), stored_digest)
