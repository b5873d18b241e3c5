"""Cron in a timezone: the 2026 DST days in Europe/Berlin, real-time intervals, bad input.

croniter 7 alone fires ``30 2 * * *`` twice on 25 October 2026 in Europe/Berlin (02:30 CEST and
02:30 CET); these tests pin down what ``CronSchedule`` does instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.scheduler.cron import CronSchedule, check_cron, parse_timezone

BERLIN = ZoneInfo("Europe/Berlin")


def _between(cron: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    out, current = [], start
    while True:
        current = cron.next_after(current)
        if current >= end:
            return out
        out.append(current)


def _day(cron: CronSchedule, year: int, month: int, day: int) -> list[datetime]:
    """Fire instants within one local (Berlin) calendar day."""
    start = datetime(year, month, day, tzinfo=BERLIN).astimezone(UTC)
    end = (datetime(year, month, day, tzinfo=BERLIN) + timedelta(days=1)).astimezone(UTC)
    return _between(cron, start - timedelta(microseconds=1), end)


def test_0230_fires_once_at_0300_cest_on_spring_forward_day() -> None:
    cron = CronSchedule("30 2 * * *", "Europe/Berlin")
    fires = _day(cron, 2026, 3, 29)
    assert len(fires) == 1
    assert fires[0].astimezone(BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    # the days around it keep 02:30 local time
    assert [t.astimezone(BERLIN).isoformat() for t in _day(cron, 2026, 3, 28)] == [
        "2026-03-28T02:30:00+01:00"]
    assert [t.astimezone(BERLIN).isoformat() for t in _day(cron, 2026, 3, 30)] == [
        "2026-03-30T02:30:00+02:00"]


def test_0230_fires_once_on_fall_back_day() -> None:
    cron = CronSchedule("30 2 * * *", "Europe/Berlin")
    fires = _day(cron, 2026, 10, 25)
    assert [t.astimezone(BERLIN).isoformat() for t in fires] == ["2026-10-25T02:30:00+02:00"]
    # stepping on from inside the repeated hour does not fire it again, nor repeat a day
    second = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the second 02:10
    nxt = cron.next_after(second)
    assert nxt.astimezone(BERLIN).isoformat() == "2026-10-26T02:30:00+01:00"
    assert cron.next_after(nxt).astimezone(BERLIN).isoformat() == "2026-10-27T02:30:00+01:00"


@pytest.mark.parametrize("day", [(2026, 3, 29), (2026, 10, 25)])
def test_every_15_minutes_keeps_real_time_intervals(day: tuple[int, int, int]) -> None:
    cron = CronSchedule("*/15 * * * *", "Europe/Berlin")
    fires = _day(cron, *day)
    gaps = {b - a for a, b in zip(fires, fires[1:])}
    assert gaps == {timedelta(minutes=15)}
    hours = 23 if day[1] == 3 else 25
    assert len(fires) == hours * 4


def test_hourly_job_keeps_hours_and_fixed_hours_fire_once_in_new_york() -> None:
    hourly = CronSchedule("7 * * * *", "America/New_York")
    fires = _between(hourly, datetime(2026, 3, 8, 4, tzinfo=UTC), datetime(2026, 3, 8, 10,
                                                                              tzinfo=UTC))
    assert {b - a for a, b in zip(fires, fires[1:])} == {timedelta(hours=1)}
    nightly = CronSchedule("30 1 * * *", "America/New_York")  # 01:30 repeats on 1 November
    start = datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert len(_between(nightly, start, start + timedelta(hours=6))) == 1


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Australia/Lord_Howe"])
@pytest.mark.parametrize("expr", ["30 2 * * *", "*/20 * * * *", "45 1,2,3 * * *", "0 */2 * * *",
                                  "2 2 * * *"])
def test_next_after_agrees_with_a_minute_by_minute_reference(zone: str, expr: str) -> None:
    """Around both 2026 changes, every instant CronSchedule yields and nothing else fires by
    the rules in cron.py, checked one minute at a time."""
    cron = CronSchedule(expr, zone)
    tz = ZoneInfo(zone)
    windows = {"Europe/Berlin": [datetime(2026, 3, 28, 23, tzinfo=UTC),
                                 datetime(2026, 10, 24, 23, tzinfo=UTC)],
               "Australia/Lord_Howe": [datetime(2026, 4, 4, 13, tzinfo=UTC),
                                       datetime(2026, 10, 3, 14, tzinfo=UTC)]}[zone]

    def fires(u: datetime) -> bool:
        wall = u.astimezone(tz).replace(tzinfo=None)
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if croniter.match(cron.expr, wall):
            return first == second or cron.every_hour or u == first
        before = u - timedelta(minutes=1)
        jumped = (before.astimezone(tz).utcoffset() != u.astimezone(tz).utcoffset()
                  and wall - before.astimezone(tz).replace(tzinfo=None) > timedelta(minutes=1))
        if cron.every_hour or not jumped:
            return False
        skipped = before.astimezone(tz).replace(tzinfo=None) + timedelta(minutes=1)
        while skipped < wall:  # a fixed-hour slot inside the gap fires at the gap's end
            if croniter.match(cron.expr, skipped):
                return True
            skipped += timedelta(minutes=1)
        return False

    for start in windows:
        reference = [start + timedelta(minutes=i) for i in range(1, 6 * 60)
                     if fires(start + timedelta(minutes=i))]
        assert _between(cron, start, start + timedelta(minutes=6 * 60)) == reference
        for instant in reference:
            assert cron.last_at_or_before(instant) == instant


def test_last_at_or_before_and_count() -> None:
    cron = CronSchedule("0 * * * *", "UTC")
    at = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert cron.last_at_or_before(at) == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert cron.last_at_or_before(datetime(2026, 5, 1, 10, tzinfo=UTC)) == datetime(
        2026, 5, 1, 10, tzinfo=UTC)
    assert cron.count(datetime(2026, 5, 1, 5, tzinfo=UTC), at) == 6
    assert cron.count(datetime(2026, 5, 1, 5, tzinfo=UTC), at, cap=3) == 3
    assert cron.times(at, 2) == [datetime(2026, 5, 1, 11, tzinfo=UTC),
                                 datetime(2026, 5, 1, 12, tzinfo=UTC)]


def test_macros_and_whitespace() -> None:
    assert check_cron("  0   3 *  * * ") == "0 3 * * *"
    assert check_cron("@DAILY") == "@daily"
    cron = CronSchedule("@hourly", "UTC")
    assert cron.every_hour
    assert cron.next_after(datetime(2026, 1, 1, 0, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("expr, words", [
    ("", "is needed"),
    ("61 * * * *", "invalid cron expression"),
    ("* * *", "it has 3 fields"),
    ("0 3 * * * *", "it has 6 fields"),
    ("@reboot", "unknown macro"),
    ("every day", "invalid cron expression"),
])
def test_invalid_cron_is_a_clear_error(expr: str, words: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        CronSchedule(expr, "UTC")
    assert words in str(err.value)
    assert "minute hour day-of-month month day-of-week" in str(err.value)


def test_a_cron_that_never_fires_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="never fires"):
        CronSchedule("0 0 30 2 *", "UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "Europe/"])
def test_unknown_timezone_is_a_clear_error(zone: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_timezone(zone)
    assert "IANA" in str(err.value)
