"""Triggers: validation, DST-correct cron ticks, and what fires after downtime."""

import datetime as dt
import zoneinfo

import pytest

from runyard import errors
from runyard.core import schedules

AMS = zoneinfo.ZoneInfo("Europe/Amsterdam")
NOW = dt.datetime(2026, 3, 27, 12, 0, tzinfo=dt.UTC)


def cron(expr: str, **options: object) -> schedules.Trigger:
    return schedules.make_trigger(now=NOW, cron=expr, timezone="Europe/Amsterdam", **options)


def test_weekday_mornings_stay_at_nine_local_time_across_daylight_saving() -> None:
    trigger = cron("0 9 * * 1-5")
    tick = trigger.next_after(dt.datetime(2026, 3, 26, 6, 0, tzinfo=dt.UTC))
    ticks = []
    for _ in range(4):  # Thu 26, Fri 27 March; the clocks go forward on Sunday 29; Mon, Tue
        assert tick is not None
        ticks.append(tick)
        tick = trigger.next_after(tick)
    assert [t.astimezone(AMS).strftime("%a %d %H:%M") for t in ticks] == [
        "Thu 26 09:00",
        "Fri 27 09:00",
        "Mon 30 09:00",
        "Tue 31 09:00",
    ]
    assert [t.strftime("%d %H:%M") for t in ticks] == [  # in UTC: an hour earlier after
        "26 08:00",
        "27 08:00",
        "30 07:00",
        "31 07:00",
    ]


def test_a_tick_in_the_skipped_hour_fires_once_after_the_change() -> None:
    trigger = cron("30 2 * * *")  # 02:30 does not exist on 29 March in Amsterdam
    first = trigger.next_after(dt.datetime(2026, 3, 28, 12, tzinfo=AMS))
    second = trigger.next_after(first)  # type: ignore[arg-type]
    assert first is not None and second is not None
    assert first.astimezone(AMS).date() == dt.date(2026, 3, 29)
    assert second.astimezone(AMS).strftime("%d %H:%M") == "30 02:30"


def test_start_and_end_bound_the_ticks() -> None:
    trigger = cron(
        "0 * * * *",
        start=dt.datetime(2026, 4, 1, 10, 30, tzinfo=AMS),
        end=dt.datetime(2026, 4, 1, 12, 0, tzinfo=AMS),
    )
    first = trigger.first_fire(NOW)
    assert first is not None and first.astimezone(AMS).strftime("%d %H:%M") == "01 11:00"
    second = trigger.next_after(first)
    assert second is not None and second.astimezone(AMS).hour == 12
    assert trigger.next_after(second) is None


@pytest.mark.parametrize(
    ("policy", "fired"),
    [("skip", []), ("latest", ["12:00"]), ("all", ["09:00", "10:00", "11:00", "12:00"])],
)
def test_missed_ticks_follow_the_catch_up_policy(policy: str, fired: list[str]) -> None:
    trigger = schedules.make_trigger(now=NOW, cron="0 * * * *", catchup=policy)
    due_at = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
    now = dt.datetime(2026, 4, 1, 12, 30, tzinfo=dt.UTC)
    ticks, following = trigger.due(due_at, now)
    assert [t.strftime("%H:%M") for t in ticks] == fired
    assert following == dt.datetime(2026, 4, 1, 13, tzinfo=dt.UTC)


def test_catch_up_all_is_capped_at_its_limit_most_recent_first_kept() -> None:
    trigger = schedules.make_trigger(now=NOW, cron="0 * * * *", catchup="all", catchup_limit=2)
    ticks, _ = trigger.due(
        dt.datetime(2026, 4, 1, 0, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, 5, 1, tzinfo=dt.UTC)
    )
    assert [t.hour for t in ticks] == [4, 5]


def test_an_on_time_tick_fires_alone_and_a_once_trigger_fires_once() -> None:
    trigger = schedules.make_trigger(now=NOW, cron="0 * * * *")
    due = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
    assert trigger.due(due, due + dt.timedelta(seconds=1)) == (
        [due],
        dt.datetime(2026, 4, 1, 10, tzinfo=dt.UTC),
    )
    assert trigger.due(due, due - dt.timedelta(seconds=1)) == ([], due)
    once = schedules.make_trigger(now=NOW, at=NOW + dt.timedelta(hours=1))
    assert once.due(NOW + dt.timedelta(hours=1), NOW + dt.timedelta(days=3)) == (
        [NOW + dt.timedelta(hours=1)],
        None,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"at": NOW + dt.timedelta(hours=1), "cron": "0 9 * * *"}, "not both"),
        ({"at": NOW - dt.timedelta(seconds=1)}, "is in the past"),
        ({"cron": "0 25 * * *"}, "is not valid; give five fields"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Base"}, "Time zone 'Mars/Base' is not known"),
        ({"cron": "0 9 * * *", "start": NOW, "end": NOW}, "is not after --start"),
        ({"at": NOW + dt.timedelta(hours=1), "start": NOW}, "apply to a --cron"),
        ({"cron": "0 9 * * *", "overlap": "sometimes"}, "overlap is one of skip, queue"),
        ({"cron": "0 9 1 1 *", "end": NOW + dt.timedelta(days=2)}, "never fires before --end"),
    ],
)
def test_bad_triggers_are_refused_naming_the_fix(options: dict, message: str) -> None:
    with pytest.raises(errors.UsageError, match=message.replace("(", r"\(")):
        schedules.make_trigger(now=NOW, **options)


def test_a_time_without_a_zone_is_in_the_schedules_zone() -> None:
    trigger = schedules.make_trigger(
        now=NOW, at=dt.datetime(2026, 12, 1, 9, 0), timezone="Europe/Amsterdam"
    )
    assert trigger.at == dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
