"""PipelineExecutor: the step graph, versions, cache, retries and hooks; talks to a cluster.

The loop is one template; what a front door shows is a ``RunReporter`` (hooks ``on_run_start``,
``on_step_update``, ``on_run_complete``). A step is submitted when its upstream steps are done,
never before: its version covers the content hashes of its inputs, which exist only then, and
Dask's locality rule would otherwise stack independent steps on one worker.

The nothing-changed path (every step cached) parses with the standard library, hashes, and reads
SQLite: it never imports papermill, nbformat or distributed, and never starts a cluster.
"""

from __future__ import annotations

import ast
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import MLPlat, current_owner
from ..errors import ConflictError, InvalidSpecError, MLPlatError
from .parameters import resolve_parameters, source_literal
from .spec import PipelineSpec, StepSpec, sha256_json
from .versions import default_kernel_name, env_fingerprint, pipeline_version

log = logging.getLogger(__name__)

DONE = ("succeeded", "cached", "skipped")
BLOCKED = ("failed", "upstream_failed", "cancelled", "interrupted")
RESUMABLE_RUN = ("failed", "cancelled", "interrupted")
#: The ``pipeline_version`` of a run of a scheduled notebook: one papermill job, no pipeline.
NOTEBOOK_RUN_VERSION = "papermill"


def refuse_notebook_run(run: Any, what: str) -> None:
    """Refuse a run of a scheduled notebook target: it has no pipeline to resume or re-run.

    Parameters
    ----------
    run : Run row
        The run asked for (``pipeline_version`` and ``options`` are read).
    what : str
        What was asked, for the message ("resumed", "re-run").

    Raises
    ------
    ConflictError
        For a notebook target's run (one papermill job), saying how to repeat its firing.
    """
    options = run.options or {}
    if run.pipeline_version != NOTEBOOK_RUN_VERSION and options.get("target") != "notebook":
        return
    schedule = options.get("schedule")
    again = (f"`jupyter mlplat schedule run-now {schedule}` (or the schedule's 'Run now')"
             if schedule else "`jupyter mlplat schedule run-now SCHEDULE`")
    raise ConflictError(
        f"run {run.id} ran a scheduled notebook as one papermill job, not a pipeline: it cannot "
        f"be {what} step by step; repeat the firing with {again}")


@dataclass
class StepState:
    """The live state of one step in a run (what reporters show)."""

    name: str
    status: str = "pending"
    version: str | None = None
    step_run_id: int | None = None
    attempt: int = 1
    started_at: float | None = None
    duration: float | None = None
    cached: bool = False
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    message: str | None = None
    recorded: bool = False  # its skipped/cached state is already in the store (resume)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    steps: dict[str, StepState]
    error: str | None = None
    duration: float = 0.0
    verdicts: list[Any] = field(default_factory=list)  # tracking.registry.RunVerdict

    @property
    def executed(self) -> list[str]:
        """Steps that ran this time (not cached, not skipped)."""
        return [s.name for s in self.steps.values() if s.status in ("succeeded", "failed")]


class RunReporter:
    """Lifecycle hooks of a run; the default does nothing. Front doors override them."""

    def on_run_start(self, run_id: str, spec: PipelineSpec, steps: dict[str, StepState]) -> None:
        """The run exists in the store; ``steps`` holds every step's initial state."""

    def on_step_update(self, state: StepState) -> None:
        """A step changed status (started, cached, skipped, finished, failed, retried)."""

    def on_run_complete(self, outcome: RunOutcome) -> None:
        """The run reached a final status."""


def select_steps(spec: PipelineSpec, only: str | None = None, from_step: str | None = None,
                 to: str | None = None) -> list[str]:
    """Names of the steps a selection runs, in notebook order."""
    chosen = [x for x in (only, from_step, to) if x]
    if len(chosen) > 1:
        raise InvalidSpecError("choose one of --only, --from and --to")
    for name in chosen:
        if name not in spec.step_names:
            raise InvalidSpecError(
                f"unknown step {name!r}; the pipeline's steps: {', '.join(spec.step_names)}"
            )
    if only:
        return [only]
    if from_step:
        return spec.downstream(from_step)
    if to:
        return spec.ancestors(to)
    return list(spec.step_names)


