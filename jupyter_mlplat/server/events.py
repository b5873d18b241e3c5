"""EventHub: pushes changes of the owner's runs, endpoints and schedules to server-sent-event
clients.

One watcher per server, running only while someone listens, compares a cheap snapshot of the
runs (statuses of runs and steps), of the endpoints (newest revision) and of the schedules
(settings, next slot, last firing and its status) with the last one and publishes what changed. The runs looked at are the newest ones, every active one whatever its
age, the ones active at the last look (so their end is seen) and the ones poked since. Runs
started by this server poke it with their id at every step change, so those arrive at once;
runs started elsewhere (the CLI, another server on the same store) are seen within
``interval`` seconds, and so are firings of the scheduler loop. Runs, endpoints and schedules are
checked apart: a failure of one is retried at the next tick and loses nothing of the others.
Clients never poll: they hold one ``GET events``
stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Run statuses that can still change.
ACTIVE = ("pending", "running")


@dataclass(frozen=True)
class Event:
    """One server-sent event: its type (``run``, ``endpoint``, ``schedule``) and a JSON-able
    payload."""

    kind: str
    data: str  # JSON text
    id: int

    def encode(self) -> str:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {self.data}\n\n"


class EventHub:
    """Subscribers' queues and the one watcher that fills them.

    Parameters
    ----------
    runs : callable
        ``runs(ids)`` -> the runs to watch (``DescribeRun`` list): the newest and the active
        ones, plus those of ``ids`` that exist for the owner; called in a thread.
    endpoints : callable
        ``endpoints()`` -> ``{name: (revision, public)}``; called in a thread.
    describe_endpoint : callable
        ``describe_endpoint(name)`` -> ``DescribeEndpoint``; called in a thread.
    schedules : callable, optional
        ``schedules()`` -> the owner's live schedules (``DescribeSchedule`` list, each with its
        last firing); called in a thread. None: schedules are not watched.
    interval : float
        Seconds between checks when nothing pokes the hub.
    """

    def __init__(self, runs: Callable[[set[str]], list[Any]],
                 endpoints: Callable[[], dict[str, Any]],
                 describe_endpoint: Callable[[str], Any], *,
                 schedules: Callable[[], list[Any]] | None = None,
                 interval: float = 2.0) -> None:
        self._runs = runs
        self._endpoints = endpoints
        self._describe_endpoint = describe_endpoint
        self._schedules = schedules
        self.interval = interval
        self._queues: set[asyncio.Queue[Event | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen_runs: dict[str, Any] | None = None
        self._seen_endpoints: dict[str, Any] | None = None
        self._seen_schedules: dict[str, Any] | None = None
        self._next_id = 0
        self._closed = False
        self._dirty: set[str] = set()  # runs poked since the last look
        self._dirty_lock = threading.Lock()

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[Event | None]:
        """A queue that receives every event from now on (``None``: the hub is closing)."""
        if self._closed:
            raise RuntimeError("the event hub is closed")
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = self._loop.create_task(self._watch(), name="mlplat-events")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def poke(self, run_id: str | None = None) -> None:
        """Check for changes now (of ``run_id`` too, however old); safe from any thread."""
        if run_id is not None:
            with self._dirty_lock:
                self._dirty.add(run_id)
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            loop.call_soon_threadsafe(wake.set)

    async def close(self) -> None:
        """Tell every subscriber to stop and end the watcher."""
        self._closed = True
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._queues.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- the watcher ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        assert self._wake is not None
        # a new watcher starts from now
        self._seen_runs = self._seen_endpoints = self._seen_schedules = None
        while self._queues:
            try:
                events = await asyncio.to_thread(self._changes)
            except RuntimeError:  # no thread to run it in: the loop is shutting down
                log.warning("the event watcher stopped: no thread to check changes in")
                return
            for event in events:
                self._publish(event)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    def _publish(self, event: Event) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a client that stopped reading: drop it
                self._queues.discard(queue)
                log.warning("an event stream client fell behind; closing its stream")
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def _changes(self) -> list[Event]:
        """Runs, endpoints and schedules whose state differs from the last check (first check:
        none).

        Each part remembers what it saw only once its events are built, so a failure (a locked
        database, say) loses nothing: the same changes are found at the next tick.
        """
        events: list[Event] = []
        parts = [(self._run_changes, "runs"), (self._endpoint_changes, "endpoints")]
        if self._schedules is not None:
            parts.append((self._schedule_changes, "schedules"))
        for part, what in parts:
            try:
                events.extend(part())
            except Exception:  # noqa: BLE001 - a store hiccup: try again at the next tick
                log.exception("checking %s for changes failed; retrying", what)
        return events

    def _run_changes(self) -> list[Event]:
        with self._dirty_lock:
            poked, self._dirty = self._dirty, set()
        seen = self._seen_runs
        ids = set(poked)
        if seen is not None:  # runs active at the last look: their end must be seen too
            ids.update(rid for rid, (status, _) in seen.items() if status in ACTIVE)
        try:
            runs = {run.id: run for run in self._runs(ids)}
        except BaseException:
            with self._dirty_lock:
                self._dirty |= poked
            raise
        snapshot = {rid: (run.status, tuple((s.name, s.status, s.attempt) for s in run.steps))
                    for rid, run in runs.items()}
        events = []
        if seen is not None:
            events = [self._event("run", runs[rid].model_dump_json())
                      for rid, state in snapshot.items() if seen.get(rid) != state]
        self._seen_runs = snapshot
        return events

    def _endpoint_changes(self) -> list[Event]:
        endpoints = self._endpoints()
        seen = self._seen_endpoints
        events = []
        if seen is not None:
            for name, state in endpoints.items():
                if seen.get(name) != state:
                    described = self._describe_endpoint(name)
                    events.append(("endpoint", described.model_dump_json()))
            for name in set(seen) - set(endpoints):
                events.append(("endpoint", json.dumps({"name": name, "deleted": True})))
        self._seen_endpoints = endpoints
        return [self._event(kind, data) for kind, data in events]

    def _schedule_changes(self) -> list[Event]:
        assert self._schedules is not None
        schedules = {s.id: s for s in self._schedules()}
        snapshot = {sid: _schedule_state(s) for sid, s in schedules.items()}
        seen = self._seen_schedules
        events = []
        if seen is not None:
            events = [("schedule", schedules[sid].model_dump_json())
                      for sid, state in snapshot.items() if seen.get(sid) != state]
            events += [("schedule", json.dumps({"id": sid, "deleted": True}))
                       for sid in set(seen) - set(snapshot)]
        self._seen_schedules = snapshot
        return [self._event(kind, data) for kind, data in events]

    def _event(self, kind: str, data: str) -> Event:
        self._next_id += 1
        return Event(kind, data, self._next_id)


def _schedule_state(schedule: Any) -> tuple[Any, ...]:
    """What of a schedule the sidebar shows: its settings, its next slot, its last firing and
    that firing's run (not the lease holder, which moves with every renewal)."""
    last = schedule.last_firing
    return (schedule.model_dump_json(include={
        "name", "target", "notebook", "cron", "timezone", "parameters", "on_success", "notify",
        "missed", "kernel", "timeout", "paused", "next_fire_at", "error"}),
        (last.id, last.status, last.run_status, last.run_id) if last is not None else None)
