"""Running what a firing fires: a notebook as one papermill job, or a pipeline.

``BaseFiringRunner.run(ctx)`` is the contract the loop calls, on a worker thread, once per
claimed firing; it returns a :class:`FiringResult` and does not raise for a target that fails.
:class:`DefaultFiringRunner` runs both kinds of target and records a run owned by the schedule's
owner either way:

- *notebook*: a run with one step, ``notebook``, executed by papermill on a fresh kernel in the
  notebook's folder, the schedule's parameters injected papermill-style after the
  ``parameters`` cell (a str stays a str, an int an int, a list a list, a tuple a tuple). A
  first injected cell sets the tracking context, so ``mlp.log_*`` calls land on this run as
  they do in a pipeline step; models it logged are judged when it ends. The executed notebook
  (failed ones too) and its output log go to the artifact store.
- *pipeline*: ``PipelineExecutor.run`` on the loop's cluster, as ``jupyter mlplat run`` would.

Either way the kernels never start from the scheduler's own environment: see
:mod:`.isolation` (``ctx.access`` carries what they get). A firing that runs past its timeout
(the schedule's, else ``scheduler_timeout``) is stopped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import MLPlat
from ..errors import InvalidSpecError
from .isolation import DirectKernelAccess, FiringAccess, blanked_environ, kernel_environ

log = logging.getLogger(__name__)

INJECTED_TAG = "mlplat-injected"


@dataclass(frozen=True)
class ScheduleSnapshot:
    """A schedule as it was when its firing was claimed."""

    id: str
    owner: str
    name: str
    target: str
    notebook_path: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    on_success: dict[str, Any]
    notify: dict[str, Any]
    kernel_name: str | None = None
    timeout: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> ScheduleSnapshot:
        return cls(id=row.id, owner=row.owner, name=row.name, target=row.target,
                   notebook_path=row.notebook_path, cron=row.cron, timezone=row.timezone,
                   parameters=dict(row.parameters or {}), on_success=dict(row.on_success or {}),
                   notify=dict(row.notify or {}), kernel_name=row.kernel_name,
                   timeout=row.timeout)

    def summary(self) -> dict[str, Any]:
        """What notifications say about the schedule."""
        return {"id": self.id, "name": self.name, "owner": self.owner,
                "notebook": self.notebook_path, "target": self.target, "cron": self.cron,
                "timezone": self.timezone}


@dataclass
class FiringContext:
    """Everything a runner needs for one firing; built by the loop.

    ``store``/``artifacts``/``config`` are the schedule owner's: what the firing writes is
    theirs. ``on_run`` is called with the run id as soon as the run exists. ``stop`` is set when
    the firing should end early (the scheduler stops, or lost its lease on the schedule).
    """

    firing_id: int
    schedule: ScheduleSnapshot
    parameters: dict[str, Any]
    config: MLPlat
    store: Any
    artifacts: Any
    on_run: Callable[[str], None] = lambda run_id: None
    stop: threading.Event = field(default_factory=threading.Event)
    cluster: Callable[[], Any] | None = None  # the loop's shared Dask cluster, started lazily
    #: what the kernels get (owner-scoped store, identity); None: the config's own URLs
    access: FiringAccess | None = None
    #: variables of the scheduler's environment passed on beyond ``isolation.BASE_ENV``
    env_names: tuple[str, ...] = ()
    #: seconds the target may run (None: no limit)
    timeout: float | None = None
    #: kernels the target may use, checked before it starts (None: any installed one)
    kernels: frozenset[str] | None = None

    def kernel_access(self) -> FiringAccess:
        if self.access is None:
            self.access = DirectKernelAccess().open(self.config, self.schedule.owner,
                                                    self.timeout or 0)
        return self.access


@dataclass
class FiringResult:
    """What became of a firing's target."""

    status: str  # succeeded | failed | cancelled
    run_id: str | None = None
    executed_notebook: str | None = None
    error: str | None = None


class BaseFiringRunner:
    """Runs a firing's target. Subclasses override :meth:`run`; it is called on a worker thread
    of the loop, must return a :class:`FiringResult`, and should end soon after ``ctx.stop``
    is set."""

    def run(self, ctx: FiringContext) -> FiringResult:
        raise NotImplementedError


