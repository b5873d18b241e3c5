"""Scheduler fixtures: a simulated clock, a store, real notebooks, loops that are always stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.loop import SchedulerLoop
from jupyter_mlplat.scheduler.runner import BaseFiringRunner, FiringContext, FiringResult
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.store.sql import Store


class SimClock:
    """A clock the test moves by hand (aware UTC)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, value: datetime) -> datetime:
        self.now = value
        return value


@dataclass
class RecordingRunner(BaseFiringRunner):
    """Fires nothing heavy: makes the firing's run (as the real runner does before its target
    starts), records each firing (thread-safe) and succeeds, or fails when the schedule's
    parameters say ``fail``; ``gate`` (when given) holds every firing until set."""

    calls: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    gate: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, ctx: FiringContext) -> FiringResult:
        run_id = ctx.store.create_run(
            pipeline_id=ctx.store.pipeline_id("job", ctx.schedule.notebook_path),
            pipeline_version="test", notebook_path=ctx.schedule.notebook_path,
            parameters=dict(ctx.parameters), options={}, steps=["job"])
        ctx.on_run(run_id)
        with self.lock:
            self.calls.append((ctx.firing_id, ctx.schedule.id, dict(ctx.parameters)))
        if self.gate is not None:
            self.gate.wait(30)
        if ctx.parameters.get("fail"):
            ctx.store.finish_run(run_id, "failed", "on purpose")
            raise RuntimeError("the target failed on purpose")
        ctx.store.finish_run(run_id, "succeeded", None)
        return FiringResult("succeeded", run_id=run_id)


@pytest.fixture
def config(mlplat_isolated_env: Path) -> MLPlat:
    return MLPlat()


@pytest.fixture
def store(config: MLPlat) -> Iterator[Store]:
    s = Store(config.store_url, config.owner)
    yield s
    s.close()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))


@pytest.fixture
def service(config: MLPlat, store: Store, clock: SimClock) -> ScheduleService:
    return ScheduleService(config, store=store, clock=clock)


@pytest.fixture
def loops(config: MLPlat) -> Iterator[Callable[..., SchedulerLoop]]:
    """``loops(**options)`` makes a SchedulerLoop stopped at the test's end."""
    made: list[SchedulerLoop] = []

    def make(**options: Any) -> SchedulerLoop:
        options.setdefault("poll_interval", 0.05)
        loop = SchedulerLoop(options.pop("config", config), **options)
        made.append(loop)
        return loop

    yield make
    for loop in made:
        loop.stop(timeout=5)


def claim(store: Store, schedule_id: str, holder: str, *, lease: float = 30.0,
          status: str = "running", **process: Any) -> Any:
    """Take the schedule's lease as ``holder`` and claim its next slot (the store calls a loop
    makes), recorded as run by ``process`` (default: this process); the firing row."""
    from jupyter_mlplat.scheduler.liveness import ProcessIdentity

    token = store.acquire_lease(schedule_id, holder, timedelta(seconds=lease))
    assert token is not None, "the lease is held by another scheduler"
    row = store.schedule_row(schedule_id)
    firing = store.claim_slot(
        schedule_id, holder=holder, token=token, seen_next=row.next_fire_at, new_next=None,
        slot_at=row.next_fire_at, kind="cron", status=status, missed_slots=0, parameters={},
        process={**ProcessIdentity.current().columns(), **process}, stale_after=lease)
    assert firing is not None
    return firing


def notebook(folder: Path, name: str, parameters: str, *body: str,
             kernel: str = "python3") -> Path:
    """Write a notebook: a ``parameters`` cell, then one code cell per ``body`` source."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(nbformat.v4.new_code_cell(src) for src in body)]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(every)
