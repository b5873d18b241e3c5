"""Store rows -> API models: schedules and firings as the REST API, the CLI and webhooks show them.

Times are shown in the schedule's timezone (an aware ``datetime``, so JSON carries the offset:
``2026-03-29T03:00:00+02:00``); the store keeps UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..schemas import (
    ActionOutcome,
    DescribeFiring,
    DescribeSchedule,
    NotificationOutcome,
    ScheduleNotify,
    ScheduleOnSuccess,
)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - a zone removed from tzdata: show UTC
        return None


def _local(value: datetime | None, zone: ZoneInfo | None) -> datetime | None:
    if value is None or zone is None:
        return value
    return value.astimezone(zone)


def describe_firing(row: Any, timezone: str, run_status: str | None = None) -> DescribeFiring:
    """A ``schedule_firings`` row as a :class:`DescribeFiring`."""
    zone = _zone(timezone)
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = (row.finished_at - row.started_at).total_seconds()
    return DescribeFiring(
        id=row.id, schedule_id=row.schedule_id, kind=row.kind, status=row.status,
        slot_at=_local(row.slot_at, zone), missed_slots=row.missed_slots or 0,
        attempt=row.attempt or 0,
        run_id=row.run_id, run_status=run_status, executed_notebook=row.executed_notebook,
        error=row.error, parameters=row.parameters or {},
        on_success=ActionOutcome.model_validate(row.actions) if row.actions else None,
        notifications=[NotificationOutcome.model_validate(n) for n in row.notifications or []],
        scheduler=f"{row.host}:{row.pid}" if row.host else None,
        requested_by=row.requested_by, created_at=_local(row.created_at, zone),
        started_at=_local(row.started_at, zone), finished_at=_local(row.finished_at, zone),
        duration=duration,
    )


def describe_schedule(row: Any, *, notebook: str, now: datetime,
                      next_times: list[datetime] | None = None,
                      last: DescribeFiring | None = None,
                      history: list[DescribeFiring] | None = None) -> DescribeSchedule:
    """A ``schedules`` row as a :class:`DescribeSchedule` (``notebook`` as the caller shows it)."""
    zone = _zone(row.timezone)
    holder = None
    if row.lease_holder and row.lease_expires_at is not None and row.lease_expires_at > now:
        holder = row.lease_holder
    return DescribeSchedule(
        id=row.id, name=row.name, owner=row.owner, target=row.target, notebook=notebook,
        cron=row.cron, timezone=row.timezone, parameters=row.parameters or {},
        on_success=ScheduleOnSuccess.model_validate(row.on_success or {}),
        notify=ScheduleNotify.model_validate(row.notify or {}), missed=row.missed,
        kernel=row.kernel_name, timeout=row.timeout, paused=bool(row.paused),
        deleted=row.deleted_at is not None, next_fire_at=_local(row.next_fire_at, zone),
        next_fire_times=[_local(t, zone) for t in next_times or []],  # type: ignore[misc]
        last_firing=last, history=history or [], error=row.last_error, scheduler=holder,
        created_at=row.created_at, updated_at=row.updated_at,
    )
