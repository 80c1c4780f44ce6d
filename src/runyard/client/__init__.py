"""A Python client for runyard's REST API: ``Client`` and the fluent ``Job``.

::

    from runyard.client import Client, Job

    client = Client("http://127.0.0.1:8765", token="ry_...")
    job = (
        Job(client)
        .create(name="add five")
        .select_processing(function_name="add", version="1")
        .set_tags(["demo"])
        .configure_parameters(x=5)
        .start()
        .wait_for_completion(timeout_s=60)
    )
    print(job.get_result())
"""

from __future__ import annotations

from runyard.client.http import Client, ClientError
from runyard.client.jobs import Job, JobTimeoutError

__all__ = ["Client", "ClientError", "Job", "JobTimeoutError"]
