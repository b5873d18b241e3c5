"""The store's scheduling queries: schedules, their firings, leases and fencing (a ``Store`` mixin).

Two kinds of query live here. Those of the schedule service are scoped by ``self.owner`` like
every other query of the store. Those of the scheduler loop (the methods taking ``owners`` or a
``holder``) look at every owner's schedules, or at the owners a loop was started for: a loop is
the one party that fires schedules on their owners' behalf, and it opens an owner's own
``Store`` for everything a firing writes (its run, its models, its deploys). The store service
refuses the loop's methods (``jupyter_mlplat.hub.policy``).

Exactly once, in SQL terms: a scheduler process holds a *lease* on a schedule (holder, expiry)
and a *token* that grows by one whenever the holder changes. Claiming a slot is one transaction
that moves ``next_fire_at`` from the value the claimer read to the next slot, on the condition
that the claimer still holds the lease with the same token and that the slot is newer than every
slot claimed before (``last_slot_at``), and inserts the firing row; a unique constraint on
(schedule, slot, kind, attempt) stands behind it. A process that was paused past its lease and
wakes up finds the token changed: its claim, its heartbeats and its firing's outcome (and so the
on-success actions that follow it) no longer commit. A schedule has at most one ``running``
firing: a claim while one runs records the slot as skipped (``missed``) instead.

Time: lease expiries, heartbeats and the times a firing starts and ends are the *database's*
clock (:func:`database_now`), so scheduler processes on hosts whose clocks disagree still agree
on whose lease has run out. Only which cron slot is due comes from the scheduler's own clock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConflictError, NotFoundError
from . import orm

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

FIRING_ACTIVE = ("pending", "running")
#: Kinds of firing that stand for cron slots (``last_slot_at`` follows them).
SLOT_KINDS = ("cron", "catch_up")


class FenceLostError(ConflictError):
    """The scheduler no longer holds the firing it wanted to commit for (another took over)."""


def _db_now(s: Session) -> datetime:
    """The database's clock, as an aware UTC time.

    PostgreSQL is asked (``clock_timestamp()``); a SQLite file lives on this host, so its clock
    is this host's.
    """
    if s.get_bind().dialect.name == "postgresql":
        value = s.scalar(select(func.clock_timestamp()))
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


def database_now(store: Any) -> datetime:
    """The current time on ``store``'s database clock (aware UTC).

    Parameters
    ----------
    store : Store
        A SQL store.
    """
    with store.session() as s:
        return _db_now(s)


def _lock_schedule_of(s: Session, firing_id: int) -> None:
    """Hold the row of the firing's schedule until the transaction ends: a no-op update
    row-locks it on PostgreSQL and takes SQLite's one write lock. It comes first in the
    transaction: SQLite cannot turn a read into a write once another writer committed."""
    of_firing = select(orm.ScheduleFiring.schedule_id).where(
        orm.ScheduleFiring.id == firing_id).scalar_subquery()
    s.execute(update(orm.Schedule).where(orm.Schedule.id == of_firing)
              .values(id=orm.Schedule.id))


def _running(s: Session, schedule_id: str) -> orm.ScheduleFiring | None:
    """A running firing of the schedule that may still commit: fenced on its own row, or by
    the schedule's current lease token (one claimed under an older token belongs to a
    scheduler that lost the schedule; it cannot commit, and the sweep will end it)."""
    token = select(orm.Schedule.lease_token).where(
        orm.Schedule.id == schedule_id).scalar_subquery()
    return s.scalar(select(orm.ScheduleFiring).where(
        orm.ScheduleFiring.schedule_id == schedule_id,
        orm.ScheduleFiring.status == "running",
        or_(orm.ScheduleFiring.fence == 0, orm.ScheduleFiring.fence == token)).limit(1))


class ScheduleQueries:
    """Schedule and firing rows (mixed into ``Store``)."""

    owner: str

    if TYPE_CHECKING:
        def session(self) -> Any: ...

    # -- the owner's schedules (service) -------------------------------------------------------

    def _schedule(self, s: Session, schedule_id: str) -> orm.Schedule:
        row = s.scalar(select(orm.Schedule).where(
            orm.Schedule.id == schedule_id, orm.Schedule.owner == self.owner,
            orm.Schedule.deleted_at.is_(None)))
        if row is None:
            raise NotFoundError(f"no schedule {schedule_id!r}; `jupyter mlplat schedule list` "
                                "lists them")
        return row

    def add_schedule(self, **fields: Any) -> orm.Schedule:
        """A new schedule of this owner (``fields``: ``Schedule`` columns but id and owner)."""
        with self.session() as s:
            row = orm.Schedule(id=uuid.uuid4().hex[:12], owner=self.owner, **fields)
            s.add(row)
            s.flush()
            return row

    def schedule_row(self, schedule_id: str) -> orm.Schedule:
        with self.session() as s:
            return self._schedule(s, schedule_id)

    def schedules(self) -> list[orm.Schedule]:
        """The owner's live schedules, by name."""
        with self.session() as s:
            return list(s.scalars(select(orm.Schedule).where(
                orm.Schedule.owner == self.owner, orm.Schedule.deleted_at.is_(None),
            ).order_by(orm.Schedule.name, orm.Schedule.created_at)).all())

    def match_schedules(self, ref: str) -> list[orm.Schedule]:
        """Live schedules ``ref`` names: the one with that exact id, else those with that exact
        name together with those whose id starts with it (case-insensitive, ids are lowercase
        hex). More than one row means ``ref`` is ambiguous."""
        with self.session() as s:
            live = (orm.Schedule.owner == self.owner, orm.Schedule.deleted_at.is_(None))
            exact = s.scalar(select(orm.Schedule).where(orm.Schedule.id == ref, *live))
            if exact is not None:
                return [exact]
            named = list(s.scalars(select(orm.Schedule).where(
                orm.Schedule.name == ref, *live).limit(2)).all())
            prefixed = list(s.scalars(select(orm.Schedule).where(
                orm.Schedule.id.startswith(ref.lower(), autoescape=True), *live)
                .limit(2)).all())
        found = {row.id: row for row in [*named, *prefixed]}
        return list(found.values())

    def update_schedule(self, schedule_id: str, now: datetime, **values: Any) -> orm.Schedule:
        """Change a live schedule's columns; ``updated_at`` becomes ``now``."""
        with self.session() as s:
            row = self._schedule(s, schedule_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = now
            return row

    def delete_schedule(self, schedule_id: str, now: datetime) -> orm.Schedule:
        """Soft-delete: it never fires again, its firings and their runs stay; pending manual
        firings are cancelled."""
        with self.session() as s:
            row = self._schedule(s, schedule_id)
            row.deleted_at = now
            row.updated_at = now
            row.next_fire_at = None
            s.execute(update(orm.ScheduleFiring).where(
                orm.ScheduleFiring.schedule_id == schedule_id,
                orm.ScheduleFiring.status == "pending",
            ).values(status="cancelled", finished_at=now,
                     error="the schedule was deleted before a scheduler picked this run up"))
            return row

    def add_manual_firing(self, schedule_id: str, now: datetime, *, requested_by: str,
                          parameters: dict[str, Any]) -> orm.ScheduleFiring:
        """A ``pending`` firing a scheduler picks up at its next poll (``run now``)."""
        with self.session() as s:
            self._schedule(s, schedule_id)
            row = orm.ScheduleFiring(
                owner=self.owner, schedule_id=schedule_id, slot_at=now, kind="manual",
                status="pending", parameters=parameters, requested_by=requested_by,
                created_at=_db_now(s))
            s.add(row)
            s.flush()
            return row

    def firing_row(self, firing_id: int) -> orm.ScheduleFiring:
        with self.session() as s:
            row = s.scalar(select(orm.ScheduleFiring).where(
                orm.ScheduleFiring.id == firing_id, orm.ScheduleFiring.owner == self.owner))
        if row is None:
            raise NotFoundError(f"no firing {firing_id}")
        return row

    def firings(self, schedule_id: str, limit: int = 50) -> list[orm.ScheduleFiring]:
        """A schedule's firings, newest first."""
        with self.session() as s:
            return list(s.scalars(select(orm.ScheduleFiring).where(
                orm.ScheduleFiring.owner == self.owner,
                orm.ScheduleFiring.schedule_id == schedule_id,
            ).order_by(orm.ScheduleFiring.created_at.desc(), orm.ScheduleFiring.id.desc())
                .limit(limit)).all())

    def latest_firings(self, schedule_ids: Collection[str]) -> dict[str, orm.ScheduleFiring]:
        """The newest firing of each schedule that has one."""
        out: dict[str, orm.ScheduleFiring] = {}
        with self.session() as s:
            rows = s.scalars(select(orm.ScheduleFiring).where(
                orm.ScheduleFiring.owner == self.owner,
                orm.ScheduleFiring.schedule_id.in_(set(schedule_ids)),
            ).order_by(orm.ScheduleFiring.created_at, orm.ScheduleFiring.id)).all()
        for row in rows:
            out[row.schedule_id] = row
        return out

    def run_statuses(self, run_ids: Collection[str]) -> dict[str, str]:
        """Status of each of the owner's runs in ``run_ids``."""
        with self.session() as s:
            rows = s.execute(select(orm.Run.id, orm.Run.status).where(
                orm.Run.owner == self.owner, orm.Run.id.in_(set(run_ids)))).all()
        return {row.id: row.status for row in rows}

    # -- the loop: every owner's schedules, or those of ``owners`` ------------------------------

    @staticmethod
    def _owned(column: Any, owners: Collection[str] | None) -> Any:
        return column.in_(set(owners)) if owners is not None else column.is_not(None)

    def due_schedules(self, now: datetime, holder: str, owners: Collection[str] | None
                      ) -> list[orm.Schedule]:
        """Live schedules with a slot due at ``now`` (the scheduler's clock) or a firing
        pending, whose lease is free, expired (database clock) or ``holder``'s."""
        pending = exists().where(orm.ScheduleFiring.schedule_id == orm.Schedule.id,
                                 orm.ScheduleFiring.status == "pending")
        with self.session() as s:
            db_now = _db_now(s)
            return list(s.scalars(select(orm.Schedule).where(
                self._owned(orm.Schedule.owner, owners),
                orm.Schedule.deleted_at.is_(None),
                or_(and_(orm.Schedule.paused.is_(False), orm.Schedule.next_fire_at <= now),
                    pending),
                or_(orm.Schedule.lease_holder.is_(None), orm.Schedule.lease_holder == holder,
                    orm.Schedule.lease_expires_at <= db_now),
            ).order_by(orm.Schedule.next_fire_at)).all())

    def acquire_lease(self, schedule_id: str, holder: str, ttl: timedelta) -> int | None:
        """Hold the lease on a schedule for ``ttl`` (database clock); return its token, or None
        when another holds it.

        The token changes only when the holder does: a holder renewing its own lease (expired
        or not, as long as nobody took it) keeps its token and its in-flight firings.
        """
        with self.session() as s:
            now = _db_now(s)
            mine = s.execute(update(orm.Schedule).where(
                orm.Schedule.id == schedule_id, orm.Schedule.lease_holder == holder,
            ).values(lease_expires_at=now + ttl))
            if mine.rowcount != 1:
                taken = s.execute(update(orm.Schedule).where(
                    orm.Schedule.id == schedule_id,
                    or_(orm.Schedule.lease_holder.is_(None),
                        orm.Schedule.lease_expires_at <= now),
                ).values(lease_holder=holder, lease_expires_at=now + ttl,
                         lease_token=orm.Schedule.lease_token + 1))
                if taken.rowcount != 1:
                    return None
            return s.scalar(select(orm.Schedule.lease_token).where(
                orm.Schedule.id == schedule_id))

    def renew_leases(self, holder: str, ttl: timedelta) -> dict[str, int]:
        """Extend every lease ``holder`` still holds by ``ttl`` from now (database clock);
        return schedule id -> token."""
        with self.session() as s:
            now = _db_now(s)
            s.execute(update(orm.Schedule).where(orm.Schedule.lease_holder == holder)
                      .values(lease_expires_at=now + ttl))
            rows = s.execute(select(orm.Schedule.id, orm.Schedule.lease_token).where(
                orm.Schedule.lease_holder == holder)).all()
        return {row.id: row.lease_token for row in rows}

    def release_leases(self, holder: str, keep: Collection[str] = ()) -> None:
        """Give up ``holder``'s leases (but those in ``keep``) so others take over at once."""
        with self.session() as s:
            s.execute(update(orm.Schedule).where(
                orm.Schedule.lease_holder == holder, orm.Schedule.id.not_in(set(keep)),
            ).values(lease_holder=None, lease_expires_at=None))

    def claim_slot(self, schedule_id: str, *, holder: str, token: int, seen_next: datetime,
                   new_next: datetime | None, slot_at: datetime, kind: str, status: str,
                   missed_slots: int, parameters: dict[str, Any], process: dict[str, Any],
                   stale_after: float, error: str | None = None
                   ) -> orm.ScheduleFiring | None:
        """Claim a slot: move ``next_fire_at`` from ``seen_next`` to ``new_next`` and record the
        firing, in one transaction, only while ``holder`` holds the lease with ``token`` and
        ``slot_at`` is newer than every slot claimed before.

        ``status`` ``running`` starts the firing; while another firing of the schedule runs,
        the slot is recorded as skipped instead (status ``missed``, its error naming the
        running one). ``missed`` records slots skipped by the ``skip`` policy. ``process``:
        the claimer's ``ProcessIdentity.columns()``; ``stale_after``: its lease in seconds.

        Returns the firing, or None when the slot was not ours to claim (taken, paused,
        deleted, moved, already claimed, or the lease changed hands).
        """
        with self.session() as s:
            now = _db_now(s)
            moved = s.execute(update(orm.Schedule).where(
                orm.Schedule.id == schedule_id, orm.Schedule.deleted_at.is_(None),
                orm.Schedule.paused.is_(False), orm.Schedule.next_fire_at == seen_next,
                orm.Schedule.lease_holder == holder, orm.Schedule.lease_token == token,
                orm.Schedule.lease_expires_at > now,
                or_(orm.Schedule.last_slot_at.is_(None), orm.Schedule.last_slot_at < slot_at),
            ).values(next_fire_at=new_next, last_slot_at=slot_at, last_error=None))
            if moved.rowcount != 1:
                return None
            owner = s.scalar(select(orm.Schedule.owner).where(orm.Schedule.id == schedule_id))
            if status == "running":
                busy = _running(s, schedule_id)
                if busy is not None:
                    status, missed_slots = "missed", 1
                    error = (f"skipped: firing {busy.id} of this schedule ({busy.kind}, slot "
                             f"{busy.slot_at:%Y-%m-%d %H:%M} UTC) was still running; a "
                             "schedule runs one firing at a time")
            running = status == "running"
            row = orm.ScheduleFiring(
                owner=owner, schedule_id=schedule_id, slot_at=slot_at, kind=kind,
                status=status, missed_slots=missed_slots, fence=token, scheduler_id=holder,
                heartbeat_at=now if running else None, stale_after=stale_after,
                parameters=parameters, error=error, created_at=now,
                finished_at=None if running else now, **process)
            try:
                with s.begin_nested():
                    s.add(row)
                    s.flush()
            except IntegrityError:  # that slot already has a firing: it fired; move on
                log.info("schedule %s: slot %s (%s) already has a firing; skipping it",
                         schedule_id, slot_at, kind)
                return None
            return row

    def set_next_fire(self, schedule_id: str, *, holder: str, token: int, seen_next: datetime,
                      new_next: datetime | None, error: str | None = None) -> bool:
        """Move ``next_fire_at`` without a firing (a schedule whose times cannot be computed
        any more is parked with ``new_next=None`` and its ``error``), fenced like a claim."""
        with self.session() as s:
            moved = s.execute(update(orm.Schedule).where(
                orm.Schedule.id == schedule_id, orm.Schedule.next_fire_at == seen_next,
                orm.Schedule.lease_holder == holder, orm.Schedule.lease_token == token,
            ).values(next_fire_at=new_next, last_error=error))
            return moved.rowcount == 1

    def pending_firings(self, schedule_id: str) -> list[orm.ScheduleFiring]:
        """Firings of a schedule waiting for a scheduler (manual ones, replacements), oldest
        first."""
        with self.session() as s:
            return list(s.scalars(select(orm.ScheduleFiring).where(
                orm.ScheduleFiring.schedule_id == schedule_id,
                orm.ScheduleFiring.status == "pending",
            ).order_by(orm.ScheduleFiring.id)).all())

    def claim_pending(self, firing_id: int, *, holder: str, process: dict[str, Any],
                      stale_after: float) -> orm.ScheduleFiring | None:
        """Start a pending firing; of two claimers one gets the row, the other None. None as
        well while another firing of its schedule runs (it stays pending, for later).

        No lease is needed: the row itself is the claim, and the firing is fenced on it (fence
        0: its outcome commits while it is still ``running`` and still ``holder``'s).
        """
        with self.session() as s:
            _lock_schedule_of(s, firing_id)
            schedule_id = s.scalar(select(orm.ScheduleFiring.schedule_id).where(
                orm.ScheduleFiring.id == firing_id, orm.ScheduleFiring.status == "pending"))
            if schedule_id is None:
                return None
            if _running(s, schedule_id) is not None:
                return None
            now = _db_now(s)
            moved = s.execute(update(orm.ScheduleFiring).where(
                orm.ScheduleFiring.id == firing_id, orm.ScheduleFiring.status == "pending",
            ).values(status="running", fence=0, scheduler_id=holder, heartbeat_at=now,
                     stale_after=stale_after, **process))
            if moved.rowcount != 1:
                return None
            return s.scalar(select(orm.ScheduleFiring).where(
                orm.ScheduleFiring.id == firing_id))

    @staticmethod
    def _fenced(holder: str) -> Any:
        """The firing is ``holder``'s and running, and (when it was claimed under a lease) its
        fence is still its schedule's token."""
        return and_(
            orm.ScheduleFiring.status == "running",
            orm.ScheduleFiring.scheduler_id == holder,
            or_(orm.ScheduleFiring.fence == 0,
                exists().where(orm.Schedule.id == orm.ScheduleFiring.schedule_id,
                               orm.Schedule.lease_holder == holder,
                               orm.Schedule.lease_token == orm.ScheduleFiring.fence)))

    def beat_firings(self, firing_ids: Collection[int], holder: str) -> set[int]:
        """Refresh the heartbeat of ``holder``'s running firings; return those still its own."""
        if not firing_ids:
            return set()
        with self.session() as s:
            s.execute(update(orm.ScheduleFiring).where(
                orm.ScheduleFiring.id.in_(set(firing_ids)), self._fenced(holder),
            ).values(heartbeat_at=_db_now(s)))
            return set(s.scalars(select(orm.ScheduleFiring.id).where(
                orm.ScheduleFiring.id.in_(set(firing_ids)), self._fenced(holder))).all())

    def still_fenced(self, firing_id: int, holder: str) -> bool:
        """Whether ``holder`` may still commit for the firing (nobody took its schedule over)."""
        with self.session() as s:
            return s.scalar(select(orm.ScheduleFiring.id).where(
                orm.ScheduleFiring.id == firing_id, self._fenced(holder))) is not None

    def update_firing(self, firing_id: int, holder: str, *, start: bool = False,
                      finish: bool = False, requeue: bool = False, **values: Any) -> bool:
        """Write a running firing's fields, fenced; False when the holder lost it. ``start`` /
        ``finish`` set ``started_at`` / ``finished_at`` to now (database clock); ``requeue``
        (with ``status="interrupted"``) queues the slot again as ``interrupt_firing`` does when
        the firing's target never started."""
        with self.session() as s:
            now = _db_now(s)
            if start:
                values["started_at"] = now
                values["heartbeat_at"] = now
            if finish:
                values["finished_at"] = now
            moved = s.execute(update(orm.ScheduleFiring).where(
                orm.ScheduleFiring.id == firing_id, self._fenced(holder)).values(**values))
            if moved.rowcount != 1:
                return False
            if requeue:
                self._requeue(s, s.scalar(select(orm.ScheduleFiring).where(
                    orm.ScheduleFiring.id == firing_id)), now)
            return True

    def add_notification(self, firing_id: int, outcome: dict[str, Any]) -> None:
        """Append what became of one notification to a firing (any status; not fenced: a
        notification that went out went out)."""
        with self.session() as s:
            # Write first: SQLite then holds its write lock before the read below, so two
            # deliveries finishing at once cannot both append to the same old list.
            s.execute(update(orm.ScheduleFiring).where(orm.ScheduleFiring.id == firing_id)
                      .values(id=orm.ScheduleFiring.id))
            row = s.scalar(select(orm.ScheduleFiring).where(orm.ScheduleFiring.id == firing_id)
                           .with_for_update())
            if row is not None:
                row.notifications = [*(row.notifications or []), outcome]

    def stale_firings(self, owners: Collection[str] | None) -> list[orm.ScheduleFiring]:
        """The running firings of ``owners`` (None: everyone's): the candidates a sweep judges
        (``jupyter_mlplat.scheduler.liveness.firing_is_dead``) before ``interrupt_firing``."""
        with self.session() as s:
            return list(s.scalars(select(orm.ScheduleFiring).where(
                self._owned(orm.ScheduleFiring.owner, owners),
                orm.ScheduleFiring.status == "running",
            ).order_by(orm.ScheduleFiring.id)).all())

    def interrupt_firing(self, firing_id: int, seen_heartbeat: datetime | None, error: str
                         ) -> orm.ScheduleFiring | None:
        """Mark a running firing ``interrupted`` unless it beat since ``seen_heartbeat``.

        A firing whose target never started (no run yet) and that was not a replacement
        already is queued again, once, in the same transaction: a new ``pending`` firing of
        the same slot (``attempt`` 1) that the next scheduler poll runs, for a manual firing
        and, under the ``latest`` policy, for a cron slot or a catch-up. So a crash between a
        claim and the run does not lose the slot.
        """
        with self.session() as s:
            cond = [orm.ScheduleFiring.id == firing_id, orm.ScheduleFiring.status == "running"]
            cond.append(orm.ScheduleFiring.heartbeat_at == seen_heartbeat
                        if seen_heartbeat is not None
                        else orm.ScheduleFiring.heartbeat_at.is_(None))
            now = _db_now(s)
            moved = s.execute(update(orm.ScheduleFiring).where(*cond).values(
                status="interrupted", error=error, finished_at=now))
            if moved.rowcount != 1:
                return None
            row = s.scalar(select(orm.ScheduleFiring).where(
                orm.ScheduleFiring.id == firing_id))
            self._requeue(s, row, now)
            return row

    @staticmethod
    def _requeue(s: Session, row: orm.ScheduleFiring, now: datetime) -> None:
        if row.run_id is not None or row.attempt:
            return
        schedule = s.scalar(select(orm.Schedule).where(orm.Schedule.id == row.schedule_id))
        if schedule is None or schedule.deleted_at is not None:
            return
        if row.kind != "manual" and (row.kind not in SLOT_KINDS or schedule.missed != "latest"):
            return
        try:
            with s.begin_nested():
                s.add(orm.ScheduleFiring(
                    owner=row.owner, schedule_id=row.schedule_id, slot_at=row.slot_at,
                    kind=row.kind, status="pending", attempt=row.attempt + 1,
                    missed_slots=row.missed_slots, parameters=row.parameters,
                    requested_by=row.requested_by, created_at=now))
                s.flush()
        except IntegrityError:  # another sweep queued it already
            return
        row.error = (row.error or "") + "; it had not started: queued again"

    def firing_row_any_owner(self, firing_id: int) -> orm.ScheduleFiring | None:
        """A firing row whatever its owner (the loop reads what it recorded)."""
        with self.session() as s:
            return s.scalar(select(orm.ScheduleFiring).where(orm.ScheduleFiring.id == firing_id))

    def schedule_any_owner(self, schedule_id: str) -> orm.Schedule | None:
        """A schedule row whatever its owner or state (the loop reads what it fires)."""
        with self.session() as s:
            return s.scalar(select(orm.Schedule).where(orm.Schedule.id == schedule_id))


def add_fenced_endpoint_revision(store: Any, name: str, *, firing_id: int, holder: str,
                                 model: str, version: int, **fields: Any
                                 ) -> orm.EndpointRevision:
    """``store.add_endpoint_revision(name, **fields)`` for a firing's on-success deploy, in one
    transaction with its fence: the revision is written only while ``holder`` still holds the
    firing (the schedule's row held meanwhile), and only when this schedule never deployed a
    newer version of ``model`` to ``name``.

    Parameters
    ----------
    store : Store
        The schedule owner's SQL store.
    name : str
        The endpoint.
    firing_id, holder
        The firing and the scheduler that runs it.
    model, version
        What the revision deploys.
    **fields
        ``EndpointRevision`` columns, as ``add_endpoint_revision`` takes them.

    Raises
    ------
    FenceLostError
        The scheduler lost the firing, or the schedule deployed a newer version already.
    """
    for _ in range(20):
        try:
            with store.session() as s:
                _lock_schedule_of(s, firing_id)
                firing = s.scalar(select(orm.ScheduleFiring).where(
                    orm.ScheduleFiring.id == firing_id,
                    orm.ScheduleFiring.owner == store.owner))
                if firing is None:
                    raise NotFoundError(f"no firing {firing_id}")
                if s.scalar(select(orm.ScheduleFiring.id).where(
                        orm.ScheduleFiring.id == firing_id,
                        ScheduleQueries._fenced(holder))) is None:
                    raise FenceLostError(
                        "this scheduler lost the schedule (another scheduler took it over, or "
                        "the firing was marked interrupted) before deploying")
                deployed = [
                    f.actions.get("version") for f in s.scalars(select(orm.ScheduleFiring).where(
                        orm.ScheduleFiring.schedule_id == firing.schedule_id,
                        orm.ScheduleFiring.id != firing_id)).all()
                    if (f.actions or {}).get("status") == "deployed"
                    and f.actions.get("model") == model and f.actions.get("endpoint") == name]
                newest = max((v for v in deployed if isinstance(v, int)), default=None)
                if newest is not None and newest > version:
                    raise FenceLostError(
                        f"this schedule already deployed {model} v{newest} to {name!r}, newer "
                        f"than v{version}")
                return store._insert_revision(s, name, fields)  # noqa: SLF001 - same store
        except IntegrityError:
            continue
    from ..errors import InvalidSpecError

    raise InvalidSpecError(f"could not allocate a revision for endpoint {name!r}")
