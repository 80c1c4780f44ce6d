"""Who is calling: the API token in ``Authorization: Bearer <token>``, and its scope."""

from __future__ import annotations

from collections.abc import Callable

import fastapi

from runyard import errors
from runyard.app import service
from runyard.core import tokens

__all__ = ["require"]


def require(scope: tokens.Scope) -> Callable[[fastapi.Request], tokens.Token | None]:
    """A dependency that lets the request through when it carries a token allowing
    ``scope`` (or when the server runs with auth off: then it gives None). Raises
    ``AuthError`` (401) or ``ForbiddenError`` (403)."""

    def check(request: fastapi.Request) -> tokens.Token | None:
        if not request.app.state.auth:
            return None
        header = request.headers.get("authorization", "")
        kind, _, text = header.partition(" ")
        if kind.lower() != "bearer" or not text.strip():
            raise errors.AuthError()
        ryard: service.Runyard = request.app.state.runyard
        token = ryard.check_token(text.strip())
        if not token.scope.allows(scope):
            raise errors.ForbiddenError(
                f"Token {token.id} has scope {token.scope}; this needs {scope}. Make one with "
                f"`runyard token create --scope {scope}`"
            )
        return token

    return check
