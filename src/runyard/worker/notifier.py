"""Delivering hook notices: webhooks by HTTP POST, functions by a call, each with retries.

The store writes a notice in the transaction that ends a run (``storage.endings``); a
``Notifier`` takes due notices from that outbox and delivers them on a thread of its own, so
a slow or failing hook never holds up the engine's loop, and a notice survives a crash of
the engine that was to deliver it. A webhook gets the notice's payload as its JSON body; a
function gets the ``Notice`` record. A webhook's URL is never logged or recorded in full:
it may carry a secret token.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx

from runyard import errors
from runyard.core import hooks, records, retries
from runyard.execution import loader
from runyard.storage import store as store_mod

__all__ = ["Notifier", "SettledCallback"]

_log = logging.getLogger("runyard.hooks")

Clock = Callable[[], dt.datetime]
SettledCallback = Callable[[records.Notice, str | None, bool], None]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Notifier:
    """Delivers the store's due notices, on a thread (``start``/``stop``) or when asked
    (``deliver_due``).

    A failed delivery (an exception, a timeout, a non-2xx answer) is tried again after
    ``first_delay`` seconds, then ``backoff`` times longer each time (with up to ``jitter``
    more), ``attempts`` times in all; then the notice is FAILED with its last error.
    ``on_settled(notice, error, final)`` is told of every attempt.
    """

    def __init__(
        self,
        store: store_mod.Store,
        *,
        attempts: int = 5,
        first_delay: float = 1.0,
        backoff: float = 2.0,
        jitter: float = 0.2,
        timeout: float = 10.0,
        poll: float = 0.5,
        batch: int = 20,
        clock: Clock = _utcnow,
        on_settled: SettledCallback | None = None,
    ) -> None:
        self.store = store
        self.attempts = attempts
        self.first_delay = first_delay
        self.backoff = backoff
        self.jitter = jitter
        self.timeout = timeout
        self.poll = poll
        self.batch = batch
        self.clock = clock
        self.on_settled = on_settled
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self._functions: dict[str, Callable[..., Any]] = {}

    # -- on a thread -------------------------------------------------------------------

    def start(self) -> None:
        """Deliver on a daemon thread until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="runyard-hooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for due notices now rather than at the next poll."""
        self._wake.set()

    def stop(self, *, within: float = 5.0) -> None:
        """Stop the thread, letting it finish the delivery in hand for up to ``within`` s;
        undelivered notices stay in the store for the next engine."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(within)
            if self._thread.is_alive():
                return  # stuck in a hook: leave it (a daemon thread) its client
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.deliver_due() == self.batch
            except errors.RunyardError as exc:  # the store is unreachable for now
                _log.warning("hook_delivery_paused: %s", exc.message)
                busy = False
            if not busy:
                self._wake.wait(self.poll)
                self._wake.clear()

    # -- delivering --------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Deliver the notices due now (at most one batch); how many were tried."""
        at = self.clock()
        hold = dt.timedelta(seconds=self.timeout * 2 + 30)
        taken = self.store.claim_notices(at=at, limit=self.batch, hold_until=at + hold)
        for i, notice in enumerate(taken):
            if self._stopping.is_set() and self._thread is not None:
                # Hand the rest back, for this process's last pass or another engine.
                self.store.release_notices([n.id for n in taken[i:]])
                return i
            error = self._deliver(notice)
            attempt = notice.attempts + 1
            retry_at = None
            if error is not None and attempt < self.attempts:
                wait = retries.backoff_delay(
                    self.first_delay, self.backoff, self.jitter, attempt, random.random()
                )
                retry_at = self.clock() + dt.timedelta(seconds=wait)
            shown = hooks.Hook(notice.event, notice.target).display
            if error is not None:
                _log.warning(
                    "hook_failed: %s hook %s, attempt %d: %s%s",
                    notice.event,
                    shown,
                    attempt,
                    error,
                    "" if retry_at else " (giving up)",
                )
            self.store.settle_notice(notice, at=self.clock(), error=error, retry_at=retry_at)
            if self.on_settled is not None:
                self.on_settled(notice, error, retry_at is None)
        return len(taken)

    def _deliver(self, notice: records.Notice) -> str | None:
        """Deliver one notice; the error, said without the webhook's secret parts."""
        hook = hooks.Hook(notice.event, notice.target)
        try:
            if hook.is_webhook:
                return self._post(notice)
            function = self._functions.get(notice.target)
            if function is None:
                function = self._functions[notice.target] = loader.load_function(notice.target)
            function(notice)
            return None
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".replace(notice.target, hook.display)
            return message[:2000]

    def _post(self, notice: records.Notice) -> str | None:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        answer = self._client.post(
            notice.target,
            json=dict(notice.payload),
            headers={"User-Agent": "runyard", "X-Runyard-Event": notice.event.value},
        )
        if answer.is_success:
            return None
        return f"HTTP {answer.status_code} {answer.reason_phrase}".strip()