class DefaultFiringRunner(BaseFiringRunner):
    """Notebook targets through papermill, pipeline targets through the ``PipelineExecutor``."""

    #: seconds between the run's heartbeats and cancel checks
    beat_every = 2.0

    def run(self, ctx: FiringContext) -> FiringResult:
        if ctx.schedule.target == "pipeline":
            return self.run_pipeline(ctx)
        return self.run_notebook(ctx)

    # -- pipeline ---------------------------------------------------------------------------

    def run_pipeline(self, ctx: FiringContext) -> FiringResult:
        from ..pipeline.executor import PipelineExecutor, RunReporter
        from .targets import firing_parameters, target_spec

        class Reporter(RunReporter):
            def on_run_start(self, run_id: str, spec: Any, steps: Any) -> None:
                ctx.on_run(run_id)

        access = ctx.kernel_access()
        hidden = blanked_environ(ctx.env_names)

        class OwnerExecutor(PipelineExecutor):
            """Step kernels see the owner's store and identity, and none of the scheduler's
            own variables (the pool starts kernels from the process environment plus these)."""

            def _step_env(self, step: Any, gpus: int) -> dict[str, str]:
                if ctx.kernels is not None:  # checked again where each step's kernel starts
                    from ..pipeline.versions import default_kernel_name

                    _allowed(ctx, step.kernel or default_kernel_name(ctx.config.kernel_name),
                             f"the kernel of step {step.name!r}")
                return {**hidden, **super()._step_env(step, gpus), **access.env}

        try:
            spec = target_spec(Path(ctx.schedule.notebook_path), "pipeline")
            parameters = firing_parameters(spec, ctx.parameters)
        except Exception as exc:  # noqa: BLE001 - the notebook changed or vanished since
            return FiringResult("failed", error=f"{type(exc).__name__}: {exc}")
        if ctx.kernels is not None:
            from ..pipeline.versions import default_kernel_name

            try:
                for step in spec.steps:
                    _allowed(ctx, step.kernel or default_kernel_name(ctx.config.kernel_name),
                             f"the kernel of step {step.name!r}" if step.kernel
                             else f"the default kernel, for step {step.name!r}")
            except InvalidSpecError as exc:
                return FiringResult("failed", error=str(exc))
        cluster = ctx.cluster() if ctx.cluster is not None else None
        executor = OwnerExecutor(ctx.config, store=ctx.store, artifacts=ctx.artifacts,
                                 cluster=cluster, reporter=Reporter())
        finished = threading.Event()
        timed_out = threading.Event()

        def watch() -> None:  # the executor cancels cleanly at its next poll
            deadline = time.monotonic() + ctx.timeout if ctx.timeout else None
            while not finished.wait(0.25):
                if deadline is not None and time.monotonic() > deadline:
                    timed_out.set()
                if ctx.stop.is_set() or timed_out.is_set():
                    executor.interrupted.set()
                    return

        threading.Thread(target=watch, daemon=True).start()
        try:
            # the spec checked above, not the file read again: the notebook may change since
            outcome = executor.run(ctx.schedule.notebook_path, parameters, spec=spec)
        except Exception as exc:  # noqa: BLE001 - a bad notebook fails this firing only
            return FiringResult("failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            finished.set()
            executor.close()
        steps = ctx.store.step_runs(outcome.run_id)
        failed = [s for s in steps if s.status == "failed"]
        shown = (failed or [s for s in steps if s.executed_notebook] or [None])[-1]
        status = outcome.status if outcome.status in ("succeeded", "cancelled") else "failed"
        error = None if status == "succeeded" else (outcome.error or f"the run {outcome.status}")
        if timed_out.is_set() and status != "succeeded":
            status = "failed"
            error = (f"the pipeline did not finish within its timeout of {ctx.timeout:g}s and "
                     "was stopped")
        return FiringResult(status, run_id=outcome.run_id, error=error,
                            executed_notebook=shown.executed_notebook if shown else None)

    # -- notebook ---------------------------------------------------------------------------

    def run_notebook(self, ctx: FiringContext) -> FiringResult:
        from .targets import check_parameters, firing_parameters, target_spec

        path = Path(ctx.schedule.notebook_path)
        try:
            spec = target_spec(path, "notebook")
            check_parameters(spec, ctx.parameters)
            values = firing_parameters(spec, ctx.parameters)
        except Exception as exc:  # noqa: BLE001 - the notebook changed or vanished since
            return FiringResult("failed", error=f"{type(exc).__name__}: {exc}")
        try:
            kernel = self._kernel(ctx, spec.kernel)
        except InvalidSpecError as exc:  # a kernel the scheduler does not run: nothing ran
            return FiringResult("failed", error=str(exc))
        store = ctx.store
        pipeline_id = store.pipeline_id(path.stem, str(path))
        run_id = store.create_run(
            pipeline_id=pipeline_id, pipeline_version="papermill", notebook_path=str(path),
            parameters=ctx.parameters,
            options={"target": "notebook", "schedule": ctx.schedule.id,
                     "firing": ctx.firing_id, "kernel": kernel},
            steps=["notebook"])
        ctx.on_run(run_id)
        step_run_id = store.step_runs(run_id)[0].id
        started = time.time()
        store.update_step_run(step_run_id, status="running", started_at=_now(),
                              worker=store.host)
        try:
            outcome = self._papermill(ctx, path, run_id, step_run_id, kernel, values)
        except BaseException as exc:
            outcome = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc),
                       "traceback": traceback.format_exc(), "records": []}
            if not isinstance(exc, Exception):
                self._record(ctx, run_id, step_run_id, path, started, outcome)
                raise
        return self._record(ctx, run_id, step_run_id, path, started, outcome)

    @staticmethod
    def _kernel(ctx: FiringContext, notebook_kernel: str | None) -> str:
        """The schedule's kernel, else the notebook's own when installed, else the default;
        an ``InvalidSpecError`` when ``ctx.kernels`` does not admit it."""
        from ..pipeline.versions import default_kernel_name

        if ctx.schedule.kernel_name:
            return _allowed(ctx, ctx.schedule.kernel_name, "the schedule's kernel")
        if notebook_kernel:
            # the notebook may have changed since the schedule was made: checked now
            _allowed(ctx, notebook_kernel, "named in the notebook's metadata")
            from jupyter_client.kernelspec import KernelSpecManager

            if notebook_kernel in KernelSpecManager().find_kernel_specs():
                return notebook_kernel
        return _allowed(ctx, default_kernel_name(ctx.config.kernel_name),
                        "the scheduler's default kernel")

    @staticmethod
    def kernel_environment(ctx: FiringContext) -> dict[str, str]:
        """The whole environment of the firing's kernel (see :mod:`.isolation`)."""
        return kernel_environ(ctx.kernel_access().env, ctx.env_names)

    def _papermill(self, ctx: FiringContext, path: Path, run_id: str, step_run_id: int,
                   kernel: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """Execute the notebook; the executed copy, its log and the tracking records."""
        from ..pipeline.step import import_papermill

        import_papermill()  # first: it keeps nbformat's import cheap
        import nbformat
        import papermill
        from papermill.engines import papermill_engines
        from papermill.exceptions import PapermillExecutionError

        from ..pipeline.kernels import WarmKernelEngine, interrupt, shutdown
        from ..tracking.records import read_file
        from .targets import injected_source

        if "mlplat" not in papermill_engines._engines:  # not installed as an entry point
            papermill_engines.register("mlplat", WarmKernelEngine)

        workdir = tempfile.mkdtemp(prefix=f"mlplat-firing-{ctx.firing_id}-")
        tracking_path = os.path.join(workdir, "tracking.jsonl")
        out_path = os.path.join(workdir, path.name)
        log_path = str(Path(ctx.config.logs_dir) / run_id / "notebook.log")
        outcome: dict[str, Any] = {"status": "failed", "records": []}
        nb = nbformat.read(str(path), as_version=4)
        if parameters:
            _inject_parameters(nb, injected_source(parameters), ctx.parameters)
        nb.cells.insert(0, nbformat.v4.new_code_cell(
            source=_context_source(run_id, step_run_id, tracking_path,
                                   ctx.kernel_access().artifacts_url),
            metadata={"tags": [INJECTED_TAG]}))
        km = None
        stopped = threading.Event()  # timeout, cancel or lost lease: why is in `reason`
        reason: dict[str, str] = {}
        done = threading.Event()
        try:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "a", buffering=1, encoding="utf-8") as log_file:
                km = start_kernel(kernel, self.kernel_environment(ctx), str(path.parent))

                def watch() -> None:
                    deadline = time.monotonic() + ctx.timeout if ctx.timeout else None
                    last_beat = time.monotonic()
                    while not done.wait(0.25):
                        why = None
                        if deadline is not None and time.monotonic() > deadline:
                            why = (f"the notebook did not finish within its timeout of "
                                   f"{ctx.timeout:g}s and was stopped")
                        elif ctx.stop.is_set():
                            why = "stopped: the scheduler shut down or lost this schedule"
                        elif time.monotonic() - last_beat >= self.beat_every:
                            last_beat = time.monotonic()
                            if self._beat(ctx, run_id):
                                why = "cancelled on request"
                        if why is not None:
                            reason["why"] = why
                            stopped.set()
                            interrupt(km)
                            if not done.wait(5):
                                shutdown(km)
                            return

                watcher = threading.Thread(target=watch, daemon=True,
                                           name=f"mlplat-firing-{ctx.firing_id}-watch")
                watcher.start()
                try:
                    papermill.execute_notebook(
                        nb, out_path, parameters=None, engine_name="mlplat",
                        kernel_name=kernel, language="python", progress_bar=False,
                        log_output=False, stdout_file=log_file, stderr_file=log_file,
                        start_timeout=120, km=km)
                    outcome["status"] = "succeeded"
                except PapermillExecutionError as exc:
                    outcome.update(error_cell_index=exc.cell_index, ename=exc.ename,
                                   evalue=exc.evalue, traceback="\n".join(exc.traceback or []))
                except Exception as exc:  # noqa: BLE001 - a dead kernel, a bad notebook
                    outcome.update(ename=type(exc).__name__, evalue=str(exc) or repr(exc),
                                   traceback=traceback.format_exc())
                finally:
                    done.set()
            if stopped.is_set():
                outcome.update(status="failed", ename="FiringStopped", evalue=reason["why"])
                if "cancel" in reason["why"]:
                    outcome["status"] = "cancelled"
            if os.path.exists(out_path):
                outcome["executed_notebook"] = ctx.artifacts.put_file(out_path, ".ipynb").uri
            if os.path.exists(log_path):
                outcome["log_uri"] = ctx.artifacts.put_file(log_path, ".log").uri
            outcome["records"] = read_file(tracking_path)
        finally:
            if km is not None:
                shutdown(km)
            shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    @staticmethod
    def _beat(ctx: FiringContext, run_id: str) -> bool:
        """Refresh the run's heartbeat; True when a cancel was asked for."""
        try:
            return bool(ctx.store.heartbeat(run_id))
        except Exception:  # noqa: BLE001 - a missed beat is retried
            return False

    def _record(self, ctx: FiringContext, run_id: str, step_run_id: int, path: Path,
                started: float, outcome: dict[str, Any]) -> FiringResult:
        """Write the step, its tracking records and the run's end; judge its models."""
        from ..tracking.records import Lineage, apply_records
        from ..tracking.registry import ModelRegistry

        store, status = ctx.store, outcome["status"]
        records = outcome.get("records") or []
        if status != "succeeded":  # what a failed run logged stays, but registers nothing
            records = [r for r in records if r.get("kind") not in ("model", "alias", "policy")]
        try:
            apply_records(store, ctx.artifacts, records, run_id=run_id,
                          step_run_id=step_run_id, actor=ctx.schedule.owner,
                          lineage=Lineage(notebook_path=str(path), step_name="notebook"))
        except Exception as exc:  # noqa: BLE001 - e.g. an alias naming a missing version
            log.warning("firing %s: recording what the notebook logged failed: %s",
                        ctx.firing_id, exc)
            if status == "succeeded":
                status = "failed"
                outcome.update(ename=type(exc).__name__,
                               evalue=f"what the notebook logged could not be recorded: {exc}")
        message = (f"{outcome['ename']}: {outcome.get('evalue')}" if outcome.get("ename")
                   else None)
        store.update_step_run(
            step_run_id, status=status, finished_at=_now(), duration=time.time() - started,
            executed_notebook=outcome.get("executed_notebook"), log_uri=outcome.get("log_uri"),
            error_cell_index=outcome.get("error_cell_index"), ename=outcome.get("ename"),
            evalue=outcome.get("evalue"), traceback=outcome.get("traceback"), message=message)
        if status == "succeeded":
            try:
                ModelRegistry(store, ctx.artifacts, actor=ctx.schedule.owner).evaluate_run(run_id)
            except Exception:  # noqa: BLE001 - the run's result stands; versions stay unjudged
                log.exception("validating the models of run %s failed", run_id)
        where = (f" in cell {outcome['error_cell_index']}"
                 if outcome.get("error_cell_index") is not None else "")
        error = (f"{outcome['ename']}{where}: {outcome.get('evalue')}" if status != "succeeded"
                 else None)
        store.finish_run(run_id, status, error)
        return FiringResult(status, run_id=run_id,
                            executed_notebook=outcome.get("executed_notebook"), error=error)


