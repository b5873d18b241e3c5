"""The loop inside a process with an event loop (the Jupyter server): it never blocks it."""

from __future__ import annotations

import asyncio
import time

from jupyter_mlplat.scheduler.embedded import start_scheduler

from .conftest import RecordingRunner, notebook


async def test_started_loop_fires_beside_a_running_event_loop(config, service, store,
                                                              tmp_path) -> None:
    nb = notebook(tmp_path, "job", "n = 1")
    s = service.create({"notebook": str(nb), "cron": "@daily", "paused": True})
    runner = RecordingRunner()
    started = time.monotonic()
    handle = start_scheduler(config, runner=runner, poll_interval=0.05)
    assert time.monotonic() - started < 5.0  # returns at once (it never waits for a firing)
    try:
        pending = service.run_now(s.id)
        loop = asyncio.get_running_loop()
        worst = 0.0
        deadline = loop.time() + 20
        while service.firing(pending.id).status != "succeeded":
            assert loop.time() < deadline, "the embedded scheduler did not fire"
            before = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - before - 0.01)
        # the event loop kept turning while the scheduler worked (a GC pause or the other core
        # busy may hold one turn for most of a second on a loaded machine)
        assert worst < 1.0
        assert [c[1] for c in runner.calls] == [s.id]
        assert store.schedule_row(s.id).lease_holder == handle.scheduler_id
    finally:
        await handle.aclose()
    assert store.schedule_row(s.id).lease_holder is None  # released for other schedulers


def test_wake_fires_a_manual_firing_without_waiting_for_the_poll(config, service, store,
                                                                 tmp_path, monkeypatch) -> None:
    from jupyter_mlplat.scheduler.loop import SchedulerLoop

    from .conftest import wait_for

    ticks: list[float] = []
    tick = SchedulerLoop.tick

    def counted(self: SchedulerLoop) -> list[int]:
        ticks.append(time.monotonic())
        return tick(self)

    monkeypatch.setattr(SchedulerLoop, "tick", counted)
    nb = notebook(tmp_path, "job", "n = 1")
    s = service.create({"notebook": str(nb), "cron": "@daily", "paused": True})
    runner = RecordingRunner()
    handle = start_scheduler(config, runner=runner, poll_interval=60.0)
    try:  # the first poll has run; the next one is a minute away
        wait_for(lambda: handle.loop.polled_at is not None)
        assert len(ticks) == 1
        pending = service.run_now(s.id)
        handle.wake()
        wait_for(lambda: service.firing(pending.id).status == "succeeded", timeout=15.0)
        assert [c[1] for c in runner.calls] == [s.id]
        assert len(ticks) == 2  # woken once, not polled
    finally:
        handle.stop()
