"""Cron expressions in a timezone: validation, and fire times that hold through DST changes.

What croniter 7 does with an aware datetime (checked, Europe/Berlin, 2026): on the spring-forward
day (29 March) ``30 2 * * *`` fires at 03:00 CEST, as wanted; on the fall-back day (25 October)
it fires twice, at 02:30 CEST and again at 02:30 CET, and stepping on from the second 02:30 it
returns the same next day twice. So croniter is used here to parse expressions and to step
through *wall-clock* (naive) times only; turning a wall-clock time into instants follows the
rules of Vixie cron:

- a wall-clock time that exists once fires once;
- a time skipped by a spring-forward change: a job with a fixed hour fires at the first instant
  after the gap (``30 2`` -> 03:00 CEST); a job that runs every hour (hour field ``*``) skips it,
  since its other slots keep their real-time spacing (``*/15`` goes 01:45 CET -> 03:00 CEST);
- a time that occurs twice (fall-back): a job with a fixed hour fires at the first occurrence
  only; a job that runs every hour fires at both, so ``*/15 * * * *`` keeps 15-minute intervals
  in real time through the repeated hour.

Every instant returned is an aware UTC ``datetime``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidSpecError

#: Larger than any backward jump of a zone's wall clock (DST changes are 30 min to 2 h).
MARGIN = timedelta(hours=3)
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_HELP = ("expected 5 fields 'minute hour day-of-month month day-of-week' (e.g. '0 3 * * *' "
              "for 03:00 every day, '*/15 * * * *' for every 15 minutes) or one of "
              + ", ".join(MACROS))


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA timezone ``name`` (``"Europe/Berlin"``, ``"UTC"``).

    Raises
    ------
    InvalidSpecError
        The name is not a timezone of the IANA database.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidSpecError(f"a timezone is needed; got {name!r}; expected an IANA name such "
                               "as 'Europe/Berlin' or 'UTC'")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSpecError(f"unknown timezone {name!r}; expected an IANA name such as "
                               "'Europe/Berlin', 'America/New_York' or 'UTC'") from None


def check_cron(expr: str) -> str:
    """``expr`` with its whitespace normalised, once it is a valid 5-field expression or macro.

    Raises
    ------
    InvalidSpecError
        Naming what is wrong and what was expected.
    """
    from croniter import croniter

    if not isinstance(expr, str) or not expr.strip():
        raise InvalidSpecError(f"a cron expression is needed; got {expr!r}; {_CRON_HELP}")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise InvalidSpecError(f"invalid cron expression {expr!r}: unknown macro; "
                                   f"{_CRON_HELP}")
        text = text.lower()
    elif len(text.split(" ")) != 5:
        raise InvalidSpecError(f"invalid cron expression {expr!r}: it has "
                               f"{len(text.split(' '))} fields; {_CRON_HELP}")
    if not croniter.is_valid(text):
        raise InvalidSpecError(f"invalid cron expression {expr!r}; {_CRON_HELP}")
    return text


class CronSchedule:
    """Fire times of a cron expression read in a timezone.

    Parameters
    ----------
    expr : str
        A 5-field cron expression or a macro (``@daily``); checked by :func:`check_cron`.
    timezone : str
        IANA name; the expression's fields are wall-clock times there.

    Raises
    ------
    InvalidSpecError
        A bad expression or timezone, or an expression that never fires (``0 0 30 2 *``).
    """

    def __init__(self, expr: str, timezone: str = "UTC") -> None:
        from croniter import croniter

        self.expr = check_cron(expr)
        self.timezone = timezone.strip() if isinstance(timezone, str) else timezone
        self.tz = parse_timezone(timezone)
        fields = croniter.expand(self.expr)[0]
        #: the hour field covers every hour: an interval job, kept in real time through DST
        self.every_hour = fields[1] == ["*"]
        self.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # fails now if it never fires

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, {self.timezone!r})"

    # -- wall clock -> instants -----------------------------------------------------------------

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants at which the naive wall-clock time ``wall`` fires (0, 1 or 2)."""
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if self._wall(first) == wall and self._wall(second) == wall:  # the repeated hour
            return [first, second] if self.every_hour else [first]
        if self.every_hour:  # skipped by a spring-forward change
            return []
        return [self._gap_end(min(first, second), max(first, second))]

    def _gap_end(self, lo: datetime, hi: datetime) -> datetime:
        """The instant the zone's offset changes, between ``lo`` (before) and ``hi`` (after)."""
        offset_after = hi.astimezone(self.tz).utcoffset()
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            mid = mid.replace(microsecond=0)
            if mid.astimezone(self.tz).utcoffset() == offset_after:
                hi = mid
            else:
                lo = mid
        return hi

    # -- stepping -------------------------------------------------------------------------------

    def _walls(self, start: datetime, forward: bool) -> object:
        from croniter import CroniterBadDateError, croniter

        it = croniter(self.expr, start)
        step = it.get_next if forward else it.get_prev
        while True:
            try:
                yield step(datetime)
            except CroniterBadDateError:
                raise InvalidSpecError(f"cron expression {self.expr!r} never fires (no date "
                                       "matches it, e.g. 30 February)") from None

    def _back(self, earlier: datetime, later: datetime) -> timedelta:
        """How far the wall clock is set back between two instants (0 when it is not)."""
        shift = earlier.astimezone(self.tz).utcoffset() - later.astimezone(self.tz).utcoffset()
        return max(timedelta(0), shift)

    def next_after(self, after: datetime) -> datetime:
        """The first fire instant strictly after ``after`` (an aware datetime), in UTC."""
        after = _aware(after)
        # Wall times before after's own can fire later only across a fall-back change ahead.
        start = self._wall(after) - self._back(after, after + MARGIN) - timedelta(seconds=1)
        best: datetime | None = None
        limit: datetime | None = None
        for wall in self._walls(start, forward=True):  # type: ignore[attr-defined]
            if limit is not None and wall > limit:
                break
            for instant in self.instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
                    # a later wall time maps to an earlier instant only across a fall-back
                    limit = self._wall(best) + self._back(max(after, best - MARGIN), best)
        assert best is not None
        return best

    def last_at_or_before(self, at: datetime) -> datetime | None:
        """The newest fire instant at or before ``at``, in UTC (None: none in the last ~5 years)."""
        at = _aware(at)
        floor = self._wall(at) - timedelta(days=5 * 366)
        start = self._wall(at) + self._back(at - MARGIN, at) + timedelta(seconds=1)
        best: datetime | None = None
        limit: datetime | None = None
        for wall in self._walls(start, forward=False):  # type: ignore[attr-defined]
            if (limit is not None and wall < limit) or wall < floor:
                break
            for instant in self.instants(wall):
                if instant <= at and (best is None or instant > best):
                    best = instant
                    limit = self._wall(best) - self._back(best, min(at, best + MARGIN))
        return best

    def times(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire instants after ``after``, in UTC."""
        out: list[datetime] = []
        current = _aware(after)
        for _ in range(max(0, count)):
            current = self.next_after(current)
            out.append(current)
        return out

    def count(self, first: datetime, last: datetime, cap: int = 10_000) -> int:
        """How many fire instants lie in ``[first, last]`` (at most ``cap``)."""
        n, current = 0, _aware(first) - timedelta(microseconds=1)
        while n < cap:
            current = self.next_after(current)
            if current > _aware(last):
                break
            n += 1
        return n

    def local(self, instant: datetime) -> datetime:
        """``instant`` as an aware datetime in the schedule's timezone."""
        return _aware(instant).astimezone(self.tz)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"expected an aware datetime; got naive {value!r}")
    return value.astimezone(UTC)


@lru_cache(maxsize=256)
def cron_schedule(expr: str, timezone: str) -> CronSchedule:
    """A cached :class:`CronSchedule` (the loop asks for the same few over and over)."""
    return CronSchedule(expr, timezone)
