"""The HTTP side: one ``httpx.Client`` with the token, errors raised as ``ClientError``, and
the event stream read as dictionaries."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

__all__ = ["Client", "ClientError"]


class ClientError(Exception):
    """The API answered with an error: its HTTP status, error kind and message."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


class Client:
    """runyard's REST API at ``url`` with ``token`` (default: ``$RUNYARD_URL`` and
    ``$RUNYARD_TOKEN``, else ``http://127.0.0.1:8765`` and no token)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.url = (url or os.environ.get("RUNYARD_URL") or "http://127.0.0.1:8765").rstrip("/")
        token = token or os.environ.get("RUNYARD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call the API; the decoded JSON answer (None for 204). Raises ``ClientError``."""
        return self._checked(self.http.request(method, path, json=json_body, params=params))

    def create_jobs(self, jobs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create many jobs in one request, all or none; each as ``POST /jobs`` takes it
        (``{"processing": {"name": ...}, "parameters": {...}, ...}``). Their ids, in order."""
        answer = self.request("POST", "/jobs/batch", json_body={"jobs": list(jobs)})
        return list(answer["ids"])

    def upload_workdata(
        self,
        content: bytes | str | os.PathLike[str],
        *,
        name: str | None = None,
        media_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Upload bytes, or the file at a path, as WorkData; its record (``id``, ...)."""
        if isinstance(content, bytes):
            body = content
            name = name or "data"
        else:
            path = pathlib.Path(content)
            body = path.read_bytes()
            name = name or path.name
        answer = self.http.post(
            "/workdata",
            params={"name": name, "media_type": media_type},
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        return dict(self._checked(answer))

    def download_workdata(self, workdata_id: str) -> bytes:
        answer = self.http.get(f"/workdata/{workdata_id}/content")
        if answer.status_code >= 400:
            self._checked(answer)
        return answer.content

    def _checked(self, answer: httpx.Response) -> Any:
        if answer.status_code >= 400:
            try:
                body = answer.json()
                raise ClientError(answer.status_code, body["error"], body["message"])
            except (ValueError, KeyError, TypeError):
                raise ClientError(answer.status_code, "HTTPError", answer.text) from None
        return None if answer.status_code == 204 or not answer.content else answer.json()

    def events(
        self,
        *,
        job_id: str | None = None,
        after: int | None = None,
        keepalive: float = 15.0,
        timeout: float | None = None,
    ) -> Iterator[dict[str, Any] | None]:
        """The event stream: each event's data as a dict, and None once the stream is open
        and at each keep-alive (so a reader can look at its clock). From now on, or after
        event id ``after``."""
        params: dict[str, Any] = {"keepalive": keepalive}
        if job_id is not None:
            params["job_id"] = job_id
        if after is not None:
            params["after"] = after
        read = httpx.Timeout(timeout or self.http.timeout.read or 30.0, read=keepalive * 4)
        with self.http.stream("GET", "/events", params=params, timeout=read) as answer:
            if answer.status_code >= 400:
                answer.read()
                body = answer.json()
                raise ClientError(answer.status_code, body["error"], body["message"])
            data: list[str] = []
            for line in answer.iter_lines():
                if line.startswith(":"):
                    yield None
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []
