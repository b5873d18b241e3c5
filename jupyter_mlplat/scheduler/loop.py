"""SchedulerLoop: finds due slots, claims each exactly once, fires it, records what happened.

Several loops may run on one store (the Jupyter server's, ``jupyter mlplat scheduler`` on
another host, a ``run-now`` from a shell). What keeps a slot from firing twice is in the store
(``store/scheduling.py``): a lease per schedule with a fencing token, and a claim that moves the
schedule's next slot and inserts the firing in one fenced transaction. A loop that is killed
stops renewing its leases; another loop takes its schedules over when they expire
(``scheduler_lease`` seconds, on the database's clock) and marks the firing it left running
``interrupted`` (one whose target had not started yet is queued again, see
``ScheduleQueries.interrupt_firing``).

Slots
    A slot at most ``scheduler_misfire_grace`` seconds late fires on its own (a takeover's
    backlog fires one by one). Slots later than that were missed while no scheduler ran: with
    policy ``latest`` the newest of them fires once (a ``catch_up``), with ``skip`` none does
    (a ``missed`` row records them); if a slot that is on time follows them, it fires and
    stands for them. Never once per miss. A slot never fires twice, even when a stale write
    (a server whose clock is behind) moved ``next_fire_at`` back to it.

One at a time
    A schedule runs one firing at a time: a slot that comes while its previous firing still
    runs is recorded as skipped (``missed``), and a ``run now`` waits for its turn. A firing is
    claimed only when one of the loop's ``scheduler_workers`` is free for it, and at most
    ``scheduler_owner_workers`` of one owner's firings run at once, so one owner's slow or hung
    notebooks never hold up everyone else's schedules. A notebook target without a timeout of
    its own stops after ``scheduler_timeout`` seconds.

Threads
    ``start()`` runs the loop on a thread of its own and a heartbeat thread beside it (leases,
    firing heartbeats), so it never blocks the caller's event loop. Firings run on a pool of
    ``scheduler_workers`` threads; notifications on the notifier's own threads. An error in one
    schedule (a bad cron, a vanished notebook, a failing webhook) is logged and recorded; the
    loop goes on with the others.

Which slot is due comes from ``clock`` (default: the system's UTC time), so tests can drive it;
leases and heartbeats use the database's clock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import MLPlat
from ..errors import InvalidSpecError, NotFoundError
from ..schemas import DeployIfBlessed, DescribeFiring, ScheduleNotify
from .cron import cron_schedule
from .guard import FiringGuard
from .isolation import (
    BaseKernelAccess,
    extra_env_names,
    kernel_access_for,
    serves_several_owners,
)
from .liveness import ProcessIdentity, firing_is_dead
from .runner import (
    BaseFiringRunner,
    DefaultFiringRunner,
    FiringContext,
    FiringResult,
    ScheduleSnapshot,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Active:
    """A firing this loop is running."""

    firing_id: int
    schedule: ScheduleSnapshot
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str | None = None


@dataclass(frozen=True)
class _Plan:
    slot: datetime | None  # None: no slot fires now, only ``next_at`` moves
    kind: str
    status: str
    missed: int
    next_at: datetime
    error: str | None = None


class SchedulerLoop:
    """A scheduler process's loop over the schedules of some owners (or all of them).

    Parameters
    ----------
    config : MLPlat, optional
        The store, the artifact store and the ``scheduler_*`` settings.
    owners : collection of str, optional
        Whose schedules to fire; default: ``config.owner`` only. ``all_owners=True``: everyone's
        (a shared scheduler service).
    clock : callable, optional
        Returns the current aware UTC time: which slots are due.
    runner : BaseFiringRunner, optional
        Runs a firing's target (default: notebooks with papermill, pipelines with the executor).
    kernel_access : BaseKernelAccess, optional
        What kernels get to reach the store (see :mod:`.isolation`). Default: the loop's own
        store for one owner; for several owners the store service with a hub token of each
        schedule's owner, and without that configuration the loop refuses to start.
    poll_interval : float, optional
        Wall seconds between polls (default ``scheduler_poll_interval``).
    lease : float, optional
        Seconds a lease lasts unless renewed, on the database's clock (``scheduler_lease``).
    misfire_grace : float, optional
        Seconds a slot may be late and still fire on its own (``scheduler_misfire_grace``).
    workers : int, optional
        Firings run at once (``scheduler_workers``).
    owner_workers : int, optional
        Firings of one owner run at once (``scheduler_owner_workers``; 0: half the workers for
        a loop of several owners, all of them for one owner).
    beat_interval : float, optional
        Wall seconds between lease renewals (default: a quarter of the lease).
    homes : str, optional
        Template of an owner's home folder (``/home/{username}``): schedules' notebook paths
        are resolved inside it and refused when they lead out (see :mod:`.guard`). Required
        for several owners; for one owner, relative notebook paths need it.
    kernels : collection of str, optional
        Kernels a firing may use, checked when it starts (the schedule's, the notebook's own,
        a pipeline step's). Default: for several owners the store service's default list
        (``python3``, ``mlplat-python3``); for one owner any installed kernel.

    Raises
    ------
    InvalidSpecError
        Bad settings, or several owners without an owner-scoped store for their kernels or
        without ``homes``.
    """

    def __init__(self, config: MLPlat | None = None, *, owners: Collection[str] | None = None,
                 all_owners: bool = False, clock: Clock | None = None,
                 runner: BaseFiringRunner | None = None, notifier: Any = None,
                 kernel_access: BaseKernelAccess | None = None,
                 scheduler_id: str | None = None, poll_interval: float | None = None,
                 lease: float | None = None, misfire_grace: float | None = None,
                 workers: int | None = None, owner_workers: int | None = None,
                 beat_interval: float | None = None, homes: str | None = None,
                 kernels: Collection[str] | None = None) -> None:
        from ..store.artifacts import ArtifactStore
        from ..store.sql import Store

        self.config = config or MLPlat()
        self.owners: set[str] | None = None if all_owners else set(owners or {self.config.owner})
        self.kernel_access = kernel_access or kernel_access_for(self.config, self.owners)
        several = serves_several_owners(self.owners)
        if several and not homes:
            raise InvalidSpecError(
                "a scheduler for several owners runs notebooks from each owner's home folder "
                "(schedules name them relative to it); give the homes as a template: "
                "--homes /home/{username} (what the spawner uses)")
        if kernels is None and several:
            from ..hub.schedules import DEFAULT_KERNELS

            kernels = DEFAULT_KERNELS
        self.guard = FiringGuard.build(homes, kernels)
        self.env_names = extra_env_names(self.config)
        self.clock = clock or system_clock
        self.runner = runner or DefaultFiringRunner()
        self.process = ProcessIdentity.current()
        self.host, self.pid = self.process.host, self.process.pid
        self.id = scheduler_id or f"{self.host[:32]}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.poll_interval = float(poll_interval if poll_interval is not None
                                   else self.config.scheduler_poll_interval)
        self.lease = timedelta(seconds=float(lease if lease is not None
                                             else self.config.scheduler_lease))
        self.grace = timedelta(seconds=float(misfire_grace if misfire_grace is not None
                                             else self.config.scheduler_misfire_grace))
        self.beat_interval = float(beat_interval if beat_interval is not None
                                   else max(0.05, self.lease.total_seconds() / 4))
        if self.poll_interval <= 0 or self.lease.total_seconds() <= 0:
            raise InvalidSpecError("the scheduler's poll interval and lease must be positive; "
                                   f"got {self.poll_interval} and {self.lease.total_seconds()}")
        self.workers = int(workers or self.config.scheduler_workers)
        limit = int(owner_workers if owner_workers is not None
                    else self.config.scheduler_owner_workers)
        if self.workers < 1 or limit < 0:
            raise InvalidSpecError(f"the scheduler needs at least one worker and a per-owner "
                                   f"limit of 0 or more; got {self.workers} and {limit}")
        if limit == 0:
            limit = max(1, self.workers // 2) if self.owners is None or len(
                self.owners) > 1 else self.workers
        self.owner_workers = min(limit, self.workers)
        timeout = self.config.scheduler_timeout
        self.default_timeout = float(timeout) if timeout and timeout > 0 else None
        self.store = Store(self.config.store_url, self.config.owner, sweep=False)
        self.artifacts = ArtifactStore(self.config.artifacts_url)
        self._owns_notifier = notifier is None
        if notifier is None:
            from .notify import Notifier

            notifier = Notifier(self.config)
        self.notifier = notifier
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mlplat-firing")
        self._lock = threading.Lock()
        self._active: dict[int, _Active] = {}
        self._stores: dict[str, Any] = {}
        self._configs: dict[str, MLPlat] = {}
        self._cluster: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set: poll now (a firing was asked for)
        self._threads: list[threading.Thread] = []
        self._beating = False
        self._closed = False
        #: ``time.monotonic()`` of the last poll that went through (None: none yet)
        self.polled_at: float | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> SchedulerLoop:
        """Run the loop and its heartbeat on background threads; return at once."""
        if self._threads:
            return self
        self.start_beat()
        thread = threading.Thread(target=self._run, name="mlplat-scheduler", daemon=True)
        thread.start()
        self._threads.append(thread)
        log.info("scheduler %s started (owners: %s)", self.id,
                 "all" if self.owners is None else ", ".join(sorted(self.owners)))
        return self

    def start_beat(self) -> None:
        """Renew leases and firing heartbeats on a thread of their own until :meth:`stop`
        (whoever runs firings for longer than a lease needs it: ``start``, ``run_forever``,
        a one-shot ``tick`` + ``drain``, ``run_pending``)."""
        with self._lock:
            if self._beating:
                return
            self._beating = True
        beat = threading.Thread(target=self._beat_forever, name="mlplat-scheduler-beat",
                                daemon=True)
        beat.start()
        self._threads.append(beat)

    def run_forever(self) -> None:
        """Run in the calling thread until :meth:`request_stop` (the heartbeat on a thread)."""
        self.start_beat()
        self._run()

    def request_stop(self, interrupt: bool = False) -> None:
        """Stop claiming new slots (a signal handler may call this); ``interrupt``: tell the
        running firings to stop too (kernels interrupted, recorded ``interrupted``)."""
        self._stop.set()
        self._wake.set()
        if interrupt:
            with self._lock:
                active = list(self._active.values())
            for item in active:
                item.stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: no new claims; firings in flight get ``timeout`` seconds to finish, then are
        told to stop (kernels interrupted) and, if still running, recorded ``interrupted``.
        Leases are released so another scheduler takes over at once."""
        if self._closed:
            return
        self._stop.set()
        self._wake.set()
        if not self.drain(timeout):
            for active in list(self._active.values()):
                active.stop.set()
            self.drain(10.0)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(1.0, self.poll_interval + 1.0))
        for active in list(self._active.values()):
            self.store.update_firing(active.firing_id, self.id, status="interrupted",
                                     finish=True, requeue=True,
                                     error="the scheduler stopped while the firing ran")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.release_leases(self.id)
        if self._owns_notifier:
            self.notifier.close()
        if self._cluster is not None:
            self._cluster.close()
        for store in self._stores.values():
            store.close()
        self.store.close()
        self._closed = True
        log.info("scheduler %s stopped", self.id)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no firing of this loop is running; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._active:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self.polled_at = time.monotonic()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("scheduler %s: a poll failed; trying again", self.id)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def health(self) -> dict[str, Any]:
        """Whether the loop is polling: ``status`` is ``ok`` when its last poll went through
        within three poll intervals (at least 30 s), ``starting`` before its first one,
        ``stale`` when none went through since (the database is unreachable, the loop hangs)
        and ``stopped`` once told to stop; ``running``: firings running now."""
        polled = self.polled_at
        if self._stop.is_set() or self._closed:
            status = "stopped"
        elif polled is None:
            status = "starting"
        elif time.monotonic() - polled <= max(30.0, 3 * self.poll_interval):
            status = "ok"
        else:
            status = "stale"
        with self._lock:
            running = len(self._active)
        return {"status": status, "running": running,
                "last_poll_seconds_ago": None if polled is None
                else round(time.monotonic() - polled, 3)}

    def wake(self) -> None:
        """Poll now instead of at the end of the interval (a manual firing was just asked
        for); safe from any thread."""
        self._wake.set()

    def _beat_forever(self) -> None:
        """Beat every ``beat_interval``; once stopping, on while firings still drain (their
        heartbeats keep other schedulers from taking them for dead)."""
        due = time.monotonic() + self.beat_interval
        while True:
            if self._stop.is_set():
                with self._lock:
                    if not self._active or self._closed:
                        return
                time.sleep(min(0.05, self.beat_interval))
            else:
                self._stop.wait(max(0.0, due - time.monotonic()))
            if time.monotonic() < due:
                continue
            due = time.monotonic() + self.beat_interval
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - retried at the next beat
                log.exception("scheduler %s: heartbeat failed", self.id)

    # -- one pass -------------------------------------------------------------------------------

    def tick(self) -> list[int]:
        """Sweep firings left by dead schedulers, then claim and start what is due.

        Returns the ids of the firings started (they run on the worker pool).
        """
        now = self.clock()
        self.sweep()
        started: list[int] = []
        for row in self.store.due_schedules(now, self.id, self.owners):
            if self._stop.is_set():
                break
            try:
                started.extend(self._handle(row, now))
            except Exception:  # noqa: BLE001 - one bad schedule never stops the others
                log.exception("scheduler %s: schedule %s (%s) failed to fire", self.id, row.id,
                              row.name)
        return started

    def beat(self) -> None:
        """Renew this loop's leases and the heartbeats of its running firings; a firing whose
        schedule another scheduler took over is told to stop (it could not commit anyway)."""
        self.store.renew_leases(self.id, self.lease)
        with self._lock:
            active = dict(self._active)
        ours = self.store.beat_firings(list(active), self.id)
        for firing_id, item in active.items():
            if firing_id not in ours and not item.stop.is_set():
                log.warning("firing %s of schedule %s: this scheduler lost the schedule's "
                            "lease; stopping it", firing_id, item.schedule.id)
                item.stop.set()

    def sweep(self) -> list[int]:
        """Mark ``interrupted`` the running firings whose scheduler is gone (see
        :mod:`.liveness`); those whose target never started are queued again."""
        from ..store.scheduling import database_now

        gone: list[int] = []
        now = database_now(self.store)
        for row in self.store.stale_firings(self.owners):
            with self._lock:
                if row.id in self._active:
                    continue
            if not firing_is_dead(row, now, self.process):
                continue
            done = self.store.interrupt_firing(
                row.id, row.heartbeat_at,
                error=f"the scheduler running it ({row.host}:{row.pid}) stopped or lost its "
                      "lease without finishing it")
            if done is None:
                continue
            gone.append(row.id)
            log.warning("firing %s of schedule %s was interrupted (its scheduler is gone)",
                        row.id, row.schedule_id)
            owner_store = self._store_for(row.owner)
            owner_store.sweep_interrupted()
            schedule = self.store.schedule_any_owner(row.schedule_id)
            if schedule is not None:
                self._notify("failure", ScheduleSnapshot.from_row(schedule), done)
        return gone

    def _free_for(self, owner: str) -> bool:
        """Whether a worker is free for a firing of ``owner``."""
        with self._lock:
            active = list(self._active.values())
        return (len(active) < self.workers
                and sum(a.schedule.owner == owner for a in active) < self.owner_workers)

    def _handle(self, row: Any, now: datetime) -> list[int]:
        token = self.store.acquire_lease(row.id, self.id, self.lease)
        if token is None:
            return []
        started: list[int] = []
        if not row.paused and row.next_fire_at is not None and row.next_fire_at <= now:
            with self._lock:
                running_here = any(a.schedule.id == row.id for a in self._active.values())
            # a slot while its schedule runs is recorded skipped whatever the capacity; else it
            # waits for a free worker (and, if that takes past the grace, counts as missed)
            if running_here or self._free_for(row.owner):
                firing = self._claim_slot(row, token, now)
                if firing is not None:
                    started.append(firing)
        for pending in self.store.pending_firings(row.id):
            if not self._free_for(row.owner):
                break
            claimed = self.store.claim_pending(pending.id, holder=self.id,
                                               process=self.process.columns(),
                                               stale_after=self.lease.total_seconds())
            if claimed is None:
                break  # another firing of the schedule runs: the rest wait their turn
            self._submit(claimed, row)
            started.append(claimed.id)
        return started

    def plan(self, row: Any, now: datetime) -> _Plan:
        """What to do about a schedule whose next slot is due (see the module docstring)."""
        cron = cron_schedule(row.cron, row.timezone)
        first: datetime = row.next_fire_at
        if row.last_slot_at is not None and first <= row.last_slot_at:
            # moved back to a slot that was claimed already (a stale write): never again
            first = cron.next_after(row.last_slot_at)
            if first > now:
                return _Plan(None, "cron", "advance", 0, first)
        cutoff = now - self.grace
        if first >= cutoff:
            return _Plan(first, "cron", "running", 0, cron.next_after(first))
        last_missed = max(cron.last_at_or_before(cutoff) or first, first)
        missed = max(1, cron.count(first, last_missed))
        on_time = cron.next_after(last_missed)
        if on_time <= now:
            return _Plan(on_time, "cron", "running", missed, cron.next_after(on_time))
        if row.missed == "latest":
            return _Plan(last_missed, "catch_up", "running", missed - 1, on_time)
        return _Plan(last_missed, "cron", "missed", missed, on_time,
                     error=f"{missed} slot(s) missed while no scheduler was running, the "
                           "newest at this firing's slot; skipped (missed policy 'skip')")

    def _claim_slot(self, row: Any, token: int, now: datetime) -> int | None:
        try:
            plan = self.plan(row, now)
        except InvalidSpecError as exc:  # e.g. its timezone left the tz database
            log.error("schedule %s (%s) cannot fire: %s", row.id, row.name, exc)
            self.store.set_next_fire(row.id, holder=self.id, token=token,
                                     seen_next=row.next_fire_at, new_next=None,
                                     error=f"stopped firing: {exc}")
            return None
        if plan.slot is None:
            self.store.set_next_fire(row.id, holder=self.id, token=token,
                                     seen_next=row.next_fire_at, new_next=plan.next_at)
            return None
        firing = self.store.claim_slot(
            row.id, holder=self.id, token=token, seen_next=row.next_fire_at,
            new_next=plan.next_at, slot_at=plan.slot, kind=plan.kind, status=plan.status,
            missed_slots=plan.missed, parameters=dict(row.parameters or {}),
            process=self.process.columns(), stale_after=self.lease.total_seconds(),
            error=plan.error)
        if firing is None:
            return None
        if firing.status == "missed":
            log.info("schedule %s (%s): slot %s not fired: %s", row.id, row.name,
                     firing.slot_at, firing.error)
            self._notify("missed", ScheduleSnapshot.from_row(row), firing)
            return None
        self._submit(firing, row)
        return firing.id

    # -- firing ---------------------------------------------------------------------------------

    def _submit(self, firing: Any, row: Any) -> None:
        active = _Active(firing.id, ScheduleSnapshot.from_row(row))
        with self._lock:
            self._active[firing.id] = active
        try:
            self._pool.submit(self._execute, active, dict(firing.parameters or {}))
        except RuntimeError:  # the pool is shutting down
            with self._lock:
                self._active.pop(firing.id, None)
            self.store.update_firing(firing.id, self.id, status="interrupted", finish=True,
                                     requeue=True,
                                     error="the scheduler stopped before the firing started")

    def _timeout(self, snap: ScheduleSnapshot) -> float | None:
        return snap.timeout if snap.timeout else self.default_timeout

    def _execute(self, active: _Active, parameters: dict[str, Any]) -> None:
        snap = active.schedule
        access = None
        try:
            if not self.store.update_firing(active.firing_id, self.id, start=True):
                log.warning("firing %s of schedule %s: lost before it started", active.firing_id,
                            snap.id)
                return
            store = self._store_for(snap.owner)
            config = self._config_for(snap.owner)
            timeout = self._timeout(snap)

            def on_run(run_id: str) -> None:
                active.run_id = run_id
                self.store.update_firing(active.firing_id, self.id, run_id=run_id)

            try:
                # the notebook inside its owner's home, or the reason it is refused
                notebook = str(self.guard.notebook(snap.owner, snap.notebook_path))
            except InvalidSpecError as exc:
                log.warning("firing %s of schedule %s refused: %s", active.firing_id, snap.id,
                            exc)
                self._complete(active, FiringResult("failed", error=str(exc)), config, store)
                return
            try:
                access = self.kernel_access.open(config, snap.owner,
                                                 (timeout or 86400.0) + 600.0)
                ctx = FiringContext(
                    firing_id=active.firing_id,
                    schedule=dataclasses.replace(snap, notebook_path=notebook),
                    parameters=parameters, config=config, store=store,
                    artifacts=self.kernel_access.owner_artifacts(config, snap.owner,
                                                                 self.artifacts),
                    on_run=on_run, stop=active.stop, cluster=self._shared_cluster,
                    access=access, env_names=self.env_names, timeout=timeout,
                    kernels=self.guard.kernels)
                result = self.runner.run(ctx)
            except Exception as exc:  # noqa: BLE001 - a runner's fault fails this firing only
                log.exception("firing %s of schedule %s crashed", active.firing_id, snap.id)
                result = FiringResult("failed", run_id=active.run_id,
                                      error=f"{type(exc).__name__}: {exc}")
            self._complete(active, result, config, store)
        except Exception:  # noqa: BLE001 - recording failed (database gone): the sweep will see
            log.exception("firing %s of schedule %s: recording its outcome failed",
                          active.firing_id, snap.id)
        except BaseException as exc:  # Ctrl-C in a foreground run-now: record it, then go on
            try:
                self.store.update_firing(active.firing_id, self.id, status="interrupted",
                                         run_id=active.run_id, finish=True,
                                         error=f"interrupted ({type(exc).__name__})")
            finally:
                raise
        finally:
            if access is not None:
                access.close()
            with self._lock:
                self._active.pop(active.firing_id, None)

    def _complete(self, active: _Active, result: FiringResult, config: MLPlat,
                  store: Any) -> None:
        from .actions import DeployFence, deploy_if_blessed

        snap = active.schedule
        status, error, outcome = result.status, result.error, None
        if status != "succeeded" and active.stop.is_set():
            status = "interrupted"  # told to stop: the scheduler stopped or lost the schedule
        deploy = (snap.on_success or {}).get("deploy_if_blessed")
        if status == "succeeded" and deploy and result.run_id:
            outcome = deploy_if_blessed(
                DeployIfBlessed.model_validate(deploy), run_id=result.run_id, config=config,
                store=store, artifacts=self.kernel_access.owner_artifacts(
                    config, snap.owner, self.artifacts),
                fence=DeployFence(firing_id=active.firing_id, holder=self.id))
            if outcome.status in ("failed", "not_committed"):
                status, error = "failed", f"deploy_if_blessed: {outcome.detail}"
        committed = self.store.update_firing(
            active.firing_id, self.id, status=status, run_id=result.run_id,
            executed_notebook=result.executed_notebook, error=error,
            actions=outcome.model_dump(mode="json") if outcome is not None else {},
            finish=True)
        if not committed:
            log.warning("firing %s of schedule %s: another scheduler took the schedule over; "
                        "this outcome (%s) was not recorded", active.firing_id, snap.id, status)
            return
        log.info("firing %s of schedule %s (%s): %s%s", active.firing_id, snap.id, snap.name,
                 status, f" ({outcome.status})" if outcome is not None else "")
        row = self.store.firing_row_any_owner(active.firing_id)
        if row is not None:
            self._notify("success" if status == "succeeded" else "failure", snap, row)

    def _notify(self, event: str, snap: ScheduleSnapshot, firing_row: Any) -> None:
        """Queue the schedule's notifications about ``firing_row``; never raises."""
        from .describe import describe_firing

        try:
            spec = ScheduleNotify.model_validate(snap.notify or {})
            if event not in spec.on or not (spec.webhook or spec.email):
                return
            owner_store = self._store_for(snap.owner)
            run_status = None
            if firing_row.run_id:
                run_status = owner_store.run_statuses([firing_row.run_id]).get(firing_row.run_id)
            firing: DescribeFiring = describe_firing(firing_row, snap.timezone, run_status)
            firing_id = firing_row.id

            def record(outcome: Any) -> None:
                try:
                    self.store.add_notification(firing_id, outcome.model_dump(mode="json"))
                except Exception:  # noqa: BLE001 - the store closed meanwhile
                    log.debug("could not record a notification of firing %s", firing_id)

            self.notifier.send(event, spec, snap.summary(), firing, on_done=record)
        except Exception:  # noqa: BLE001 - a notification never stops the loop
            log.exception("notifying about firing %s failed", getattr(firing_row, "id", "?"))

    # -- run now (foreground) -------------------------------------------------------------------

    def run_pending(self, firing_id: int, wait_for_other: float = 3600.0) -> DescribeFiring:
        """Run a pending (manual) firing here and now, or wait while another scheduler runs it
        or while another firing of its schedule runs; return the finished firing.

        No lease on the schedule is taken: the firing is claimed and fenced on its own row, so
        scheduler loops keep firing the schedule's cron slots meanwhile.
        """
        from .describe import describe_firing

        self.start_beat()
        waited = 0.0
        while True:
            row = self.store.firing_row(firing_id)
            schedule = self.store.schedule_any_owner(row.schedule_id)
            if schedule is None:
                raise NotFoundError(f"no schedule for firing {firing_id}")
            if row.status not in ("pending", "running"):
                run_status = (self.store.run_statuses([row.run_id]).get(row.run_id)
                              if row.run_id else None)
                return describe_firing(row, schedule.timezone, run_status)
            if row.status == "pending" and not self._stop.is_set():
                claimed = self.store.claim_pending(firing_id, holder=self.id,
                                                   process=self.process.columns(),
                                                   stale_after=self.lease.total_seconds())
                if claimed is not None:
                    active = _Active(claimed.id, ScheduleSnapshot.from_row(schedule))
                    with self._lock:
                        self._active[claimed.id] = active
                    self._execute(active, dict(claimed.parameters or {}))
                    continue
            if self._stop.is_set() and row.status == "pending":
                raise InvalidSpecError(f"stopped before firing {firing_id} started; it stays "
                                       "queued for a running scheduler")
            if waited >= wait_for_other:
                raise InvalidSpecError(f"firing {firing_id} is still {row.status} after "
                                       f"{wait_for_other:g}s (another firing of its schedule, "
                                       "or another scheduler, holds it)")
            self._stop.wait(0.5)
            waited += 0.5

    # -- owners' stores and the shared cluster --------------------------------------------------

    def _store_for(self, owner: str) -> Any:
        from ..store.sql import Store

        with self._lock:
            store = self._stores.get(owner)
            if store is None:
                store = self._stores[owner] = Store(self.config.store_url, owner)
            return store

    def _config_for(self, owner: str) -> MLPlat:
        with self._lock:
            config = self._configs.get(owner)
            if config is None:
                config = self._configs[owner] = self.kernel_access.owner_config(self.config,
                                                                                owner)
            return config

    def _shared_cluster(self) -> Any:
        """One Dask cluster for every pipeline firing of this loop, started on first use."""
        from ..pipeline.dask import DaskCluster

        with self._lock:
            if self._cluster is None:
                c = self.config
                self._cluster = DaskCluster(c.dask_address, c.dask_workers, c.warm_kernels,
                                            c.dask_processes, c.fork_kernels)
            return self._cluster
