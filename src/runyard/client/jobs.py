"""``Job``: a job on the server, driven by chained calls (seed 004's fluent API)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.client import http

__all__ = ["Job", "JobTimeoutError"]

_FINAL = ("completed", "error")


class JobTimeoutError(TimeoutError):
    """A job did not complete in the time given."""


class Job:
    """A job; every method returns the job, so calls chain. ``data`` is the job as the
    server last described it."""

    def __init__(self, client: http.Client, job_id: str | None = None) -> None:
        self.client = client
        self.data: dict[str, Any] = {}
        if job_id is not None:
            self._set(self.client.request("GET", f"/jobs/{job_id}"))

    @property
    def id(self) -> str:
        if not self.data:
            raise RuntimeError("This Job has not been created yet; call create() first")
        return str(self.data["id"])

    @property
    def state(self) -> str:
        """created, ready_for_processing, pending, processing, completed or error."""
        return str(self.data.get("processing_state", "created"))

    def _set(self, data: Any) -> Job:
        self.data = dict(data)
        return self

    # -- making and configuring -------------------------------------------------------

    def create(self, *, name: str, tags: Sequence[str] = ()) -> Job:
        """Create an empty job on the server."""
        return self._set(
            self.client.request("POST", "/jobs", json_body={"name": name, "tags": list(tags)})
        )

    def create_and_configure_rapidly(
        self,
        *,
        function_name: str,
        version: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        grid: Mapping[str, Any] | None = None,
        start: bool = True,
        input_workdata: Sequence[str] = (),
        deselect: Sequence[int | Mapping[str, Any]] = (),
        schedule: Mapping[str, Any] | None = None,
    ) -> Job:
        """Create, select, tag, configure and (with ``start``) start, in one HTTP call;
        ``input_workdata``: ids of uploaded WorkData it reads; ``deselect``: runs of the
        grid left out (indices, or filters like ``{"region": "emea"}``); ``schedule``:
        ``{"cron": "0 9 * * 1-5", "timezone": "Europe/Amsterdam"}`` or ``{"at": "..."}``."""
        body: dict[str, Any] = {
            "processing": {"name": function_name, "version": version},
            "tags": list(tags),
            "start": start,
            "input_workdata": list(input_workdata),
        }
        if name is not None:
            body["name"] = name
        if parameters is not None:
            body["parameters"] = dict(parameters)
        if grid is not None:
            body["grid"] = dict(grid)
        if deselect:
            body["deselect"] = [d if isinstance(d, int) else dict(d) for d in deselect]
        if schedule is not None:
            body["schedule"] = dict(schedule)
        return self._set(self.client.request("POST", "/jobs", json_body=body))

    def select_processing(self, *, function_name: str, version: str | None = None) -> Job:
        return self._set(
            self.client.request(
                "PUT",
                f"/jobs/{self.id}/processing",
                json_body={"name": function_name, "version": version},
            )
        )

    def set_tags(self, tags: Sequence[str]) -> Job:
        return self._set(
            self.client.request("PUT", f"/jobs/{self.id}/tags", json_body={"tags": list(tags)})
        )

    def configure_parameters(self, **parameters: Any) -> Job:
        """Set the step's parameters (for a pipeline: ``pipeline={...}, steps={...}``)."""
        return self._set(
            self.client.request(
                "PUT", f"/jobs/{self.id}/parameters", json_body={"parameters": parameters}
            )
        )

    def start(self) -> Job:
        return self._set(self.client.request("POST", f"/jobs/{self.id}/start"))

    # -- schedules and retries ----------------------------------------------------------

    def schedule(self) -> dict[str, Any]:
        """The job's schedule with its next fire times (a job made to run now has none:
        the server answers 404)."""
        return dict(self.client.request("GET", f"/jobs/{self.id}/schedule"))

    def pause(self) -> Job:
        """Pause a scheduled job: no tick fires until ``resume``."""
        self.client.request("POST", f"/jobs/{self.id}/pause")
        return self.refresh()

    def resume(self) -> Job:
        self.client.request("POST", f"/jobs/{self.id}/resume")
        return self.refresh()

    def run_now(self) -> Job:
        """Make a batch of a scheduled job's runs now."""
        self.client.request("POST", f"/jobs/{self.id}/run-now")
        return self.refresh()

    def retry_failed(self, *, all_steps: bool = False) -> Job:
        """Retry every failed or killed run, from failure unless ``all_steps``."""
        self.client.request("POST", f"/jobs/{self.id}/retry", params={"all_steps": all_steps})
        return self.refresh()

    # -- following ----------------------------------------------------------------------

    def refresh(self) -> Job:
        return self._set(self.client.request("GET", f"/jobs/{self.id}"))

    def wait_for_completion(self, timeout_s: float = 60.0) -> Job:
        """Wait until the job is completed or in error, following the server's event
        stream (no polling). Raises ``JobTimeoutError`` after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        events = self.client.events(job_id=self.id, keepalive=min(1.0, max(timeout_s, 0.5)))
        opened = False
        try:
            for event in events:
                # The state is read once the stream is open (a change after that is in the
                # stream), then again only when one of the job's runs changes state.
                changed = event is not None and event.get("kind") == "run_state"
                if (changed or not opened) and self.refresh().state in _FINAL:
                    return self
                opened = True
                if time.monotonic() >= deadline:
                    break
        finally:
            events.close()  # type: ignore[attr-defined]
        if self.refresh().state in _FINAL:
            return self
        raise JobTimeoutError(
            f"Job {self.id} is still {self.state} after {timeout_s:g} s; wait longer, or "
            "look at its runs (GET /api/v1/jobs/{id}/runs)"
        )

    def get_result(self) -> Any:
        """What the job's step returned (it must be completed)."""
        return self.client.request("GET", f"/jobs/{self.id}/result")["result"]

    # -- deleting -----------------------------------------------------------------------

    def delete(self, *, delete_subjobs: bool = False) -> Job:
        """Delete the job for good (refused while it runs, and while it has sub jobs
        unless ``delete_subjobs``)."""
        self.client.request("DELETE", f"/jobs/{self.id}", params={"delete_subjobs": delete_subjobs})
        return self

    def delete_with_associated(
        self,
        *,
        delete_output_workdata: bool = True,
        delete_input_workdata: bool = False,
        delete_subjobs_with_data: bool = True,
    ) -> Job:
        """Delete the job with its output WorkData, the inputs no other job reads, and its
        sub jobs with theirs, as the flags say (refused while it runs)."""
        self.client.request(
            "DELETE",
            f"/jobs/{self.id}",
            params={
                "delete_output_workdata": delete_output_workdata,
                "delete_input_workdata": delete_input_workdata,
                "delete_subjobs": delete_subjobs_with_data,
            },
        )
        return self

    def workdata(self) -> dict[str, list[dict[str, Any]]]:
        """What the job reads (``inputs``) and what its steps wrote (``outputs``)."""
        return dict(self.client.request("GET", f"/jobs/{self.id}/workdata"))

    def sub_jobs(self) -> list[Job]:
        """The jobs this job's steps made."""
        page = self.client.request("GET", "/jobs", params={"parent": self.id, "limit": 1000})
        return [Job(self.client)._set(data) for data in page["items"]]
