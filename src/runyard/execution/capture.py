"""Capturing what steps write: stdout, stderr and ``logging`` records, each tagged with the
step that wrote it and when.

Installed once in a run's own process; lines go to a callback in batches.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Callable

from runyard.execution import context

__all__ = ["Capture", "Line"]

# (step name or None, stream, unix time, level or None, text)
Line = tuple[str | None, str, float, str | None, str]


class Capture:
    """Collects lines from the process's Python-level streams and the root logger.

    ``flush`` hands the lines gathered so far to ``sink``; it is called at the end of each
    step and whenever ``max_lines`` lines or ``max_delay`` seconds have piled up.
    """

    def __init__(
        self,
        sink: Callable[[list[Line]], None],
        *,
        max_lines: int = 200,
        max_delay: float = 0.5,
    ) -> None:
        self._sink = sink
        self._lines: list[Line] = []
        self._lock = threading.Lock()
        self._max_lines = max_lines
        self._max_delay = max_delay
        self._last_flush = time.monotonic()

    def install(self) -> None:
        sys.stdout = _Stream(self, "stdout")
        sys.stderr = _Stream(self, "stderr")
        handler = _Handler(self)
        root = logging.getLogger()
        root.handlers[:] = [handler]
        if root.level in (logging.NOTSET, logging.WARNING):
            root.setLevel(logging.INFO)

    def add(self, stream: str, text: str, level: str | None = None) -> None:
        step = context.current_step_name()
        now = time.time()
        with self._lock:
            self._lines.append((step, stream, now, level, text))
            due = (
                len(self._lines) >= self._max_lines
                or time.monotonic() - self._last_flush > self._max_delay
            )
        if due:
            self.flush()

    def flush(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _Stream):
                stream.flush_partial()
        with self._lock:
            lines, self._lines = self._lines, []
            self._last_flush = time.monotonic()
        if lines:
            self._sink(lines)


class _Stream(io.TextIOBase):
    def __init__(self, capture: Capture, name: str) -> None:
        self._capture = capture
        self._name = name
        self._partial: dict[str | None, str] = {}

    @property
    def name(self) -> str:
        return f"<runyard {self._name}>"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        step = context.current_step_name()
        pending = self._partial.pop(step, "") + text
        *lines, rest = pending.split("\n")
        if rest:
            self._partial[step] = rest
        for line in lines:
            self._capture.add(self._name, line)
        return len(text)

    def flush_partial(self) -> None:
        partial, self._partial = self._partial, {}
        for text in partial.values():
            self._capture.add(self._name, text)


class _Handler(logging.Handler):
    def __init__(self, capture: Capture) -> None:
        super().__init__()
        self._capture = capture
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._capture.add("log", self.format(record), record.levelname)
        except Exception:
            self.handleError(record)
