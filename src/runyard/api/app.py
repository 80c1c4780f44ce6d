"""The FastAPI application: routes, errors as JSON, and the token check."""

from __future__ import annotations

import fastapi
import fastapi.exceptions
import fastapi.responses
import starlette.exceptions
import starlette.routing

import runyard
from runyard import errors
from runyard.api import events, routes, schedules, workdata
from runyard.app import service

__all__ = ["create_app"]


def create_app(
    ryard: service.Runyard, *, auth: bool = True, keepalive: float = 15.0
) -> fastapi.FastAPI:
    """The REST API on ``ryard``. With ``auth`` every endpoint but ``/api/v1/health`` needs
    an API token; without it anyone who reaches the server may do anything, so serve it
    only on a loopback address then (``runyard serve`` refuses otherwise)."""
    api = fastapi.FastAPI(
        title="runyard",
        version=runyard.__version__,
        summary="Jobs, runs, step runs and logs of a runyard store.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    api.state.runyard = ryard
    api.state.auth = auth
    api.state.keepalive = keepalive  # seconds of quiet before an event stream's comment
    api.state.stopping = False  # set when the server stops: open event streams end

    @api.exception_handler(errors.RunyardError)
    def _runyard_error(request: fastapi.Request, exc: errors.RunyardError) -> fastapi.Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return fastapi.responses.JSONResponse(
            {"error": type(exc).__name__, "message": exc.message},
            status_code=exc.http_status,
            headers=headers,
        )

    @api.exception_handler(fastapi.exceptions.RequestValidationError)
    def _bad_request(
        request: fastapi.Request, exc: fastapi.exceptions.RequestValidationError
    ) -> fastapi.Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return fastapi.responses.JSONResponse(
            {"error": "ValidationError", "message": problems}, status_code=422
        )

    @api.exception_handler(starlette.exceptions.HTTPException)
    def _http_error(
        request: fastapi.Request, exc: starlette.exceptions.HTTPException
    ) -> fastapi.Response:
        # Routing's own errors (no such path: 404, a method the path lacks: 405) as JSON too.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_methods_of(api, request.url.path))
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return fastapi.responses.JSONResponse(
            {"error": "HTTPError", "message": message},
            status_code=exc.status_code,
            headers=headers,
        )

    @api.get("/api/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        """Whether the server is up; needs no token."""
        return {"status": "ok", "version": runyard.__version__}

    api.include_router(routes.router)
    api.include_router(events.router)
    api.include_router(workdata.router)
    api.include_router(schedules.router)
    return api


def _methods_of(api: fastapi.FastAPI, path: str) -> list[str]:
    """Every method some route of ``api`` answers at ``path``."""
    methods: set[str] = set()
    for route in api.routes:
        if isinstance(route, starlette.routing.Route) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)
