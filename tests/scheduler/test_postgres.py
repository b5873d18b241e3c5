"""The lease and claim protocol on PostgreSQL: two loops racing on every slot, and fencing.

Uses the store tests' throw-away PostgreSQL cluster (``tests/store/pg.py``); skipped where the
server or the driver is missing, unless ``MLPLAT_TEST_PG=require``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.loop import SchedulerLoop
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.store.sql import Store

from .conftest import RecordingRunner, SimClock, notebook

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def pg() -> Iterator[object]:
    from tests.store.pg import PostgresCluster, required_bindir

    bindir = required_bindir()
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_config(pg, mlplat_isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> MLPlat:
    database = pg.create_database()  # type: ignore[attr-defined]
    monkeypatch.setenv("MLPLAT_STORE_URL", pg.url(database))  # type: ignore[attr-defined]
    return MLPlat()


def _race(loop: SchedulerLoop, barrier: threading.Barrier) -> None:
    barrier.wait()
    loop.tick()


def test_two_loops_racing_on_postgresql_fire_each_slot_once(pg_config, tmp_path: Path) -> None:
    clock = SimClock(datetime(2026, 3, 27, 12, tzinfo=UTC))
    store = Store(pg_config.store_url, pg_config.owner)
    service = ScheduleService(pg_config, store=store, clock=clock)
    nb = notebook(tmp_path, "job", "x = 1")
    ids = [service.create({"notebook": str(nb), "cron": "*/5 * * * *", "name": f"s{i}"}).id
           for i in range(3)]
    runners = [RecordingRunner(), RecordingRunner()]
    # leases are real seconds on the database's clock: long enough for a poll, short enough
    # to wait out when A dies
    everyone = [SchedulerLoop(pg_config, clock=clock, runner=r, scheduler_id=name, lease=1.5,
                              poll_interval=0.05, workers=3) for r, name in zip(runners, "AB")]
    loops = list(everyone)
    try:
        for _ in range(12):  # an hour of slots; both loops tick at the same moment each time
            clock.advance(minutes=5)
            for loop in loops:
                loop.beat()
            barrier = threading.Barrier(len(loops))
            threads = [threading.Thread(target=_race, args=(loop, barrier)) for loop in loops]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            for loop in loops:
                assert loop.drain(10)
            if clock.now.minute == 30:  # halfway, A dies without a word; B takes over
                loops[0]._stop.set()  # noqa: SLF001 - stands for a killed process
                loops = loops[1:]
                time.sleep(1.6)  # past A's lease
        for sid in ids:
            slots = sorted(f.slot_at for f in store.firings(sid, limit=100))
            assert len(slots) == len(set(slots)), "a slot fired twice"
            assert all(b - a >= timedelta(minutes=5) for a, b in zip(slots, slots[1:]))
            assert all(f.status == "succeeded" for f in store.firings(sid, limit=100))
        fired = sum(len(r.calls) for r in runners)
        assert fired == sum(len(store.firings(sid, limit=100)) for sid in ids)
        assert runners[0].calls and runners[1].calls
    finally:
        for loop in everyone:
            loop.stop(timeout=5)
        store.close()


def test_fenced_claims_and_db_time_on_postgresql(pg_config, tmp_path: Path) -> None:
    """The claims of pending firings and the fenced deploy take the schedule's row lock; the
    database's clock is PostgreSQL's own."""
    from jupyter_mlplat.store.scheduling import database_now

    from .conftest import claim

    store = Store(pg_config.store_url, pg_config.owner)
    try:
        service = ScheduleService(pg_config, store=store)
        sid = service.create({"notebook": str(notebook(tmp_path, "job", "x = 1")),
                              "cron": "@hourly"}).id
        now = database_now(store)
        assert now.tzinfo is not None and abs((now - datetime.now(UTC)).total_seconds()) < 60
        running = claim(store, sid, "A")
        pending = service.run_now(sid)
        process = {"host": "h", "pid": 1}
        assert store.claim_pending(pending.id, holder="B", process=process,
                                   stale_after=30) is None  # one firing at a time
        assert store.update_firing(running.id, "A", status="succeeded", finish=True)
        results: list = []

        def take(holder: str) -> None:
            results.append(store.claim_pending(pending.id, holder=holder, process=process,
                                               stale_after=30))

        threads = [threading.Thread(target=take, args=(h,)) for h in ("B", "C")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(r is not None for r in results) == 1
    finally:
        store.close()
