"""BackgroundRuns: pipeline runs in threads of a long-lived process, on one shared cluster.

The executor is synchronous and waits for a run to end; a server cannot. ``start``, ``resume``
and ``rerun`` return as soon as the run exists in the store (bad input is raised before that),
and the run goes on in its own thread. Progress is in the store, as for any run, and each
change is announced to ``on_change(run_id)`` (the server pushes it to its clients). The cluster
is started on the first step that needs it and shared by every run; ``close`` refuses new runs,
cancels what is still running and stops the cluster (which then refuses to start again), so no
run is left ``running`` and no cluster is left behind the process. A run whose executor fails
outside its steps is recorded ``failed``, its unfinished steps with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..config import MLPlat
from ..errors import ConflictError, InvalidSpecError
from ..schemas import CreateRun, DescribeRun, RerunStep
from .executor import (
    DONE,
    PipelineExecutor,
    RunOutcome,
    RunReporter,
    StepState,
    fail_run,
    refuse_notebook_run,
    run_parameters,
)
from .runs import RunService
from .spec import PipelineSpec

log = logging.getLogger(__name__)

#: Longest wait for a run to be created (parsing and checking come first).
START_TIMEOUT = 120.0


class _Announcer(RunReporter):
    """Hands the new run's id to the caller, then reports every change of it."""

    def __init__(self, created: Future[str], on_change: Callable[[str], None] | None) -> None:
        self.created = created
        self.on_change = on_change
        self.run_id: str | None = None

    def _announce(self) -> None:
        if self.on_change is not None and self.run_id is not None:
            try:
                self.on_change(self.run_id)
            except Exception:  # noqa: BLE001 - a listener never stops a run
                log.exception("run change listener failed")

    def on_run_start(self, run_id: str, spec: PipelineSpec, steps: dict[str, StepState]) -> None:
        self.run_id = run_id
        if not self.created.done():
            self.created.set_result(run_id)
        self._announce()

    def on_step_update(self, state: StepState) -> None:
        self._announce()

    def on_run_complete(self, outcome: RunOutcome) -> None:
        self._announce()


class _SharedCluster:
    """The one cluster of the process, started once even when runs start together, and never
    again once closed (a late run would otherwise build a cluster nobody stops)."""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self._lock = threading.Lock()
        self.closed = False

    def start(self) -> Any:
        with self._lock:
            self._check()
            return self._cluster.start()

    def close(self, wait: float = 10.0) -> None:
        with self._lock:  # a start in progress finishes first, then its cluster is closed
            self.closed = True
        self._cluster.close(wait)

    def _check(self) -> None:
        if self.closed:
            raise ConflictError("the server is shutting down; its cluster is closed")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._check()
        return getattr(self._cluster, name)


