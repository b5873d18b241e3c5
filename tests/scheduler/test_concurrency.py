"""One firing per schedule at a time, fair workers, clocks that disagree, crashes between a claim
and the run, and a run-now beside the cron loop (a simulated clock for slots; leases and
heartbeats on the database's clock, so those waits are real and short)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.isolation import DirectKernelAccess
from jupyter_mlplat.scheduler.runner import FiringResult
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.sql import Store

from .conftest import RecordingRunner, SimClock, claim, notebook, wait_for


def _schedule(service, folder: Path, cron: str, name: str, **extra) -> str:
    nb = folder / "job.ipynb"
    if not nb.exists():
        folder.mkdir(parents=True, exist_ok=True)
        notebook(folder, "job", "n = 0", "print(n)")
    return service.create({"notebook": str(nb), "cron": cron, "name": name, **extra}).id


class Hanging(RecordingRunner):
    """Schedules whose name starts with ``hang`` hang until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self, ctx):
        if ctx.schedule.name.startswith("hang"):
            with self.lock:
                self.calls.append((ctx.firing_id, ctx.schedule.id, dict(ctx.parameters)))
            self.release.wait(30)
            return FiringResult("failed", error="hung")
        return super().run(ctx)


def test_a_hanging_schedule_runs_once_at_a_time_and_never_starves_the_others(
        service, store, clock, loops, tmp_path: Path) -> None:
    hang = _schedule(service, tmp_path, "*/5 * * * *", "hang")
    hourly = _schedule(service, tmp_path, "0 * * * *", "hourly")
    runner = Hanging()
    loop = loops(clock=clock, runner=runner, workers=2)
    try:
        for _ in range(13):  # an hour and five minutes of polls, one every slot
            clock.advance(minutes=5)
            loop.tick()
        wait_for(lambda: [f.status for f in store.firings(hourly)] == ["succeeded"], timeout=10)
        rows = store.firings(hang, limit=100)
        assert sorted(f.status for f in rows) == ["missed"] * 12 + ["running"]
        (running,) = [f for f in rows if f.status == "running"]
        assert running.slot_at == datetime(2026, 3, 27, 12, 5, tzinfo=UTC)
        assert running.started_at is not None
        skipped = [f for f in rows if f.status == "missed"]
        assert all(f"firing {running.id} of this schedule" in f.error and "still running"
                   in f.error for f in skipped)
        assert len({f.slot_at for f in rows}) == 13  # every slot accounted for, once
        assert store.firings(hourly)[0].slot_at == datetime(2026, 3, 27, 13, tzinfo=UTC)
    finally:
        runner.release.set()
    assert loop.drain(10)


def test_one_owners_firings_never_take_every_worker(config, clock, tmp_path: Path) -> None:
    """A scheduler for several owners runs at most half its workers for one owner (by
    default), so alice's three hung notebooks leave a worker for bob's."""
    stores = {name: Store(config.store_url, name) for name in ("alice", "bob")}
    loop = None
    runner = Hanging()
    try:
        services = {name: ScheduleService(MLPlat(owner=name), store=store, clock=clock)
                    for name, store in stores.items()}
        alice = [_schedule(services["alice"], tmp_path / "alice", "*/5 * * * *", f"hang{i}")
                 for i in range(3)]
        bob = _schedule(services["bob"], tmp_path / "bob", "*/5 * * * *", "bob's")
        loop = _loop(config, clock, runner, owners=["alice", "bob"], workers=2,
                     homes=str(tmp_path / "{username}"))
        clock.advance(minutes=5)
        loop.tick()
        wait_for(lambda: [f.status for f in stores["bob"].firings(bob)] == ["succeeded"],
                 timeout=10)
        statuses = [f.status for sid in alice for f in stores["alice"].firings(sid)]
        assert statuses == ["running"]  # one of alice's; the others wait for a free worker
    finally:
        runner.release.set()
        if loop is not None:
            loop.stop(timeout=10)
        for store in stores.values():
            store.close()


def _loop(config, clock, runner, **options):
    from jupyter_mlplat.scheduler.loop import SchedulerLoop

    # the runner here executes no user code: the kernels' access does not matter
    return SchedulerLoop(config, clock=clock, runner=runner, kernel_access=DirectKernelAccess(),
                         poll_interval=0.05, **options)


def test_a_server_whose_clock_is_behind_cannot_bring_a_fired_slot_back(
        config, service, store, clock, loops, tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "*/15 * * * *", "quarter")
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner)
    clock.set(datetime(2026, 3, 27, 12, 15, 5, tzinfo=UTC))
    assert len(loop.tick()) == 1
    assert loop.drain(10)
    behind = ScheduleService(config, store=store, clock=lambda: clock.now - timedelta(seconds=30))
    behind.pause(sid)
    assert behind.resume(sid).next_fire_at == datetime(2026, 3, 27, 12, 30, tzinfo=UTC)
    with store.session() as s:  # even a stale write that puts the fired slot back
        s.execute(update(orm.Schedule).where(orm.Schedule.id == sid)
                  .values(next_fire_at=datetime(2026, 3, 27, 12, 15, tzinfo=UTC)))
    for minute in (16, 18, 25):  # in the grace window and past it: never again, no catch-up
        clock.set(datetime(2026, 3, 27, 12, minute, tzinfo=UTC))
        assert loop.tick() == []
    assert store.schedule_row(sid).next_fire_at == datetime(2026, 3, 27, 12, 30, tzinfo=UTC)
    clock.set(datetime(2026, 3, 27, 12, 30, 5, tzinfo=UTC))
    assert len(loop.tick()) == 1
    assert loop.drain(10)
    assert [(f.slot_at.minute, f.kind) for f in store.firings(sid)] == [(30, "cron"),
                                                                       (15, "cron")]
    assert len(runner.calls) == 2