def _allowed(ctx: FiringContext, kernel: str, source: str) -> str:
    """``kernel`` when ``ctx.kernels`` admits it (``source``: where the name came from)."""
    if ctx.kernels is not None and kernel not in ctx.kernels:
        raise InvalidSpecError(
            f"kernel {kernel!r} ({source}) is not one this scheduler runs; allowed: "
            f"{', '.join(sorted(ctx.kernels))}. Give the schedule one of them as its kernel, "
            "or change the notebook's kernel")
    return kernel


def start_kernel(kernel_name: str, env: dict[str, str], cwd: str) -> Any:
    """Start a kernel with exactly ``env`` as its environment (nothing of this process's own
    is inherited) in ``cwd``; its ``AsyncKernelManager``."""
    from jupyter_client.manager import AsyncKernelManager

    from ..pipeline.kernels import run_sync

    km = AsyncKernelManager(kernel_name=kernel_name)
    extra: dict[str, Any] = {"cwd": cwd} if cwd and os.path.isdir(cwd) else {}
    # ipykernel warns about plain TCP on loopback at every start; keep its errors only.
    run_sync(km.start_kernel(env=dict(env), extra_arguments=["--IPKernelApp.log_level=ERROR"],
                             **extra))
    return km


def _inject_parameters(nb: Any, source: str, stored: dict[str, Any]) -> None:
    """Insert the injected-parameters cell after the ``parameters`` cell, as papermill does
    (papermill then records ``stored`` as the run's parameters)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source=source)
    cell.metadata["tags"] = ["injected-parameters"]
    index = next((i for i, c in enumerate(nb.cells)
                  if "parameters" in (c.get("metadata", {}).get("tags") or [])), -1)
    nb.cells.insert(index + 1, cell)
    nb.metadata.setdefault("papermill", {})["parameters"] = dict(stored)


def _context_source(run_id: str, step_run_id: int, tracking_path: str, artifacts_url: str
                    ) -> str:
    """The first cell of a scheduled notebook: ``mlp.log_*`` record onto the firing's run."""
    context = json.dumps({"run_id": run_id, "step_run_id": step_run_id, "step": "notebook",
                          "tracking_path": tracking_path, "artifacts_url": artifacts_url})
    return ("import json as _mlplat_json\n"
            "import jupyter_mlplat.tracking.api as _mlplat_tracking\n"
            "_mlplat_tracking.set_context(_mlplat_tracking.StepContext("
            f"**_mlplat_json.loads({context!r})))\n"
            "del _mlplat_json, _mlplat_tracking")


def _now() -> datetime:
    return datetime.now(UTC)
