"""RunService: describe, list, cancel, read logs and outputs of runs. Every front door uses it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import MLPlat
from ..errors import ConflictError, NotFoundError
from ..schemas import (
    FINISHED_RUN,
    ArtifactInfo,
    CompareRuns,
    DescribeRun,
    DescribeStepRun,
    ListMetricsResponse,
    MetricPoint,
    RunModelVersion,
    SliceMetricRow,
)


class RunService:
    """Queries and commands on existing runs of one owner.

    Parameters
    ----------
    config : MLPlat, optional
        Settings; read from the environment when omitted.
    store, artifacts : optional
        Ready-made stores; built from ``config`` when omitted.
    """

    def __init__(self, config: MLPlat | None = None, *, store: Any = None,
                 artifacts: Any = None) -> None:
        self.config = config or MLPlat()
        if store is None:
            from ..store import open_store

            store = open_store(self.config)
        self.store = store
        self._artifacts = artifacts

    @property
    def artifacts(self) -> Any:
        if self._artifacts is None:
            from ..store import open_artifacts

            self._artifacts = open_artifacts(self.config.artifacts_url)
        return self._artifacts

    def describe(self, run_ref: str) -> DescribeRun:
        """Everything about one run: steps, timings, cache, params, metrics, outputs, errors."""
        run_id = self.store.resolve_run_id(run_ref)
        return self._describe_many([self.store.run_row(run_id)], detail=True)[0]

    def list(self, *, limit: int = 50, pipeline: str | None = None,
             status: str | None = None) -> list[DescribeRun]:
        """The newest runs first, with their steps' statuses, params and metrics."""
        rows = self.store.runs(limit=limit, pipeline=pipeline, status=status)
        return self._describe_many(rows, detail=False)

    def _describe_many(self, rows: list[Any], detail: bool) -> list[DescribeRun]:
        ids = [r.id for r in rows]
        names = self.store.pipeline_names(r.pipeline_id for r in rows)
        params: dict[str, dict[str, Any]] = {i: {} for i in ids}
        step_params: dict[int, dict[str, Any]] = {}
        for p in self.store.params(ids):
            params[p.run_id][p.name] = p.value
            if p.step_run_id is not None:
                step_params.setdefault(p.step_run_id, {})[p.name] = p.value
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        step_metrics: dict[int, dict[str, float]] = {}
        for m in self.store.metrics(ids):
            metrics[m.run_id][m.name] = m.value  # the last point of a curve
            if m.step_run_id is not None:
                step_metrics.setdefault(m.step_run_id, {})[m.name] = m.value
        out = []
        for row in rows:
            steps = []
            for sr in self.store.step_runs(row.id):
                cached_from_run = None
                if sr.cached_from is not None and detail:
                    cached_from_run = self._run_of_step_run(sr.cached_from)
                steps.append(DescribeStepRun(
                    id=sr.id, name=sr.step_name, status=sr.status, version=sr.step_version,
                    attempt=sr.attempt, cached=sr.status == "cached",
                    cached_from_run=cached_from_run, started_at=sr.started_at,
                    finished_at=sr.finished_at, duration=sr.duration, worker=sr.worker,
                    executed_notebook=sr.executed_notebook, log_uri=sr.log_uri,
                    error_cell_index=sr.error_cell_index, source_cell_index=sr.source_cell_index,
                    ename=sr.ename, evalue=sr.evalue, message=sr.message,
                    params=step_params.get(sr.id, {}), metrics=step_metrics.get(sr.id, {}),
                    outputs=self._io(sr.id, "out") if detail else [],
                    inputs=self._io(sr.id, "in") if detail else [],
                ))
            duration = None
            if row.started_at and row.finished_at:
                duration = (row.finished_at - row.started_at).total_seconds()
            out.append(DescribeRun(
                id=row.id, owner=row.owner, pipeline=names.get(row.pipeline_id, "?"),
                notebook=row.notebook_path, pipeline_version=row.pipeline_version,
                status=row.status, parameters=row.parameters or {}, options=row.options or {},
                host=row.host, pid=row.pid, error=row.error, created_at=row.created_at,
                started_at=row.started_at, finished_at=row.finished_at, duration=duration,
                params=params[row.id], metrics=metrics[row.id], steps=steps,
                slices=self._slices(row.id, steps) if detail else [],
                models=self._models(row.id) if detail else [],
            ))
        return out

    def _slices(self, run_id: str, steps: list[DescribeStepRun]) -> list[SliceMetricRow]:
        names = {st.id: st.name for st in steps}
        return [SliceMetricRow(metric=r.metric, by=r.by, slice=r.slice, value=r.value,
                               count=r.count, step=names.get(r.step_run_id or -1))
                for r in self.store.slice_metrics([run_id])]

    def _models(self, run_id: str) -> list[RunModelVersion]:
        registered = self.store.run_model_versions(run_id)
        verdicts = self.store.validations([mv.id for _, mv in registered])
        out = []
        for name, mv in registered:
            row = verdicts.get(mv.id)
            out.append(RunModelVersion(
                model=name, version=mv.version, flavor=mv.flavor,
                verdict=row.status if row is not None else "unvalidated",
                summary=(row.report or {}).get("summary") if row is not None else None,
            ))
        return out

    def compare(self, run_refs: list[str]) -> CompareRuns:
        """Params and metrics of two or more runs side by side, differences named."""
        from ..errors import InvalidSpecError

        if len(run_refs) < 2:
            raise InvalidSpecError(f"compare needs at least two runs; got {len(run_refs)}")
        ids = list(dict.fromkeys(self.store.resolve_run_id(r) for r in run_refs))
        runs = [self.store.run_row(i) for i in ids]
        names = self.store.pipeline_names(r.pipeline_id for r in runs)
        params: dict[str, dict[str, Any]] = {}
        for run in runs:  # the run's parameters, then what its steps logged
            for name, value in (run.parameters or {}).items():
                params.setdefault(name, {})[run.id] = value
        for p in self.store.params(ids):
            params.setdefault(p.name, {})[p.run_id] = p.value
        metrics: dict[str, dict[str, float | None]] = {}
        for m in self.store.metrics(ids):
            metrics.setdefault(m.name, {})[m.run_id] = m.value  # the last point of a curve
        differs = []
        for kind, table in (("param", params), ("metric", metrics)):
            for name, values in table.items():
                column = [values.get(i) for i in ids]
                if any(v != column[0] for v in column[1:]):
                    differs.append(f"{kind}.{name}")
        return CompareRuns(
            runs=ids, pipelines={r.id: names.get(r.pipeline_id, "?") for r in runs},
            params={k: {i: v.get(i) for i in ids} for k, v in sorted(params.items())},
            metrics={k: {i: v.get(i) for i in ids} for k, v in sorted(metrics.items())},
            differs=differs,
        )

    def _io(self, step_run_id: int, direction: str) -> list[ArtifactInfo]:
        refs = self.store.step_io(step_run_id, direction)
        return [ArtifactInfo(**{k: v for k, v in ref.items() if k != "meta"})
                for ref in refs.values()]

    def _run_of_step_run(self, step_run_id: int) -> str | None:
        return self.store.run_of_step_run(step_run_id)

    def frame(self, *, limit: int = 1000, pipeline: str | None = None) -> Any:
        """Runs as a pandas DataFrame: one row a run, ``param.*`` and ``metric.*`` columns."""
        import pandas as pd

        records = []
        for run in self.list(limit=limit, pipeline=pipeline):
            rec: dict[str, Any] = {
                "run_id": run.id, "pipeline": run.pipeline, "status": run.status,
                "created_at": run.created_at, "duration": run.duration,
                "steps": len(run.steps),
                "cached_steps": sum(1 for s in run.steps if s.cached),
            }
            for name, value in {**run.parameters, **run.params}.items():
                rec[f"param.{name}"] = value
            for name, value in run.metrics.items():
                rec[f"metric.{name}"] = value
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def load_output(self, run_ref: str, step: str, name: str) -> Any:
        """A value a step of a run produced (loaded from the artifact store)."""
        from .marshal import ArtifactRef, load_value

        run_id = self.store.resolve_run_id(run_ref)
        row = self.store.step_run(run_id, step)
        refs = self.store.step_io(row.id, "out")
        if name not in refs:
            have = ", ".join(sorted(refs)) or "none (only values a later step reads are saved)"
            raise NotFoundError(f"step {step!r} of run {run_id} has no output {name!r}; "
                                f"its outputs: {have}")
        # The store is owner-scoped, so this is the owner's own artifact: cloudpickle allowed.
        return load_value(ArtifactRef.from_dict(refs[name]), store=self.artifacts,
                          allow_trusted_only=True)

    def cancel(self, run_ref: str, wait: float = 30.0) -> DescribeRun:
        """Ask the process running ``run_ref`` to stop it; wait up to ``wait`` seconds."""
        run_id = self.store.resolve_run_id(run_ref)
        run = self.store.run_row(run_id)
        if run.status in FINISHED_RUN:
            raise ConflictError(f"run {run_id} already finished ({run.status})")
        self.store.request_cancel(run_id)
        deadline = time.time() + wait
        while time.time() < deadline:
            self.store.sweep_interrupted()  # an executor that is gone cannot answer
            if self.store.run_row(run_id).status in FINISHED_RUN:
                break
            time.sleep(0.25)
        return self.describe(run_id)

    def log_files(self, run_id: str) -> list[Path]:
        """The run's step logs that exist, in step order."""
        folder = Path(self.config.logs_dir) / run_id
        paths = [folder / f"{sr.step_name}.log" for sr in self.store.step_runs(run_id)]
        return [p for p in paths if p.exists()]

    def logs(self, run_ref: str) -> str:
        """The run's log: every step's cell output, step by step."""
        run_id = self.store.resolve_run_id(run_ref)
        parts = []
        for sr in self.store.step_runs(run_id):
            path = Path(self.config.logs_dir) / run_id / f"{sr.step_name}.log"
            text = None
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
            elif sr.log_uri and self.artifacts.exists(sr.log_uri):
                text = self.artifacts.read_bytes(sr.log_uri).decode("utf-8", "replace")
            if text:
                parts.append(text if text.endswith("\n") else text + "\n")
            elif sr.status == "cached":
                parts.append(f"--- step {sr.step_name}: cached ({sr.message}) ---\n")
        return "".join(parts)

    def follow(self, run_ref: str, poll: float = 0.3) -> Iterator[str]:
        """Yield log text as steps write it, until the run finishes."""
        run_id = self.store.resolve_run_id(run_ref)
        offsets: dict[Path, int] = {}
        while True:
            finished = self.store.run_row(run_id).status in FINISHED_RUN
            for path in self.log_files(run_id):
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(offsets.get(path, 0))
                    chunk = f.read()
                    offsets[path] = f.tell()
                if chunk:
                    yield chunk
            if finished:
                return
            time.sleep(poll)
            self.store.sweep_interrupted()

    # -- one step: its log and executed notebook; a run's metric points ------------------------

    def read_step_log(self, run_ref: str, step: str, offset: int = 0) -> tuple[str, int, bool]:
        """The log of one step from byte ``offset``: ``(text, next offset, finished)``.

        While the step runs its log grows in the logs folder; once finished it is also in the
        artifact store. ``finished`` says whether the step has ended, or its run (a run that
        stopped leaves nothing to wait for), so a follower stops once it has read everything.
        A cached step's log is the one of the run it was taken from.
        """
        run_id = self.store.resolve_run_id(run_ref)
        row = self.store.step_run(run_id, step)
        finished = (row.status not in ("pending", "running")
                    or self.store.run_row(run_id).status in FINISHED_RUN)
        path = Path(self.config.logs_dir) / run_id / f"{row.step_name}.log"
        if path.exists():
            with open(path, "rb") as f:
                f.seek(max(0, offset))
                data = f.read()
        elif row.log_uri and self.artifacts.exists(row.log_uri):
            data = self.artifacts.read_bytes(row.log_uri)[max(0, offset):]
        else:
            data = b""
        if offset == 0 and not data and row.status == "cached":
            text = f"--- step {row.step_name}: cached ({row.message}) ---\n"
            return text, 0, True
        return data.decode("utf-8", "replace"), max(0, offset) + len(data), finished

    def step_notebook(self, run_ref: str, step: str) -> dict[str, Any]:
        """The executed notebook of one step of a run (failed steps included), as JSON."""
        import json

        run_id = self.store.resolve_run_id(run_ref)
        row = self.store.step_run(run_id, step)
        if not row.executed_notebook:
            raise NotFoundError(f"step {step!r} of run {run_id} has no executed notebook "
                                f"(status {row.status})")
        if not self.artifacts.exists(row.executed_notebook):
            raise NotFoundError(f"the executed notebook of step {step!r} of run {run_id} is no "
                                "longer in the artifact store")
        return json.loads(self.artifacts.read_bytes(row.executed_notebook))

    def list_metrics(self, run_ref: str) -> ListMetricsResponse:
        """Every metric point a run logged, in order (points with ``step`` set form curves)."""
        run_id = self.store.resolve_run_id(run_ref)
        names = {sr.id: sr.step_name for sr in self.store.step_runs(run_id, latest=False)}
        return ListMetricsResponse(run_id=run_id, metrics=[
            MetricPoint(name=m.name, value=m.value, step=m.step, timestamp=m.timestamp,
                        step_name=names.get(m.step_run_id or -1))
            for m in self.store.metrics([run_id])])
