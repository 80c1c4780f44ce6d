"""``runyard serve`` and ``runyard worker``: processes that execute queued runs until stopped."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from runyard import errors
from runyard.app import service
from runyard.cli import render
from runyard.core import datapipelines as dp
from runyard.core import records, states
from runyard.worker import datajobs, engine

if TYPE_CHECKING:
    from runyard.api import server

__all__ = ["serve", "worker"]

SlotsOpt = Annotated[
    int | None,
    typer.Option("--slots", min=1, help="Runs at once; default: the number of CPUs."),
]
LeaseOpt = Annotated[
    float,
    typer.Option(
        "--lease",
        min=1.0,
        metavar="SECONDS",
        help="How long a run stays this worker's without a heartbeat; after that "
        "another worker recovers it.",
    ),
]
PrefetchOpt = Annotated[
    int | None,
    typer.Option(
        "--prefetch",
        min=0,
        help="Runs claimed ahead of a free slot, so a slot that frees starts one at once; "
        "default: as many as --slots. 0 claims a run only for a free slot (fairer between "
        "workers sharing a queue, slower on short runs).",
    ),
]
GraceOpt = Annotated[
    float,
    typer.Option(
        "--grace",
        min=0.0,
        metavar="SECONDS",
        help="Between SIGTERM and SIGKILL when a run is stopped.",
    ),
]


def serve(
    slots: SlotsOpt = None,
    prefetch: PrefetchOpt = None,
    lease: LeaseOpt = 15.0,
    grace: GraceOpt = 5.0,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address of the REST API; other hosts can reach it only if you change this.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port of the API.")] = 8765,
    api: Annotated[
        bool, typer.Option("--api/--no-api", help="Serve the REST API (/api/v1).")
    ] = True,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth/--no-auth",
            help="Require an API token (runyard token create) on every endpoint but health; "
            "--no-auth only on a loopback address.",
        ),
    ] = True,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers/--no-workers",
            help="Execute runs here; --no-workers serves the API (and fires schedules) "
            "while `runyard worker`s elsewhere run the work.",
        ),
    ] = True,
) -> None:
    """Run the embedded engine: execute every queued run of this store until stopped, and
    serve the REST API on 127.0.0.1:8765.

    While it serves, `runyard job create` and `runyard run` hand their runs to it and return
    at once. Ctrl-C (or SIGTERM) stops taking runs and lets running ones finish; a second
    one stops them too.
    """
    if not workers:
        if not api:
            raise errors.UsageError("--no-workers --no-api would serve nothing; drop one")
        _api_only(host, port, auth)
        return
    _work("serve", slots, prefetch, lease, grace, api=(host, port, auth) if api else None)


def _api_only(host: str, port: int, auth: bool) -> None:
    """The API and the schedules' ticks, no workers, until SIGINT or SIGTERM."""
    ryard = service.connect()
    api = _api_server(ryard, host, port, auth)
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        api.start()
        render.err_console.print(
            "runyard serve: the API only, no workers (`runyard worker`s run the work); "
            "Ctrl-C to stop",
            markup=False,
        )
        while not stop.wait(0.5):
            ryard.fire_due()
    finally:
        api.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
        ryard.close()
    render.err_console.print("runyard serve stopped", markup=False)


def worker(
    slots: SlotsOpt = None,
    prefetch: PrefetchOpt = None,
    lease: LeaseOpt = 15.0,
    grace: GraceOpt = 5.0,
) -> None:
    """Run a worker: execute queued runs of this store (several workers, on several hosts,
    can share one PostgreSQL store) until stopped; signals as for `runyard serve`."""
    _work("worker", slots, prefetch, lease, grace)


def _api_server(ryard: service.Runyard, host: str, port: int, auth: bool) -> server.ApiServer:
    """The REST API, served beside the engine. Imported only here: FastAPI and the routes
    took a third of every other command's start-up."""
    from runyard.api import server

    return server.ApiServer(ryard, host=host, port=port, auth=auth, announce=_announce)


def _announce(api: server.ApiServer) -> None:
    auth_text = "a token required" if api.auth else "NO auth: this machine only"
    render.err_console.print(
        f"REST API on {api.url}/api/v1 ({auth_text}); docs at {api.url}/api/v1/docs",
        markup=False,
    )


def _data_jobs(ryard: service.Runyard) -> datajobs.DataJobPoller:
    """The thread that runs data jobs (those commits trigger) beside the runs."""

    def finished(job: dp.DataJob) -> None:
        why = f": {job.reason}" if job.reason else ""
        render.err_console.print(
            f"data job {job.pipeline}@{job.id} {job.state.lower()} ({job.progress}){why}",
            markup=False,
        )

    return datajobs.DataJobPoller(ryard.data.executor(on_finished=finished))


def _work(
    kind: str,
    slots: int | None,
    prefetch: int | None,
    lease: float,
    grace: float,
    *,
    api: tuple[str, int, bool] | None = None,
) -> None:
    ryard = service.connect()
    companions: list[engine.Companion] = []
    if api is not None:
        host, port, auth = api
        companions.append(_api_server(ryard, host, port, auth))
    companions.append(_data_jobs(ryard))
    options = engine.WorkerOptions(
        slots=slots or os.cpu_count() or 1,
        prefetch=prefetch,
        lease=lease,
        grace=grace,
        heartbeat=min(0.5, lease / 3),
    )

    def finished(run: records.Run) -> None:
        why = f": {run.reason}" if run.reason else ""
        retry = ryard.get_run(run.id).retried_by if run.state is states.RunState.FAILURE else None
        then = f"; retrying it as run {retry}" if retry else ""
        # A plain write: Rich would spend more on this line than the engine on the run.
        print(f"run {run.id} of job {run.job_id} {run.state.lower()}{why}{then}", file=sys.stderr)

    working = ryard.worker(
        kind=kind, options=options, on_run_finished=finished, companions=companions
    )
    signals = {"count": 0}

    def on_signal(number: int, frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] == 1:
            working.shut_down()
            os.write(2, b"Finishing the running runs; signal again to stop them now.\n")
        else:
            working.shut_down(kill=True)
            os.write(2, b"Stopping the running runs.\n")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    render.err_console.print(
        f"runyard {kind} {working.name} executing runs of "
        f"{ryard.store.engine.url.render_as_string(hide_password=True)} with "
        f"{options.slots} slot(s); Ctrl-C to stop",
        markup=False,
    )

    try:
        working.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        ryard.close()
    render.err_console.print(f"runyard {kind} {working.name} stopped", markup=False)