class _RerunExecutor(PipelineExecutor):
    """Re-runs steps of an earlier run: the models' validation policies stay as they are now
    (an old notebook's policies are not brought back), and the steps not selected give the
    outputs they had in that run, not those of the latest run of the pipeline."""

    def __init__(self, *args: Any, source_run: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_run = source_run

    def _apply_policies(self, spec: PipelineSpec) -> None:
        return

    def _outputs_of_unselected(self, spec: PipelineSpec, pipeline_id: int,
                               selected: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
        needed: dict[str, set[str]] = {}
        for name in selected:
            for var, producer in spec.step(name).inputs.items():
                if producer not in selected:
                    needed.setdefault(producer, set()).add(var)
        rows = {row.step_name: row for row in self.store.step_runs(self.source_run)}
        found, missing = {}, []
        for producer, names in needed.items():
            row = rows.get(producer)
            outputs = (self.store.step_io(row.id, "out")
                       if row is not None and row.status in DONE else {})
            lacking = sorted(n for n in names if n not in outputs)
            if row is None or lacking:
                status = row.status if row is not None else "absent"
                missing.append(f"{producer} ({status}; needs {', '.join(sorted(names))})")
                continue
            found[producer] = (row, {n: outputs[n] for n in names})
        if missing:
            raise InvalidSpecError(
                f"run {self.source_run} has no outputs of {'; '.join(missing)}, which the "
                "selected steps read; re-run from an earlier step, or resume that run first")
        return found


class BackgroundRuns:
    """Starts, resumes and re-runs pipelines in threads; one shared cluster; one owner.

    Parameters
    ----------
    config : MLPlat
        Settings (cluster address and size, store, artifacts, owner).
    store, artifacts
        The owner's ``Store`` and ``ArtifactStore``, shared by every run.
    on_change : callable, optional
        Called with a run id from the run's thread whenever the run or one of its steps changes
        state; it must not block.
    cluster : optional
        A ready-made cluster (default: a ``DaskCluster`` from ``config`` on first need).
    """

    def __init__(self, config: MLPlat, *, store: Any, artifacts: Any,
                 on_change: Callable[[str], None] | None = None, cluster: Any = None) -> None:
        self.config = config
        self.store = store
        self.artifacts = artifacts
        self.on_change = on_change
        self.runs = RunService(config, store=store, artifacts=artifacts)
        self._cluster: _SharedCluster | None = _SharedCluster(cluster) if cluster else None
        self._owns_cluster = cluster is None
        self._lock = threading.Lock()
        self._active: dict[threading.Thread, PipelineExecutor] = {}
        self._closed = False

    # -- commands ------------------------------------------------------------------------------

    def start(self, request: CreateRun, notebook: str) -> DescribeRun:
        """Start a run of ``notebook`` (a checked, absolute path) as ``request`` asks.

        Returns as soon as the run exists (status ``running``); raises what the executor raises
        before that: ``NotFoundError`` (no notebook), ``InvalidSpecError`` (bad marks,
        parameters, selection or forced steps).
        """
        if request.dask_address:
            raise InvalidSpecError("runs started here use this server's cluster; set "
                                   "c.MLPlat.dask_address (MLPLAT_DASK_ADDRESS) to use another "
                                   "one instead of giving dask_address per run")
        sel = request.selection
        return self._launch(lambda ex: ex.run(
            notebook, request.parameters, only=sel.only, from_step=sel.from_step, to=sel.to,
            force=request.force))

    def resume(self, run_ref: str) -> DescribeRun:
        """Re-run the steps of a failed, cancelled or interrupted run that did not succeed."""
        run_id = self.store.resolve_run_id(run_ref)
        return self._launch(lambda ex: ex.resume(run_id))

    def rerun(self, run_ref: str, request: RerunStep) -> DescribeRun:
        """A new run of an earlier run's pipeline as it ran then (its code and parameters),
        executing ``request.step`` alone (``only``) or with its descendants (``from``); the
        selected steps ignore the cache unless ``request.force`` is off. Steps not selected
        give the outputs they had in that run; the models' validation policies stay the
        current ones."""
        run_id = self.store.resolve_run_id(run_ref)
        run = self.store.run_row(run_id)
        refuse_notebook_run(run, "re-run")
        spec = PipelineSpec.from_dict(self.store.pipeline_spec(run.pipeline_version))
        if request.step not in spec.step_names:
            raise InvalidSpecError(f"run {run_id} has no step {request.step!r}; its steps: "
                                   f"{', '.join(spec.step_names)}")
        selected = (spec.downstream(request.step) if request.mode == "from"
                    else [request.step])
        params = run_parameters(run)
        only = request.step if request.mode == "only" else None
        from_step = request.step if request.mode == "from" else None
        force = selected if request.force else []
        return self._launch(lambda ex: ex.run(spec.path, params, only=only, from_step=from_step,
                                              force=force, spec=spec),
                            source_run=run_id)

    def cancel(self, run_ref: str, wait: float = 30.0) -> DescribeRun:
        """Ask the run to stop (its kernels are interrupted); wait up to ``wait`` seconds for it
        to end. Raises ``ConflictError`` when it had already finished."""
        return self.runs.cancel(run_ref, wait=wait)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Runs going on in this process."""
        with self._lock:
            return len(self._active)

    def close(self, wait: float = 30.0) -> None:
        """Refuse new runs, cancel the runs still going on, wait for them to record it, stop
        the cluster."""
        with self._lock:
            self._closed = True
        while True:
            with self._lock:
                active = {t: e for t, e in self._active.items() if t.is_alive()}
            if not active:
                break
            for executor in active.values():
                executor.interrupted.set()
            for thread in active:
                thread.join(wait)
            if any(thread.is_alive() for thread in active):
                log.warning("%d run(s) did not stop within %.0fs", len(active), wait)
                break
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None and self._owns_cluster:
            cluster.close()

    # -- internals -----------------------------------------------------------------------------

    def _shared_cluster(self) -> _SharedCluster:
        """The cluster (made, not started, on first need); call with ``self._lock`` held."""
        if self._cluster is None:
            from .dask import DaskCluster

            c = self.config
            self._cluster = _SharedCluster(DaskCluster(
                c.dask_address, c.dask_workers, c.warm_kernels, c.dask_processes,
                c.fork_kernels))
        return self._cluster

    def _launch(self, body: Callable[[PipelineExecutor], RunOutcome], *,
                source_run: str | None = None) -> DescribeRun:
        created: Future[str] = Future()
        reporter = _Announcer(created, self.on_change)

        def target() -> None:
            try:
                body(executor)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller or the log
                if not created.done():
                    created.set_exception(exc)
                    return
                log.exception("run %s stopped with an error", reporter.run_id)
                self._fail(reporter.run_id, exc)
            finally:
                with self._lock:
                    self._active.pop(threading.current_thread(), None)
                reporter._announce()

        # Checked, registered and started under one lock: close() either refuses this run or
        # sees it (and cancels it) before it stops the cluster.
        with self._lock:
            if self._closed:
                raise ConflictError("the server is shutting down; no new runs")
            kwargs = {"store": self.store, "artifacts": self.artifacts,
                      "cluster": self._shared_cluster(), "reporter": reporter}
            executor = (_RerunExecutor(self.config, source_run=source_run, **kwargs)
                        if source_run is not None else PipelineExecutor(self.config, **kwargs))
            thread = threading.Thread(target=target, name="mlplat-run", daemon=True)
            self._active[thread] = executor
            thread.start()
        run_id = created.result(timeout=START_TIMEOUT)
        return self.runs.describe(run_id)

    def _fail(self, run_id: str | None, exc: BaseException) -> None:
        """A run whose executor raised after it started must not stay ``running``, nor its
        steps."""
        if run_id is None:
            return
        try:
            fail_run(self.store, run_id, f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the store itself is failing: the sweep will see it
            log.exception("could not record the failure of run %s", run_id)