def test_a_scheduler_whose_clock_is_ahead_leaves_a_live_lease_alone(
        service, store, clock, loops, tmp_path: Path) -> None:
    """Leases and heartbeats are compared on the database's clock: B, an hour ahead, neither
    takes A's live lease nor takes A's running firing for dead."""
    sid = _schedule(service, tmp_path, "0 * * * *", "hourly")
    gate = threading.Event()
    # 2 s leases renewed every 0.4 s: a stall of the loaded machine between two beats does not
    # let A's lease lapse
    a = loops(clock=clock, runner=RecordingRunner(gate=gate), scheduler_id="A", lease=2)
    ahead = SimClock(clock.now + timedelta(hours=1))
    b = loops(clock=ahead, runner=RecordingRunner(), scheduler_id="B", lease=2)
    clock.advance(hours=1, seconds=1)
    ahead.advance(hours=1, seconds=1)
    (firing,) = a.tick()
    try:
        for _ in range(6):  # past A's lease, had A not renewed it
            time.sleep(0.4)
            a.beat()
            assert b.tick() == []
        row = store.schedule_row(sid)
        assert row.lease_holder == "A" and store.firing_row(firing).status == "running"
    finally:
        gate.set()
    assert a.drain(10)
    assert store.firing_row(firing).status == "succeeded"


def test_a_firing_lost_between_its_claim_and_its_run_fires_once_more(
        service, store, clock, loops, tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 3 * * *", "nightly")
    skip = _schedule(service, tmp_path, "0 3 * * *", "nightly-skip", missed="skip")
    clock.set(datetime(2026, 3, 28, 3, 0, 5, tzinfo=UTC))
    # never ran; a 2 s lease outlasts each claim's three steps, then the heartbeats go stale
    lost = {s: claim(store, s, "crashed", lease=2.0) for s in (sid, skip)}
    time.sleep(2.5)
    runner = RecordingRunner()
    loop = loops(clock=clock, runner=runner)
    assert len(loop.tick()) == 1
    assert loop.drain(10)
    first, again = sorted(store.firings(sid), key=lambda f: f.id)
    assert first.id == lost[sid].id and first.status == "interrupted"
    assert "queued again" in first.error
    assert (again.status, again.attempt, again.slot_at, again.kind) == (
        "succeeded", 1, first.slot_at, "cron")
    assert again.run_id and [c[0] for c in runner.calls] == [again.id]
    (only,) = store.firings(skip)  # policy skip: the slot is gone, as a missed one would be
    assert only.status == "interrupted" and "queued again" not in only.error
    assert loop.tick() == []  # queued once, fired once


def test_run_now_in_the_foreground_leaves_the_schedule_to_the_cron_loop(
        service, store, clock, loops, tmp_path: Path) -> None:
    sid = _schedule(service, tmp_path, "0 * * * *", "hourly")
    gate = threading.Event()
    foreground = loops(clock=clock, runner=RecordingRunner(gate=gate), scheduler_id="fg")
    pending = service.run_now(sid)
    done: list = []
    thread = threading.Thread(target=lambda: done.append(foreground.run_pending(pending.id)))
    thread.start()
    try:
        wait_for(lambda: store.firing_row(pending.id).status == "running", timeout=10)
        assert store.schedule_row(sid).lease_holder is None  # fenced on its own row
        cron = loops(clock=clock, runner=RecordingRunner(), scheduler_id="cron")
        clock.advance(hours=1, seconds=1)
        assert cron.tick() == []
        assert store.schedule_row(sid).lease_holder == "cron"
        (skipped,) = [f for f in store.firings(sid) if f.kind == "cron"]
        assert skipped.status == "missed" and f"firing {pending.id}" in skipped.error
    finally:
        gate.set()
        thread.join(30)
    assert done and done[0].status == "succeeded"
    clock.advance(hours=1)
    assert len(cron.tick()) == 1  # the next slot fires as usual
    assert cron.drain(10)


def test_listing_leaves_alone_a_firing_of_a_namesake_container(service, store, clock,
                                                              tmp_path: Path) -> None:
    """Same host name, another PID namespace or boot: the pid says nothing here, only the
    heartbeat counts. Same machine and a dead pid: interrupted at once."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    elsewhere = _schedule(service, tmp_path, "0 3 * * *", "elsewhere")
    here = _schedule(service, tmp_path, "0 4 * * *", "here")
    other = claim(store, elsewhere, "container-2", pid=dead_pid, pid_ns="pid:[4026599999]")
    mine = claim(store, here, "dead-one", pid=dead_pid)
    assert service.describe(elsewhere).last_firing.status == "running"
    assert store.firing_row(other.id).status == "running"
    service.list()
    assert store.firing_row(other.id).status == "running"
    history = service.history(here).firings
    (shown,) = [f for f in history if f.id == mine.id]
    assert shown.status == "interrupted" and str(dead_pid) in shown.error
    assert [(f.status, f.attempt) for f in history] == [("pending", 1), ("interrupted", 0)]
