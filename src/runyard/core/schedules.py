"""Triggers: when a job's runs are made. Now, once at a time, or on a cron schedule.

A recurring job makes a new batch of its (selected) runs at every tick. Ticks are computed
in the schedule's time zone, so "09:00 on weekdays" stays 09:00 across daylight-saving
changes. Pure: the caller passes the current time in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import zoneinfo

from runyard import errors

__all__ = ["Catchup", "Overlap", "Trigger", "make_trigger"]


class Overlap(enum.StrEnum):
    """What a tick does while the previous tick's runs are still going."""

    SKIP = "skip"  # make no runs for this tick
    QUEUE = "queue"  # make them, and start them once the previous ones have finished
    CANCEL = "cancel"  # stop the previous ones, then start these
    ALLOW = "allow"  # start them alongside


class Catchup(enum.StrEnum):
    """What happens to ticks missed while no scheduler was running."""

    SKIP = "skip"  # none of them fire; the next tick after now does
    LATEST = "latest"  # only the most recent missed tick fires
    ALL = "all"  # every missed tick fires, up to the limit (the most recent ones)


@dataclasses.dataclass(frozen=True, slots=True)
class Trigger:
    """When runs are made: ``at`` once, or on ``cron`` in ``timezone`` between ``start``
    and ``end``."""

    at: dt.datetime | None = None
    cron: str | None = None
    timezone: str = "UTC"
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    overlap: Overlap = Overlap.SKIP
    catchup: Catchup = Catchup.LATEST
    catchup_limit: int = 10

    @property
    def kind(self) -> str:
        return "cron" if self.cron else "at" if self.at else "now"

    def first_fire(self, now: dt.datetime) -> dt.datetime | None:
        """When it first fires, as seen at ``now``."""
        if self.at is not None:
            return self.at
        if self.cron is None:
            return now
        return self.next_after(max(now, self.start) if self.start else now)

    def next_after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first tick strictly after ``moment``, or None once past the end."""
        if self.cron is None:
            return None
        zone = zoneinfo.ZoneInfo(self.timezone)
        base = moment.astimezone(zone)
        if self.start is not None and base < self.start:
            base = self.start.astimezone(zone) - dt.timedelta(microseconds=1)
        from croniter import croniter  # here: a run's process never needs it

        tick: dt.datetime = croniter(self.cron, base).get_next(dt.datetime)
        tick = tick.astimezone(dt.UTC)
        if self.end is not None and tick > self.end:
            return None
        return tick

    def due(
        self, next_fire: dt.datetime, now: dt.datetime
    ) -> tuple[list[dt.datetime], dt.datetime | None]:
        """The ticks to fire now, given the one that was due at ``next_fire``, and the
        next one after them. Missed ticks follow the catch-up policy."""
        if next_fire > now:
            return [], next_fire
        if self.cron is None:  # once, at a time: it fires once, however late
            return [next_fire], None
        missed = [next_fire]
        following = self.next_after(next_fire)
        while following is not None and following <= now:
            missed.append(following)
            if len(missed) > self.catchup_limit + 1:
                missed.pop(0)
            following = self.next_after(following)
        if len(missed) == 1:
            return missed, following
        if self.catchup is Catchup.SKIP:
            return [], following
        if self.catchup is Catchup.LATEST:
            return [missed[-1]], following
        return missed[-self.catchup_limit :], following


def make_trigger(
    *,
    now: dt.datetime,
    at: dt.datetime | None = None,
    cron: str | None = None,
    timezone: str = "UTC",
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    overlap: str = "skip",
    catchup: str = "latest",
    catchup_limit: int = 10,
) -> Trigger:
    """A validated trigger. Raises ``UsageError`` naming the value and the fix: both
    ``at`` and ``cron``, an ``at`` in the past, an invalid cron string or time zone, an
    ``end`` not after ``start``, an unknown policy."""
    if at is not None and cron is not None:
        raise errors.UsageError("Give either --at (once) or --cron (recurring), not both")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise errors.UsageError(
            f"Time zone {timezone!r} is not known; use an IANA name like Europe/Amsterdam"
        ) from None
    if at is not None:
        at = _aware(at, timezone)
        if at <= now:
            raise errors.UsageError(
                f"--at {at.isoformat()} is in the past (it is now "
                f"{now.astimezone(at.tzinfo).isoformat(timespec='seconds')}); give a later time"
            )
    from croniter import croniter

    if cron is not None and not croniter.is_valid(cron):
        raise errors.UsageError(
            f"Cron expression {cron!r} is not valid; give five fields: minute hour "
            "day-of-month month day-of-week, e.g. '0 9 * * 1-5'"
        )
    if (start is not None or end is not None) and cron is None:
        raise errors.UsageError("--start and --end apply to a --cron schedule only")
    start = _aware(start, timezone) if start else None
    end = _aware(end, timezone) if end else None
    if start and end and end <= start:
        raise errors.UsageError(f"--end {end.isoformat()} is not after --start {start.isoformat()}")
    try:
        overlap_policy = Overlap(overlap)
        catchup_policy = Catchup(catchup)
    except ValueError as exc:
        raise errors.UsageError(
            f"{exc}; overlap is one of {', '.join(Overlap)}, catch-up one of {', '.join(Catchup)}"
        ) from None
    if catchup_limit < 1:
        raise errors.UsageError(f"catch-up limit {catchup_limit} must be 1 or more")
    trigger = Trigger(at, cron, timezone, start, end, overlap_policy, catchup_policy, catchup_limit)
    if cron is not None and trigger.first_fire(now) is None:
        raise errors.UsageError(
            f"Cron schedule {cron!r} never fires before --end {end}; move the end later"
        )
    return trigger


def _aware(moment: dt.datetime, timezone: str) -> dt.datetime:
    """A time without a zone is in the schedule's zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return moment.astimezone(dt.UTC)
