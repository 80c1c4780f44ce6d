"""Serving the REST API with uvicorn on a thread of the engine's process."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from runyard import errors
from runyard.api import app as app_mod
from runyard.app import service

__all__ = ["ApiServer", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """The REST API on ``host:port``; a ``Worker`` companion (started once the worker's fork
    server runs, stopped when the worker stops).

    Raises ``UsageError`` at construction when auth is off on an address other hosts can
    reach, and at ``start`` when the address cannot be bound.
    """

    def __init__(
        self,
        ryard: service.Runyard,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        auth: bool,
        announce: Callable[[ApiServer], None] | None = None,
        keepalive: float = 15.0,
    ) -> None:
        if not auth and not is_loopback(host):
            raise errors.UsageError(
                f"--no-auth on {host} would let any host that reaches it run and stop jobs; "
                "serve on 127.0.0.1, or keep auth on and give clients a token "
                "(`runyard token create`)"
            )
        self.host = host
        self.port = port
        self.auth = auth
        self.announce = announce  # told once the server listens (with the real port)
        self.app = app_mod.create_app(ryard, auth=auth, keepalive=keepalive)
        # The web UI at /, beside the API under /api/v1; imported here, not by every
        # CLI command that imports this module.
        from runyard.ui import site as ui_site

        ui_site.install(self.app)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP said explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it a response written in two parts waits ~40 ms for the
        # client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise errors.UsageError(
                f"Cannot serve the API on {self.host}:{self.port}: {exc.strerror or exc}; "
                "give another --port (or --no-api)"
            ) from exc
        sock.listen(128)
        if self.port == 0:
            self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="runyard-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise errors.StoreError("The API server did not start within 10 s")
            time.sleep(0.01)
        if self.announce is not None:
            self.announce(self)

    def stop(self) -> None:
        self.app.state.stopping = True  # event streams end at their next look
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