class PipelineExecutor:
    """Runs pipelines: versions, cache, partial runs, retries, resume and cancel.

    Parameters
    ----------
    config : MLPlat, optional
        Settings (store, artifacts, cluster); read from the environment when omitted.
    store, artifacts : optional
        Ready-made ``Store`` / ``ArtifactStore``; built from ``config`` when omitted.
    cluster : DaskCluster, optional
        The cluster; started on first need from ``config.dask_address``.
    reporter : RunReporter, optional
        Receives lifecycle hooks (progress display).
    """

    poll_interval = 0.5

    def __init__(self, config: MLPlat | None = None, *, store: Any = None, artifacts: Any = None,
                 cluster: Any = None, reporter: RunReporter | None = None) -> None:
        self.config = config or MLPlat()
        if store is None:
            from ..store import open_store

            store = open_store(self.config)
        if artifacts is None:
            from ..store import open_artifacts

            artifacts = open_artifacts(self.config.artifacts_url)
        self.store = store
        self.artifacts = artifacts
        self._cluster = cluster
        self._owns_cluster = cluster is None
        self.reporter = reporter or RunReporter()
        #: Set (e.g. by a SIGINT handler) to cancel the run in progress at the next poll.
        self.interrupted = threading.Event()

    # -- public API -----------------------------------------------------------------------

    def run(self, notebook: str | os.PathLike[str], parameters: dict[str, Any] | None = None, *,
            only: str | None = None, from_step: str | None = None, to: str | None = None,
            force: Iterable[str] = (), spec: PipelineSpec | None = None) -> RunOutcome:
        """Run a notebook as a pipeline and wait for it to finish.

        Parameters
        ----------
        notebook : path
            The notebook (``.ipynb``) whose marked cells are the steps.
        parameters : dict, optional
            Values for the notebook's parameters (its ``parameters`` cell).
        only, from_step, to : str, optional
            Run one step, a step and its descendants, or a step and its ancestors.
        force : iterable of str
            Steps to run even when a cached result exists.
        """
        from .notebook import parse_path

        path = str(Path(notebook).expanduser().resolve())
        spec = parse_path(path) if spec is None else replace(spec, path=path)
        params = resolve_parameters(spec, dict(parameters or {}))
        forced = list(force)
        for name in forced:
            if name not in spec.step_names:
                raise InvalidSpecError(
                    f"--force names unknown step {name!r}; steps: {', '.join(spec.step_names)}"
                )
        selected = select_steps(spec, only, from_step, to)
        self._apply_policies(spec)
        pipeline_id = self.store.pipeline_id(spec.name, path)
        reuse = self._outputs_of_unselected(spec, pipeline_id, selected)
        version = pipeline_version(spec)
        self.store.save_pipeline_version(pipeline_id, version, spec.to_dict())
        options = {"only": only, "from": from_step, "to": to, "force": forced,
                   "selected": selected,
                   # exact values for resume (JSON turns a tuple into a list)
                   "parameter_reprs": {k: repr(v) for k, v in params.items()}}
        run_id = self.store.create_run(
            pipeline_id=pipeline_id, pipeline_version=version, notebook_path=path,
            parameters=_jsonable(params), options=options, steps=spec.step_names,
        )
        try:  # the run exists: whatever fails from here on must not leave it "running"
            states = {}
            for row in self.store.step_runs(run_id):
                states[row.step_name] = StepState(row.step_name, step_run_id=row.id)
            for name, (row, outputs) in reuse.items():
                st = states[name]
                st.status, st.version, st.outputs = "skipped", row.step_version, outputs
                st.message = f"not selected; outputs from run {row.run_id}"
            for name in spec.step_names:
                if name not in selected and name not in reuse:
                    states[name].status = "skipped"
                    states[name].message = "not selected"
                    # an upstream linked by `after` only: its version still counts downstream
                    if any(name in spec.step(sel).upstream for sel in selected):
                        row = self.store.latest_success(pipeline_id, name)
                        states[name].version = row.step_version if row is not None else None
        except BaseException as exc:
            _record_failure(self.store, run_id, exc)
            raise
        return self._drive(run_id, spec, pipeline_id, params, states, set(forced))

    def resume(self, run_ref: str) -> RunOutcome:
        """Re-run the steps of a failed, cancelled or interrupted run that did not succeed."""
        run_id = self.store.resolve_run_id(run_ref)
        run = self.store.run_row(run_id)
        if run.status not in RESUMABLE_RUN:
            if run.status in ("pending", "running"):
                raise ConflictError(f"run {run_id} is still running; nothing to resume yet")
            raise ConflictError(f"run {run_id} succeeded; nothing to resume")
        refuse_notebook_run(run, "resumed")
        spec = PipelineSpec.from_dict(self.store.pipeline_spec(run.pipeline_version))
        states: dict[str, StepState] = {}
        for row in self.store.step_runs(run_id):
            st = StepState(row.step_name, step_run_id=row.id, attempt=row.attempt)
            if row.status in DONE:
                st.status, st.version = row.status, row.step_version
                st.cached = row.status == "cached"
                st.outputs = self.store.step_io(row.id, "out")
                st.duration = row.duration
                st.recorded = True
            states[row.step_name] = st
        params = run_parameters(run)  # before the claim: a run that cannot resume stays as is
        forced = set(run.options.get("force") or [])
        if not self.store.claim_run(run_id, RESUMABLE_RUN):
            raise ConflictError(f"run {run_id} is being resumed by another process")
        try:  # the run is ours and "running" again: a failure from here on must finish it
            if run.status == "cancelled":  # workers that saw the cancel would refuse its steps
                self._cluster_handle().resume_run(run_id)
            for row in self.store.step_runs(run_id):
                st = states[row.step_name]
                if not st.recorded:
                    st.attempt = row.attempt + 1
                    st.step_run_id = self.store.new_attempt(run_id, row.step_name, st.attempt)
        except BaseException as exc:
            _record_failure(self.store, run_id, exc)
            raise
        return self._drive(run_id, spec, run.pipeline_id, params, states, forced)

    def _apply_policies(self, spec: PipelineSpec) -> None:
        """The notebook's ``metadata.mlplat.policies`` become the models' policies (checked
        before anything runs: a bad policy fails the run at once, naming the field)."""
        if not spec.policies:
            return
        registry = self.registry
        for name, policy in spec.policies.items():
            registry.set_policy(name, policy, source="notebook")

    @property
    def registry(self) -> Any:
        from ..tracking.registry import ModelRegistry

        return ModelRegistry(self.store, self.artifacts, actor=self.config.owner)

    def close(self) -> None:
        if self._cluster is not None and self._owns_cluster:
            self._cluster.close()
            self._cluster = None

    # -- the loop -------------------------------------------------------------------------

    @property
    def cluster(self) -> Any:
        """The cluster, started."""
        self._cluster_handle().start()
        return self._cluster

    def _cluster_handle(self) -> Any:
        """The cluster object, not necessarily started (warm-up may begin before it is)."""
        if self._cluster is None:
            from .dask import DaskCluster

            self._cluster = DaskCluster(self.config.dask_address, self.config.dask_workers,
                                        self.config.warm_kernels, self.config.dask_processes,
                                        self.config.fork_kernels)
        return self._cluster

    def _outputs_of_unselected(self, spec: PipelineSpec, pipeline_id: int,
                               selected: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
        """Latest successful outputs of producers outside the selection that selected steps read."""
        needed: dict[str, set[str]] = {}
        for name in selected:
            for var, producer in spec.step(name).inputs.items():
                if producer not in selected:
                    needed.setdefault(producer, set()).add(var)
        found, missing = {}, []
        for producer, names in needed.items():
            row = self.store.latest_success(pipeline_id, producer)
            outputs = self.store.step_io(row.id, "out") if row is not None else {}
            lacking = sorted(n for n in names if n not in outputs)
            if row is None or lacking:
                missing.append(f"{producer} ({', '.join(sorted(names))})")
                continue
            found[producer] = (row, {n: outputs[n] for n in names})
        if missing:
            raise InvalidSpecError(
                "the selected steps read outputs of steps outside the selection that have no "
                f"successful run yet: {'; '.join(missing)}; run those steps first (or the "
                "whole pipeline)"
            )
        return found

    def _drive(self, run_id: str, spec: PipelineSpec, pipeline_id: int, params: dict[str, Any],
               states: dict[str, StepState], forced: set[str]) -> RunOutcome:
        started = time.time()
        futures: dict[Any, StepSpec] = {}
        error: str | None = None
        cancelled = False
        last_beat = time.time()
        try:
            self.reporter.on_run_start(run_id, spec, states)
            for st in states.values():
                if st.status == "skipped" and not st.recorded:
                    self._record_skipped(run_id, st)
            while True:
                self._advance(run_id, spec, pipeline_id, params, states, forced, futures)
                if not futures:
                    break
                done = self.cluster.wait_any(futures, timeout=self.poll_interval)
                if self.interrupted.is_set():  # before results: a step Ctrl-C hit is cancelled
                    cancelled, error = True, "cancelled (interrupted)"
                    break
                for future in done:
                    step = futures.pop(future)
                    self._finish(run_id, step, states[step.name], future, futures, params, spec)
                if time.time() - last_beat >= 1.0:
                    last_beat = time.time()
                    if self.store.heartbeat(run_id):
                        cancelled = True
                        error = "cancelled on request (or taken over by another process)"
                        break
        except KeyboardInterrupt:
            cancelled, error = True, "cancelled (interrupted)"
            self._cancel(run_id, states, futures)
            self._complete(run_id, states, started, cancelled, error)
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("run %s failed in the executor", run_id)
            self._cancel(run_id, states, futures)
            return self._complete(run_id, states, started, False, error, crashed=True)
        if cancelled:
            self._cancel(run_id, states, futures)
        return self._complete(run_id, states, started, cancelled, error)

    def _advance(self, run_id: str, spec: PipelineSpec, pipeline_id: int, params: dict[str, Any],
                 states: dict[str, StepState], forced: set[str], futures: dict[Any, StepSpec]
                 ) -> None:
        """Start (or take from cache) every step whose upstream steps are done."""
        progressed = True
        while progressed:
            progressed = False
            for step in spec.steps:
                st = states[step.name]
                if st.status != "pending":
                    continue
                ups = [states[u] for u in step.upstream]
                if any(u.status in BLOCKED for u in ups):
                    failed = [u.name for u in ups if u.status in BLOCKED]
                    self._set(st, "upstream_failed", message=f"not started: {', '.join(failed)} "
                              "did not succeed")
                    self.store.update_step_run(st.step_run_id, status="upstream_failed",
                                               message=st.message)
                    progressed = True
                    continue
                if not all(u.status in DONE for u in ups):
                    continue
                self._start(run_id, spec, pipeline_id, step, st, params, states, forced, futures)
                progressed = True

    def _inputs(self, step: StepSpec, states: dict[str, StepState]) -> dict[str, dict[str, Any]]:
        refs = {}
        for var, producer in step.inputs.items():
            ref = states[producer].outputs.get(var)
            if ref is None:
                raise MLPlatError(f"step {producer!r} did not provide {var!r}, which step "
                                  f"{step.name!r} reads")
            refs[var] = ref
        return refs

    def _version(self, spec: PipelineSpec, step: StepSpec, params: dict[str, Any],
                 states: dict[str, StepState], inputs: dict[str, dict[str, Any]]) -> str:
        values = {}
        for name in step.params:
            param = spec.parameter(name)
            values[name] = repr(params[name]) if name in params else (param.source if param
                                                                      else None)
        return sha256_json({
            "code": step.code_hash,
            "shared": spec.shared_hash,
            "params": values,
            "upstream": {u: states[u].version for u in step.upstream},
            "inputs": {var: ref["sha256"] for var, ref in inputs.items()},
            "env": env_fingerprint(self._kernel(step)),
        })

    def _kernel(self, step: StepSpec) -> str:
        return step.kernel or default_kernel_name(self.config.kernel_name)

    def _start(self, run_id: str, spec: PipelineSpec, pipeline_id: int, step: StepSpec,
               st: StepState, params: dict[str, Any], states: dict[str, StepState],
               forced: set[str], futures: dict[Any, StepSpec]) -> None:
        inputs = st.inputs = self._inputs(step, states)
        st.version = self._version(spec, step, params, states, inputs)
        self.store.save_step_version(pipeline_id, step.name, st.version, step.source,
                                     {"inputs": {v: r["sha256"] for v, r in inputs.items()},
                                      "upstream": list(step.upstream)})
        self.store.record_io(st.step_run_id, "in", inputs)
        if step.cache and step.name not in forced and self._take_cached(run_id, step, st):
            return
        self._prewarm(spec, states)  # before the cluster starts: kernels take longest
        gpus = step.gpu
        try:
            if step.gpu and not self._cpu_fallback():
                self.cluster.check_resources(step.name, step.gpu)
            elif step.gpu:
                gpus = 0
                st.message = (f"asked for {step.gpu} GPU(s); this machine has none: runs on the "
                              "CPU (gpu_fallback=cpu; MLPLAT_GPU_FALLBACK=fail to refuse)")
        except InvalidSpecError as exc:
            self._set(st, "failed", message=str(exc))
            self.store.update_step_run(st.step_run_id, status="failed", step_version=st.version,
                                       ename="InsufficientResources", evalue=str(exc),
                                       message=str(exc), finished_at=_now())
            return
        task = self._task(run_id, spec, step, st, params, inputs, gpus=gpus)
        st.started_at = time.time()
        self.store.update_step_run(st.step_run_id, status="running", step_version=st.version,
                                   attempt=st.attempt, started_at=_now(), message=st.message)
        self._set(st, "running")
        self._prewarm(spec, states)  # the refill target, now that this step is no longer pending
        futures[self.cluster.submit(task, gpu=gpus)] = step

    def _cpu_fallback(self) -> bool:
        """True when GPU steps should run on the CPU: the local cluster, and no GPU anywhere."""
        if self.config.gpu_fallback != "cpu" or self.config.dask_address:
            return False
        offers = [int(w.get("resources", {}).get("GPU", 0))
                  for w in self.cluster.workers().values()]
        return max(offers, default=0) == 0

    def _take_cached(self, run_id: str, step: StepSpec, st: StepState) -> bool:
        row = self.store.find_cached(st.version)
        if row is None:
            return False
        outputs = self.store.step_io(row.id, "out")
        if any(name not in outputs for name in step.outputs):
            return False
        if not all(self.artifacts.exists(ref["uri"]) for ref in outputs.values()):
            return False  # the artifact store lost them: run again
        st.outputs, st.cached, st.duration = outputs, True, 0.0
        self.store.update_step_run(
            st.step_run_id, status="cached", step_version=st.version, cached_from=row.id,
            executed_notebook=row.executed_notebook, log_uri=row.log_uri,
            started_at=_now(), finished_at=_now(), duration=0.0,
            message=f"cached: same version ran in run {row.run_id}",
        )
        self.store.record_io(st.step_run_id, "out", outputs)
        self._copy_tracking(run_id, row, st.step_run_id)
        st.message = f"cached from run {row.run_id}"
        self._set(st, "cached")
        return True

    def _copy_tracking(self, run_id: str, source: Any, step_run_id: int | None) -> None:
        """A cached step's params and metrics count for the run that reused it."""
        params = {p.name: p.value for p in self.store.params([source.run_id])
                  if p.step_run_id == source.id}
        points = [{"name": m.name, "value": m.value, "step": m.step,
                   "timestamp": m.timestamp.timestamp()}
                  for m in self.store.metrics([source.run_id]) if m.step_run_id == source.id]
        self.store.log_params(run_id, step_run_id, params)
        self.store.log_metrics(run_id, step_run_id, points)
        for row in self.store.slice_metrics([source.run_id]):
            if row.step_run_id == source.id:
                self.store.add_slices(run_id, step_run_id, metric=row.metric, by=row.by,
                                      rows=[{"slice": row.slice, "value": row.value,
                                             "count": row.count}])
        for ev in self.store.eval_sets(source.run_id):
            if ev.step_run_id == source.id:
                self.store.add_eval_set(run_id, step_run_id, x=ev.x, y=ev.y, slices=ev.slices,
                                        slices_name=ev.slices_name, count=ev.count,
                                        model=ev.model)

    def _record_skipped(self, run_id: str, st: StepState) -> None:
        self.store.update_step_run(st.step_run_id, status="skipped", step_version=st.version,
                                   message=st.message)
        if st.outputs:
            self.store.record_io(st.step_run_id, "out", st.outputs)
        self.reporter.on_step_update(st)

    def _step_env(self, step: StepSpec, gpus: int) -> dict[str, str]:
        """A step kernel's environment: where the store is (``load_model`` in a step), how many
        GPUs it got (``mlp.device()``), then the step's own variables; and the run's owner when
        this process acts for someone else (a scheduler firing another user's pipeline), so
        ``mlp.*`` in the step acts as that owner."""
        env = {**self.config.env(), "MLPLAT_GPUS": str(gpus), **step.env}
        if self.config.owner != current_owner():
            env["JUPYTERHUB_USER"] = self.config.owner
        return env

    def _task(self, run_id: str, spec: PipelineSpec, step: StepSpec, st: StepState,
              params: dict[str, Any], inputs: dict[str, dict[str, Any]], *, gpus: int = 0
              ) -> Any:
        from .kernels import warmup_code
        from .step import StepTask

        shared = [{"source": c.source, "index": c.index, "id": c.id}
                  for c in (*spec.imports, *spec.functions)]
        param_sources = {}
        for name in step.params:
            param = spec.parameter(name)
            if param is None:
                continue
            # the resolved value as a literal: papermill's injection would turn a tuple or a
            # set into a str; a default that is an expression stays as written
            param_sources[name] = (source_literal(params[name]) if name in params
                                   else param.source)
        threads = step.threads or self._default_threads()
        logs = Path(self.config.logs_dir) / run_id
        return StepTask(
            run_id=run_id,
            step_run_id=st.step_run_id,
            step=step.name,
            owner=self.config.owner,
            kernel_name=self._kernel(step),
            imports=shared,
            cells=[{"source": c.source, "index": c.index, "id": c.id} for c in step.cells],
            param_sources=param_sources,
            parameters={},
            inputs=inputs,
            outputs=list(step.outputs),
            metrics=list(step.metrics),
            artifacts_url=self.config.artifacts_url,
            cwd=str(Path(spec.path).parent),
            env=self._step_env(step, gpus),
            threads=threads,
            timeout=step.timeout,
            log_path=str(logs / f"{step.name}.log"),
            attempt=st.attempt,
            warmup=warmup_code("\n".join(c.source for c in spec.imports)),
        )

    def _default_threads(self) -> int | None:
        if self.config.dask_address:
            return None  # a remote cluster's workers know their own cores
        workers = self.config.dask_workers or max(1, min(os.cpu_count() or 1, 4))
        return max(1, (os.cpu_count() or 1) // workers)

    def _prewarm(self, spec: PipelineSpec, states: dict[str, StepState]) -> None:
        """Keep warm kernels for the steps still to come, one per worker at most.

        Not more: on a small machine every extra kernel warming up (importing pandas,
        scikit-learn, ...) competes for the same cores with the kernel the next step waits for
        (measured on 2 cores: a third kernel made the 4-step diamond 0.2 s slower, not faster).
        """
        from .kernels import KernelKey, kernel_env, warmup_code

        warmup = warmup_code("\n".join(c.source for c in spec.imports))
        keys: dict[Any, int] = {}
        for step in spec.steps:
            if step.gpu:
                continue
            key = KernelKey(self._kernel(step),
                            kernel_env(self._step_env(step, 0),
                                       step.threads or self._default_threads()), warmup,
                            str(Path(spec.path).parent))
            keys.setdefault(key, 0)
            if states[step.name].status == "pending":
                keys[key] += 1
        cluster = self._cluster_handle()
        for key, pending in keys.items():
            cluster.prewarm(key, min(pending, cluster.size))

    def _finish(self, run_id: str, step: StepSpec, st: StepState, future: Any,
                futures: dict[Any, StepSpec], params: dict[str, Any], spec: PipelineSpec) -> None:
        try:
            result = future.result()
        except Exception as exc:  # the task itself died (worker lost, cancelled)
            from .step import StepResult

            now = time.time()
            result = StepResult(step=step.name, step_run_id=st.step_run_id, status="failed",
                                started_at=st.started_at or now, finished_at=now,
                                ename=type(exc).__name__, evalue=str(exc))
        try:
            self._apply_records(run_id, spec, step, st, result.records, result.status)
        except Exception as exc:  # noqa: BLE001 - e.g. an alias naming a missing version
            log.warning("step %s: recording what it logged failed: %s", step.name, exc)
            if result.status == "succeeded":
                result.status, result.ename = "failed", type(exc).__name__
                result.evalue = f"what the step logged could not be recorded: {exc}"
        fields = dict(
            status=result.status, worker=result.worker, duration=result.duration,
            finished_at=datetime.fromtimestamp(result.finished_at, UTC),
            started_at=datetime.fromtimestamp(result.started_at, UTC),
            executed_notebook=result.executed_notebook, log_uri=result.log_uri,
            error_cell_index=result.error_cell_index, source_cell_index=result.source_cell_index,
            ename=result.ename, evalue=result.evalue, traceback=result.traceback,
        )
        st.duration = result.duration
        if result.status == "succeeded":
            self.store.update_step_run(st.step_run_id, **fields)
            self.store.record_io(st.step_run_id, "out", result.outputs)
            st.outputs = result.outputs
            self._set(st, "succeeded")
            return
        where = (f" in cell {result.source_cell_index}" if result.source_cell_index is not None
                 else "")
        message = f"{result.ename}{where}: {result.evalue}" if result.ename else result.status
        self.store.update_step_run(st.step_run_id, message=message, **fields)
        if result.status == "failed" and st.attempt <= step.retries:
            st.attempt += 1
            st.step_run_id = self.store.new_attempt(run_id, step.name, st.attempt)
            self._set(st, "running", message=f"retry {st.attempt - 1}/{step.retries}: {message}")
            gpus = 0 if step.gpu and self._cpu_fallback() else step.gpu
            task = self._task(run_id, spec, step, st, params, st.inputs, gpus=gpus)
            self.store.update_step_run(st.step_run_id, status="running", step_version=st.version,
                                       started_at=_now())
            self.store.record_io(st.step_run_id, "in", st.inputs)
            futures[self.cluster.submit(task, gpu=gpus)] = step
            return
        self._set(st, result.status, message=message)

    def _apply_records(self, run_id: str, spec: PipelineSpec, step: StepSpec, st: StepState,
                       records: list[dict[str, Any]], status: str) -> None:
        """Write what the step recorded; a bad record fails the step, not the executor.

        A step that did not succeed keeps its params, metrics, slices and evaluation data (they
        help to see why), but registers no model and moves no alias or policy.
        """
        from ..tracking.records import Lineage, apply_records

        if status != "succeeded":
            records = [r for r in records if r.get("kind") not in ("model", "alias", "policy")]

        lineage = Lineage(
            notebook_path=spec.path, step_name=step.name, step_version=st.version,
            cell_ids=[c.id or f"#{c.index}" for c in step.cells],
            input_artifacts={name: ref["sha256"] for name, ref in st.inputs.items()},
        )
        apply_records(self.store, self.artifacts, records, run_id=run_id,
                      step_run_id=st.step_run_id, lineage=lineage, actor=self.config.owner)

    def _set(self, st: StepState, status: str, message: str | None = None) -> None:
        st.status = status
        if message is not None:
            st.message = message
        self.reporter.on_step_update(st)

    def _cancel(self, run_id: str, states: dict[str, StepState], futures: dict[Any, StepSpec]
                ) -> None:
        if futures and self._cluster is not None:
            self._cluster.cancel_run(run_id, list(futures))
        futures.clear()
        for st in states.values():
            if st.status in ("pending", "running"):
                self._set(st, "cancelled")
                self.store.update_step_run(st.step_run_id, status="cancelled",
                                           finished_at=_now())

    def _complete(self, run_id: str, states: dict[str, StepState], started: float,
                  cancelled: bool, error: str | None, crashed: bool = False) -> RunOutcome:
        statuses = [st.status for st in states.values()]
        if cancelled:
            status = "cancelled"
        elif crashed or any(s in BLOCKED for s in statuses):
            status = "failed"
            if error is None:
                bad = [st for st in states.values() if st.status == "failed"]
                error = "; ".join(f"{st.name}: {st.message}" for st in bad) or None
        else:
            status = "succeeded"
        verdicts: list[Any] = []
        if status == "succeeded":
            try:
                verdicts = self.registry.evaluate_run(run_id)
            except KeyboardInterrupt:  # the run itself is done: record it before stopping
                self.store.finish_run(run_id, status, error, only_if_ours=True)
                raise
            except Exception:  # noqa: BLE001 - the run's own result stands; versions stay unjudged
                log.exception("validating the models of run %s failed", run_id)
        self.store.finish_run(run_id, status, error, only_if_ours=True)
        outcome = RunOutcome(run_id, status, states, error, time.time() - started, verdicts)
        self.reporter.on_run_complete(outcome)
        return outcome


def _now() -> datetime:
    return datetime.now(UTC)


class _SpecialFloats(ast.NodeTransformer):
    """``nan`` and ``inf`` as ``repr`` writes floats become float constants."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in ("nan", "inf"):
            return ast.copy_location(ast.Constant(float(node.id)), node)
        return node


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        tree = _SpecialFloats().visit(ast.parse(text, mode="eval"))
        return ast.literal_eval(tree)


def run_parameters(run: Any) -> dict[str, Any]:
    """The parameter values a run ran with, exactly (tuples stay tuples, ``nan`` a float).

    Parameters
    ----------
    run : orm.Run
        The run's row (``options["parameter_reprs"]`` holds each value's ``repr``).

    Returns
    -------
    dict
        Name -> value.

    Raises
    ------
    ConflictError
        When a value cannot be rebuilt from what the run recorded (the run cannot be resumed
        or re-run; running the notebook again with its parameters can).
    """
    reprs = (run.options or {}).get("parameter_reprs")
    if not reprs:
        return dict(run.parameters or {})
    params = {}
    for name, text in reprs.items():
        try:
            params[name] = _literal(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ConflictError(
                f"run {run.id}: the value of parameter {name!r} ({text[:80]}) cannot be "
                "restored; run the notebook again with the parameters you want") from None
    return params


def fail_run(store: Any, run_id: str, error: str) -> None:
    """Record that a run stopped with ``error`` outside its steps: the steps still pending
    become ``cancelled``, the running ones ``failed``, the run ``failed``.

    Nothing is written when the run already finished or another process now owns it (it
    resumed the run).

    Parameters
    ----------
    store : Store
        The owner's store.
    run_id : str
        The run.
    error : str
        What stopped it (``ErrorClass: message``).
    """
    run = store.run_row(run_id)
    if run.status not in ("pending", "running"):
        return
    if run.host != getattr(store, "host", run.host) or run.pid != os.getpid():
        return
    now = _now()
    for row in store.step_runs(run_id):
        if row.status == "running":
            store.update_step_run(row.id, status="failed", finished_at=now,
                                  message=f"the run stopped: {error}")
        elif row.status == "pending":
            store.update_step_run(row.id, status="cancelled", finished_at=now,
                                  message=f"not started: the run stopped: {error}")
    store.finish_run(run_id, "failed", error, only_if_ours=True)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    import json

    out = {}
    for name, value in params.items():
        try:
            json.dumps(value)
            out[name] = value
        except (TypeError, ValueError):
            out[name] = repr(value)
    return out


def _record_failure(store: Any, run_id: str, exc: BaseException) -> None:
    """:func:`fail_run` for an error being raised: a store that fails too is logged, and the
    original error is what the caller sees."""
    try:
        fail_run(store, run_id, f"{type(exc).__name__}: {exc}")
    except Exception:  # noqa: BLE001 - the store itself is failing
        log.exception("could not record the failure of run %s", run_id)
