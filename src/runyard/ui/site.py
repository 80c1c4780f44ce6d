"""Serving the web UI from the API's FastAPI app: templates, static files, who is looking.

When the API needs tokens, so do the pages: the browser keeps the token in a cookie
(set by the login page's script, ``SameSite=Strict``) that the server checks on every
page, and the pages' scripts send the same token as ``Authorization: Bearer`` to the API.
Every change goes through the API, so a page view never changes anything.
"""

from __future__ import annotations

import pathlib
import urllib.parse
from typing import Any

import fastapi
import fastapi.responses
import fastapi.staticfiles
import fastapi.templating

from runyard import errors
from runyard.app import service
from runyard.core import tokens
from runyard.ui import views

__all__ = [
    "COOKIE",
    "Login",
    "error_page",
    "install",
    "render",
    "runyard_of",
    "templates",
    "viewer",
]

COOKIE = "runyard_token"
_HERE = pathlib.Path(__file__).resolve().parent

templates = fastapi.templating.Jinja2Templates(directory=_HERE / "templates")
templates.env.filters["value"] = views.format_value
templates.env.globals["quote"] = urllib.parse.quote


class Login(Exception):
    """The page needs a token the browser did not send (or one that is not valid)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def install(api: fastapi.FastAPI) -> None:
    """Serve the pages at ``/`` and their assets at ``/ui/static`` from ``api``."""
    from runyard.ui import datapages, pages  # the pages import this module

    api.mount(
        "/ui/static",
        fastapi.staticfiles.StaticFiles(directory=_HERE / "static"),
        name="ui-static",
    )
    api.include_router(pages.router)
    api.include_router(datapages.router)

    @api.exception_handler(Login)
    def _login(request: fastapi.Request, exc: Login) -> fastapi.Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urllib.parse.urlencode({"next": target, "why": exc.message})
        return fastapi.responses.RedirectResponse(f"/login?{query}", status_code=303)


def runyard_of(request: fastapi.Request) -> service.Runyard:
    ryard: service.Runyard = request.app.state.runyard
    return ryard


def viewer(request: fastapi.Request) -> tokens.Token | None:
    """The token of who is looking, or None when the API runs without auth. Raises
    ``Login`` when auth is on and the cookie holds no valid token."""
    if not request.app.state.auth:
        return None
    text = request.cookies.get(COOKIE, "").strip()
    if not text:
        raise Login("Log in with an API token to see this page.")
    try:
        return runyard_of(request).check_token(text)
    except errors.AuthError:
        raise Login("That token is not valid (revoked, or mistyped); give another.") from None


def render(
    request: fastapi.Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> fastapi.Response:
    """``template`` with ``context`` and what every page needs (auth on, the nav)."""
    base = {"auth": request.app.state.auth, "path": request.url.path}
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def error_page(request: fastapi.Request, exc: errors.RunyardError) -> fastapi.Response:
    """A page saying what went wrong, with the error's HTTP status."""
    return render(
        request,
        "error.html",
        {"title": type(exc).__name__, "message": exc.message},
        status_code=exc.http_status,
    )
