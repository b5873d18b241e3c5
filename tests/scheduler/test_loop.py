"""The loop under a simulated clock: many slots, DST days, missed slots, leases and fencing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from jupyter_mlplat.scheduler.runner import DefaultFiringRunner
from jupyter_mlplat.store import orm

from .conftest import RecordingRunner, claim, notebook, wait_for

BERLIN = ZoneInfo("Europe/Berlin")


def _schedule(service, tmp_path: Path, cron: str, tz: str = "UTC", **extra) -> str:
    nb = tmp_path / "job.ipynb"
    if not nb.exists():
        notebook(tmp_path, "job", "fail = False\nn = 0", "print(n)")
    return service.create({"notebook": str(nb), "cron": cron, "timezone": tz,
                           "name": extra.pop("name", cron), **extra}).id


def _drive(loop, clock, until: datetime, step: timedelta) -> None:
    """Tick the loop at every ``step`` of simulated time up to ``until``."""
    while clock.now < until:
        clock.advance(seconds=step.total_seconds())
        loop.tick()
        assert loop.drain(10)


def _slots(store, schedule_id: str, status: str | None = None) -> list[datetime]:
    rows = store.firings(schedule_id, limit=10_000)
    return sorted(r.slot_at for r in rows if status is None or r.status == status)


def test_many_slots_fire_once_each_through_both_dst_days(service, store, clock, loops,
                                                         tmp_path: Path) -> None:
    quarter = _schedule(service, tmp_path, "*/15 * * * *", "Europe/Berlin")
    nightly = _schedule(service, tmp_path, "30 2 * * *", "Europe/Berlin")
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner)
    for start in (datetime(2026, 3, 28, 20, tzinfo=UTC), datetime(2026, 10, 24, 20, tzinfo=UTC)):
        clock.set(start)
        for sid in (quarter, nightly):  # resume: the next slot after the new "now"
            service.pause(sid)
            service.resume(sid)
        # uneven steps (7 minutes) so ticks fall between slots, as a real poll would
        _drive(loop, clock, start + timedelta(hours=10), timedelta(minutes=7))
    fired = _slots(store, quarter)
    assert len(fired) == len(set(fired))
    assert all(s.status == "succeeded" for s in store.firings(quarter, limit=10_000))
    for start in (datetime(2026, 3, 28, 20, tzinfo=UTC), datetime(2026, 10, 24, 20, tzinfo=UTC)):
        window = [s for s in fired if start <= s <= start + timedelta(hours=10)]
        # Berlin's offsets are whole hours: every quarter of a local hour is a quarter of a UTC
        # hour, through both changes (20:15 UTC .. 06:00 UTC, 40 slots)
        assert window == [start + timedelta(minutes=15 * k) for k in range(1, 41)]
    nights = [s.astimezone(BERLIN).isoformat() for s in _slots(store, nightly)]
    assert nights == ["2026-03-29T03:00:00+02:00", "2026-10-25T02:30:00+02:00"]
    assert len(runner.calls) == len(fired) + len(nights)  # each firing ran its target once
    assert len({c[0] for c in runner.calls}) == len(runner.calls)


def test_missed_slots_fire_once_with_policy_latest(service, store, clock, loops,
                                                   tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 * * * *")
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner, misfire_grace=120)
    clock.advance(hours=5, minutes=10)  # 13:00 .. 17:00 missed, nobody ran
    assert len(loop.tick()) == 1
    assert loop.drain(10)
    assert loop.tick() == []
    (firing,) = store.firings(sid)
    assert firing.kind == "catch_up" and firing.status == "succeeded"
    assert firing.slot_at == datetime(2026, 3, 27, 17, tzinfo=UTC)
    assert firing.missed_slots == 4  # 13, 14, 15, 16 stand behind it
    assert store.schedule_row(sid).next_fire_at == datetime(2026, 3, 27, 18, tzinfo=UTC)
    assert len(runner.calls) == 1


def test_missed_slots_do_not_fire_with_policy_skip(service, store, clock, loops,
                                                   tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 * * * *", missed="skip")
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner, misfire_grace=120)
    clock.advance(hours=3, minutes=30)
    assert loop.tick() == []
    (row,) = store.firings(sid)
    assert row.status == "missed" and row.missed_slots == 3 and row.run_id is None
    assert "skip" in row.error
    assert runner.calls == []
    assert store.schedule_row(sid).next_fire_at == datetime(2026, 3, 27, 16, tzinfo=UTC)
    clock.set(datetime(2026, 3, 27, 16, 0, 5, tzinfo=UTC))  # the next slot is on time
    assert len(loop.tick()) == 1
    assert loop.drain(10)
    assert [c[1] for c in runner.calls] == [sid]


def test_an_on_time_slot_after_missed_ones_stands_for_them(service, store, clock, loops,
                                                           tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 * * * *")
    loop = loops(clock=clock, runner=RecordingRunner(), misfire_grace=120)
    clock.set(datetime(2026, 3, 27, 16, 0, 30, tzinfo=UTC))  # 13, 14, 15 missed; 16 on time
    assert len(loop.tick()) == 1
    assert loop.drain(10)
    (firing,) = store.firings(sid)
    assert (firing.kind, firing.slot_at, firing.missed_slots) == (
        "cron", datetime(2026, 3, 27, 16, tzinfo=UTC), 3)


def test_late_slots_within_grace_fire_one_by_one(service, store, clock, loops,
                                                 tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "* * * * *")
    loop = loops(clock=clock, runner=RecordingRunner(), misfire_grace=300)
    clock.advance(minutes=3, seconds=30)  # 12:01, 12:02, 12:03 due, all within grace
    for _ in range(4):
        loop.tick()
        assert loop.drain(10)
    assert _slots(store, sid) == [datetime(2026, 3, 27, 12, m, tzinfo=UTC) for m in (1, 2, 3)]


def test_paused_and_deleted_schedules_do_not_fire(service, store, clock, loops,
                                                  tmp_path: Path) -> None:
    paused = _schedule(service, tmp_path, "0 * * * *", name="paused", paused=True)
    gone = _schedule(service, tmp_path, "0 * * * *", name="gone")
    service.delete(gone)
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner)
    clock.advance(hours=3)
    assert loop.tick() == []
    service.resume(paused)  # no catch-up for the time it was paused
    assert store.schedule_row(paused).next_fire_at == datetime(2026, 3, 27, 16, tzinfo=UTC)
    assert loop.tick() == []
    assert runner.calls == []


def test_run_now_fires_on_the_next_poll_even_when_paused(service, store, clock, loops,
                                                         tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 3 * * *", paused=True, parameters={"n": 4})
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner)
    pending = service.run_now(sid)
    assert pending.status == "pending" and pending.kind == "manual"
    assert loop.tick() == [pending.id]
    assert loop.drain(10)
    assert runner.calls == [(pending.id, sid, {"n": 4})]
    assert service.firing(pending.id).status == "succeeded"
    assert loop.tick() == []


def test_one_bad_schedule_does_not_stop_the_others(service, store, clock, loops,
                                                   tmp_path: Path) -> None:
    good = _schedule(service, tmp_path, "0 * * * *", name="good")
    broken_zone = _schedule(service, tmp_path, "0 * * * *", name="zone")
    vanished = _schedule(service, tmp_path, "0 * * * *", name="vanished",
                         notebook=str(notebook(tmp_path, "gone", "x = 1", "x")))
    failing = _schedule(service, tmp_path, "0 * * * *", name="failing",
                        parameters={"fail": True})
    (tmp_path / "gone.ipynb").unlink()
    with store.session() as s:  # a zone the tz database no longer has
        s.execute(update(orm.Schedule).where(orm.Schedule.id == broken_zone)
                  .values(timezone="Atlantis/Capital"))

    class Mixed(RecordingRunner):
        def run(self, ctx):
            if ctx.schedule.name == "vanished":  # the real runner: a clear failure, no kernel
                return DefaultFiringRunner().run(ctx)
            return super().run(ctx)

    loop = loops(clock=clock, runner=Mixed())
    clock.advance(hours=1, seconds=5)
    for _ in range(2):  # three firings, two workers: the third is claimed once one is free
        loop.tick()
        assert loop.drain(10)
    status = {sid: [f.status for f in store.firings(sid)]
              for sid in (good, broken_zone, vanished, failing)}
    assert status == {good: ["succeeded"], broken_zone: [], vanished: ["failed"],
                      failing: ["failed"]}
    assert "notebook not found" in store.firings(vanished)[0].error
    assert "RuntimeError: the target failed on purpose" in store.firings(failing)[0].error
    zone_row = store.schedule_row(broken_zone)
    assert zone_row.next_fire_at is None and "Atlantis/Capital" in zone_row.last_error
    assert "Atlantis/Capital" in (service.describe(broken_zone).error or "")
    clock.advance(hours=1)
    for _ in range(2):  # the loop lives on: the next hour fires for the good ones
        loop.tick()
        assert loop.drain(10)
    assert [f.status for f in store.firings(good)] == ["succeeded", "succeeded"]


def test_a_held_lease_keeps_another_loop_off_until_released(service, store, clock, loops,
                                                            tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 * * * *")
    a_runner, b_runner = RecordingRunner(), RecordingRunner()
    a = loops(clock=clock, runner=a_runner, scheduler_id="A", lease=60)
    b = loops(clock=clock, runner=b_runner, scheduler_id="B", lease=60)
    clock.advance(hours=1, seconds=1)
    assert len(a.tick()) == 1 and b.tick() == []
    assert a.drain(10)
    clock.advance(hours=1)
    a.beat()  # A renews: still A's
    assert b.tick() == [] and len(a.tick()) == 1
    assert a.drain(10)
    a.stop()  # releases its leases: B takes over at once
    clock.advance(hours=1)
    assert len(b.tick()) == 1
    assert b.drain(10)
    assert len(a_runner.calls) == 2 and len(b_runner.calls) == 1
    slots = _slots(store, sid)
    assert len(slots) == len(set(slots)) == 3


def test_a_paused_scheduler_that_wakes_late_cannot_commit(service, store, clock, loops,
                                                          tmp_path: Path) -> None:
    """A claims a slot and is then paused past its lease; B takes the schedule over (token + 1),
    marks A's firing interrupted and fires the next slot. When A wakes, nothing it does commits:
    not its old firing's outcome, not a new claim with its old token."""
    sid = _schedule(service, tmp_path, "0 * * * *")
    gate = threading.Event()
    a_runner, b_runner = RecordingRunner(gate=gate), RecordingRunner()
    # 2 s leases: long enough that A's tick (lease, then claim) never outlasts its own lease
    a = loops(clock=clock, runner=a_runner, scheduler_id="A", lease=2.0)
    b = loops(clock=clock, runner=b_runner, scheduler_id="B", lease=2.0)
    clock.advance(hours=1, seconds=1)
    (a_firing,) = a.tick()
    token_a = store.schedule_row(sid).lease_token
    stale_view = store.schedule_row(sid)  # what A read before it froze
    clock.advance(hours=1)
    time.sleep(2.5)  # A is frozen: no beats for longer than its lease (real, database time)
    assert len(b.tick()) == 1
    assert b.drain(10)
    row = store.schedule_row(sid)
    assert row.lease_holder == "B" and row.lease_token == token_a + 1
    assert store.firing_row(a_firing).status == "interrupted"
    gate.set()  # A wakes up and finishes its run
    assert a.drain(10)
    assert store.firing_row(a_firing).status == "interrupted"  # its "succeeded" did not commit
    assert a.store.claim_slot(
        sid, holder="A", token=token_a, seen_next=stale_view.next_fire_at,
        new_next=clock.now, slot_at=stale_view.next_fire_at, kind="cron", status="running",
        missed_slots=0, parameters={}, process={"host": "h", "pid": 1},
        stale_after=2.0) is None
    assert a.tick() == []  # B holds the lease now
    slots = _slots(store, sid)
    assert slots == [datetime(2026, 3, 27, 13, tzinfo=UTC), datetime(2026, 3, 27, 14,
                                                                       tzinfo=UTC)]
    assert len(b_runner.calls) == 1


def test_the_token_alone_fences_a_firing_whose_holder_lost_and_retook_the_lease(
        service, store, clock, tmp_path: Path) -> None:
    """A's lease runs out and B takes the schedule over without sweeping anything; then A
    takes the lease back. A's old firing names the right holder and is still running, but its
    fence is an old token: its outcome, its heartbeat and its deploy are all refused."""
    from jupyter_mlplat.errors import ConflictError
    from jupyter_mlplat.store.scheduling import add_fenced_endpoint_revision

    sid = _schedule(service, tmp_path, "0 * * * *")
    firing = claim(store, sid, "A", lease=2.0)  # its lease outlasts the claim's three steps
    # B takes the schedule over, no sweep, as soon as A's lease runs out
    wait_for(lambda: store.acquire_lease(sid, "B", timedelta(seconds=30)) is not None,
             timeout=10)
    store.release_leases("B")
    token = store.acquire_lease(sid, "A", timedelta(seconds=30))
    assert token == firing.fence + 2
    row = store.schedule_row(sid)
    assert (row.lease_holder, store.firing_row(firing.id).status) == ("A", "running")
    assert not store.still_fenced(firing.id, "A")
    assert not store.update_firing(firing.id, "A", status="succeeded", finish=True)
    assert store.beat_firings([firing.id], "A") == set()
    store.ensure_endpoint("churn")
    with pytest.raises(ConflictError, match="lost the schedule"):
        add_fenced_endpoint_revision(store, "churn", firing_id=firing.id, holder="A",
                                     model="churn", version=1, routes=[], public=True,
                                     action="deploy", forced=False, actor=store.owner)
    assert store.endpoint_revisions("churn") == []
    assert store.firing_row(firing.id).status == "running"


def test_a_scheduler_that_lost_its_firing_stops_it(service, store, clock, loops,
                                                   tmp_path: Path) -> None:
    _schedule(service, tmp_path, "0 * * * *")
    stopped = threading.Event()

    class Watching(RecordingRunner):
        def run(self, ctx):
            ctx.stop.wait(20)
            stopped.set()
            return super().run(ctx)

    a = loops(clock=clock, runner=Watching(), scheduler_id="A", lease=2.0)
    b = loops(clock=clock, runner=RecordingRunner(), scheduler_id="B", lease=2.0)
    clock.advance(hours=1, seconds=1)
    (a_firing,) = a.tick()
    time.sleep(2.5)  # no beat from A for longer than its lease
    b.tick()  # A's firing has not beaten for longer than a lease: interrupted
    firing = store.firing_row(a_firing)
    assert firing.status == "interrupted" and "stopped or lost its lease" in firing.error
    a.beat()  # A learns the firing is no longer its own and tells it to stop
    assert stopped.wait(10)
    assert a.drain(10)
