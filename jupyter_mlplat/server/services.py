"""MLPlatServices: everything the REST handlers call, built once per server.

``MLPlatApp.initialize_settings`` creates it; the store, the cluster and the serve process are
opened on first use, off the event loop (opening the store may run migrations). Every method a
handler calls blocks: handlers run them with ``asyncio.to_thread``. Paths from requests are
resolved inside the server root here, before the library sees them. With ``run_scheduler`` on,
the scheduler loop for the owner's schedules starts with the extension (on a thread: its start
opens the store) and stops with it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..config import MLPlat
from ..errors import InvalidSpecError, NotFoundError
from ..schemas import (
    CreateRun,
    CreateSchedule,
    DescribeFiring,
    DescribePipeline,
    DescribeRun,
    DescribeSchedule,
    RerunStep,
    UpdateSchedule,
)
from .events import EventHub
from .paths import is_in_root, resolve_in_root

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Threads for blocking service calls; some wait (a cancel until the run stops, "try it" until
#: a fresh deploy is served), so more than asyncio's default pool of cores + 4.
CALL_THREADS = 32
#: The newest runs events always look at (active runs are looked at whatever their age).
WATCHED_NEWEST = 25


class MLPlatServices:
    """The owner's services for one Jupyter server.

    Parameters
    ----------
    config : MLPlat
        The platform settings (owner, store, artifacts, cluster, serving).
    root_dir : path
        The Jupyter server's root: notebooks named in requests must lie inside it.
    """

    def __init__(self, config: MLPlat, root_dir: str | os.PathLike[str]) -> None:
        self.config = config
        self.root_dir = str(root_dir)
        self.events = EventHub(self._watched_runs, self._endpoint_signatures,
                               self._describe_endpoint, schedules=self._watched_schedules,
                               interval=config.events_interval)
        self._pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="mlplat-call")
        self._open_lock = threading.Lock()
        self._closed = False
        self._ready = asyncio.Lock()
        self.store: Any = None
        self.artifacts: Any = None
        self.runs: Any = None  # pipeline.runs.RunService
        self.background: Any = None  # pipeline.background.BackgroundRuns
        self.models: Any = None  # tracking.service.ModelService
        self.sharing: Any = None  # tracking.sharing.SharingService
        self.endpoints: Any = None  # server.serving.EndpointManager
        self.schedules: Any = None  # scheduler.service.ScheduleService
        self.scheduler: Any = None  # scheduler.embedded.SchedulerHandle, once started
        self._scheduler_start: Future[None] | None = None

    # -- opening and closing -------------------------------------------------------------------

    @property
    def opened(self) -> bool:
        return self.store is not None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in one of the services' threads, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def ready(self) -> MLPlatServices:
        """Open the services (in a thread, once); return them."""
        if not self.opened:
            async with self._ready:
                if not self.opened:
                    await self.call(self._open)
        return self

    def _open(self) -> None:
        with self._open_lock:
            if self.store is not None:
                return
            from ..pipeline.background import BackgroundRuns
            from ..pipeline.runs import RunService
            from ..scheduler.service import ScheduleService
            from ..store import open_artifacts, open_store
            from ..tracking.service import ModelService
            from ..tracking.sharing import SharingService
            from .serving import EndpointManager

            store = open_store(self.config)
            artifacts = open_artifacts(self.config.artifacts_url)
            self.artifacts = artifacts
            self.runs = RunService(self.config, store=store, artifacts=artifacts)
            self.models = ModelService(self.config, store=store, artifacts=artifacts)
            self.sharing = SharingService(self.config, store=store, artifacts=artifacts)
            self.endpoints = EndpointManager(self.config, store=store, artifacts=artifacts,
                                             autostart=self.config.serve_on_demand)
            self.background = BackgroundRuns(self.config, store=store, artifacts=artifacts,
                                             on_change=self.events.poke)
            self.schedules = ScheduleService(self.config, store=store, root=self.root_dir)
            self.store = store  # last: `opened` means everything above exists

    def start_scheduler(self) -> None:
        """Start the scheduler loop for the owner's schedules on a thread; returns at once.

        A loop that cannot start (a store that is down) is logged; the server goes on without
        it, and schedules fire from any ``jupyter mlplat scheduler`` on the same store.
        """
        if self._closed or self._scheduler_start is not None:
            return
        self._scheduler_start = self._pool.submit(self._start_scheduler)

    def _start_scheduler(self) -> None:
        from ..scheduler.embedded import start_scheduler

        try:
            self.scheduler = start_scheduler(self.config)
        except Exception:  # noqa: BLE001 - the server runs on without its scheduler
            log.exception("the scheduler loop could not start; schedules fire only where "
                          "`jupyter mlplat scheduler` runs")

    async def close(self) -> None:
        """Stop pushing events and the scheduler loop (a firing still running gets a few
        seconds, then is recorded ``interrupted``), cancel runs still going on, stop the cluster
        and the serve process, close the store."""
        if self._closed:
            return
        self._closed = True
        await self.events.close()
        if self._scheduler_start is not None:
            await asyncio.wrap_future(self._scheduler_start)
            if self.scheduler is not None:
                try:
                    await self.scheduler.aclose()
                except Exception:  # noqa: BLE001 - the rest must still close
                    log.exception("stopping the scheduler loop failed")
        if self.opened:
            await self.call(self.background.close)
            await self.call(self.endpoints.close)
            self.store.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the calls handlers make that need more than one library object --------------------

    def describe_pipeline(self, notebook: str) -> DescribePipeline:
        """The pipeline of ``notebook`` (relative to the server root) with its cached steps."""
        from ..pipeline.describe import describe_pipeline

        path = resolve_in_root(self.root_dir, notebook)
        return describe_pipeline(path, config=self.config, store=self.store,
                                 artifacts=self.artifacts, display_path=notebook)

    def start_run(self, request: CreateRun) -> DescribeRun:
        """Start a run of ``request.notebook`` (relative to the server root) in the background."""
        path = resolve_in_root(self.root_dir, request.notebook)
        return self.background.start(request, str(path))

    def resume_run(self, run_ref: str) -> DescribeRun:
        """Resume a run in the background; its notebook must lie inside the server root."""
        self._check_run_in_root(run_ref)
        return self.background.resume(run_ref)

    def rerun_step(self, run_ref: str, request: RerunStep) -> DescribeRun:
        """Re-run a step of a run in the background; its notebook must lie inside the root."""
        self._check_run_in_root(run_ref)
        return self.background.rerun(run_ref, request)

    def create_schedule(self, request: CreateSchedule) -> DescribeSchedule:
        """Make a schedule of ``request.notebook`` (relative to the server root)."""
        resolve_in_root(self.root_dir, request.notebook)  # '..', absolute, symlinks out: 400
        return self._schedules_changed(self.schedules.create(request))

    def update_schedule(self, ref: str, request: UpdateSchedule) -> DescribeSchedule:
        """Change a schedule; a new notebook path must lie inside the server root."""
        if request.notebook is not None:
            resolve_in_root(self.root_dir, request.notebook)
        return self._schedules_changed(self.schedules.update(ref, request))

    def pause_schedule(self, ref: str) -> DescribeSchedule:
        return self._schedules_changed(self.schedules.pause(ref))

    def resume_schedule(self, ref: str) -> DescribeSchedule:
        return self._schedules_changed(self.schedules.resume(ref))

    def delete_schedule(self, ref: str) -> DescribeSchedule:
        return self._schedules_changed(self.schedules.delete(ref))

    def run_schedule(self, ref: str) -> DescribeFiring:
        """Queue a firing now; the server's scheduler loop (when it runs one) picks it up at
        once, another scheduler at its next poll."""
        firing = self._schedules_changed(self.schedules.run_now(ref))
        if self.scheduler is not None:
            self.scheduler.wake()
        return firing

    def _schedules_changed(self, result: T) -> T:
        """Tell event listeners at once instead of at the next tick."""
        self.events.poke()
        return result

    def _check_run_in_root(self, run_ref: str) -> None:
        """Kernels of a run work in its notebook's folder: a run of a notebook outside the
        server root (started from the CLI elsewhere) is not run again from here."""
        run = self.store.run_row(self.store.resolve_run_id(run_ref))
        if not is_in_root(self.root_dir, run.notebook_path):
            raise InvalidSpecError(
                f"run {run.id} ran {run.notebook_path}, which lies outside this server's root; "
                f"run it again from where it was started (`jupyter mlplat resume {run.id}` or "
                "`jupyter mlplat run`)")

    # -- what the event hub watches ------------------------------------------------------------

    def _watched_runs(self, ids: set[str]) -> list[Any]:
        """The newest runs, every active one, and those of ``ids`` (that are the owner's)."""
        self.store.sweep_interrupted()  # a run whose process died shows as interrupted
        found = {run.id: run for run in self.runs.list(limit=WATCHED_NEWEST)}
        for status in ("pending", "running"):
            for run in self.runs.list(limit=10_000, status=status):
                found.setdefault(run.id, run)
        for run_id in ids - set(found):
            try:
                found[run_id] = _light(self.runs.describe(run_id))
            except NotFoundError:  # not this owner's, or deleted
                continue
        return list(found.values())

    def _watched_schedules(self) -> list[Any]:
        """The owner's live schedules, each with its last firing (``DescribeSchedule``)."""
        return self.schedules.list().schedules

    def _endpoint_signatures(self) -> dict[str, Any]:
        return self.endpoints.signatures()

    def _describe_endpoint(self, name: str) -> Any:
        return self.endpoints.describe(name)


def _light(run: DescribeRun) -> DescribeRun:
    """A run as the list shows it (no artifacts, slices or models): what events carry."""
    return run.model_copy(update={
        "slices": [], "models": [],
        "steps": [s.model_copy(update={"outputs": [], "inputs": []}) for s in run.steps]})
