"""The stores as a run's process reaches them, for what steps do through runyard (sub jobs,
WorkData): opened once per process from the settings the engine put in its environment."""

from __future__ import annotations

from runyard.app import service

__all__ = ["connection"]

_opened: list[service.Runyard] = []


def connection() -> service.Runyard:
    """This process's ``Runyard`` on the engine's stores, opened on first use."""
    if not _opened:
        _opened.append(service.connect())
    return _opened[0]
