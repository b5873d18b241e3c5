"""run_step(task) -> StepResult: one step, compiled to its own notebook and run by papermill.

``run_step`` is a plain top-level function with explicit arguments, so Dask can ship it to any
worker. It keeps the executed notebook (failed ones too) in the artifact store, streams cell
output to the run's log, and reports outputs, params and metrics back to the executor, which is
the only writer of the SQL store.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
import traceback as tb
from dataclasses import dataclass, field
from typing import Any

from .kernels import KernelKey, KernelPool, RunCancelledError, start_kernel_manager

INJECTED_TAG = "mlplat-injected"


@dataclass
class StepTask:
    """Everything a worker needs to run one step; built by the executor."""

    run_id: str
    step_run_id: int
    step: str
    owner: str
    kernel_name: str
    imports: list[dict[str, Any]]  # [{"source", "index", "id"}] imports + functions cells
    cells: list[dict[str, Any]]  # the step's own cells, same shape
    param_sources: dict[str, str]  # defaults of the parameters the step reads (as written)
    parameters: dict[str, Any]  # the resolved values papermill injects
    inputs: dict[str, dict[str, Any]]  # variable -> ArtifactRef dict
    outputs: list[str]
    metrics: list[str]
    artifacts_url: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    timeout: float | None = None
    log_path: str | None = None
    trusted: bool = True  # the inputs are the owner's own: cloudpickle allowed
    attempt: int = 1
    warmup: str = ""

    @property
    def kernel_key(self) -> KernelKey:
        from .kernels import kernel_env

        return KernelKey(self.kernel_name, kernel_env(self.env, self.threads), self.warmup,
                         self.cwd)


@dataclass
class StepResult:
    """What happened to one step."""

    step: str
    step_run_id: int
    status: str  # succeeded | failed | cancelled
    started_at: float
    finished_at: float
    worker: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: what the step recorded (params, metrics, models, ...): ``tracking.records`` kinds
    records: list[dict[str, Any]] = field(default_factory=list)
    executed_notebook: str | None = None
    log_uri: str | None = None
    error_cell_index: int | None = None
    source_cell_index: int | None = None
    ename: str | None = None
    evalue: str | None = None
    traceback: str | None = None

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at


def _code_cell(source: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": metadata,
            "outputs": [], "source": source}


def build_step_notebook(task: StepTask, context: dict[str, Any]) -> dict[str, Any]:
    """The step's own notebook: imports, parameters, an injected cell, the step's cells, a save."""
    cells = []
    for cell in task.imports:
        cells.append(_code_cell(cell["source"], {"mlplat": {"source_index": cell["index"],
                                                            "source_id": cell.get("id")}}))
    params = "\n".join(f"{name} = {src}" for name, src in task.param_sources.items())
    cells.append(_code_cell(params, {"tags": ["parameters"]}))
    cells.append(_code_cell(
        "import jupyter_mlplat.pipeline.runtime as _mlplat_runtime\n"
        f"_mlplat_context = {json.dumps(context)!r}\n"
        "globals().update(_mlplat_runtime.enter_step(__import__('json').loads(_mlplat_context)))",
        {"tags": [INJECTED_TAG]},
    ))
    for cell in task.cells:
        cells.append(_code_cell(cell["source"], {"mlplat": {"source_index": cell["index"],
                                                            "source_id": cell.get("id")}}))
    cells.append(_code_cell(
        "_mlplat_runtime.exit_step(globals(), __import__('json').loads(_mlplat_context))",
        {"tags": [INJECTED_TAG]},
    ))
    for i, cell in enumerate(cells):
        cell["id"] = f"mlplat-{i}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": task.kernel_name, "display_name": task.kernel_name,
                           "language": "python"},
            "language_info": {"name": "python"},
            "mlplat": {"run_id": task.run_id, "step": task.step, "attempt": task.attempt},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def import_papermill() -> None:
    """Import nbformat and papermill without jsonschema's optional IRI format checker.

    jsonschema imports ``rfc3987_syntax`` when it is installed (jupyter_server pulls it in), and
    that import builds a grammar: ~1.6 s of the ~1.9 s ``import nbformat`` costs here, on the
    path of every first step. Notebooks never use the "iri" formats, so that module is hidden
    from jsonschema (only when nothing imported it yet; jsonschema then skips that checker).
    """
    import sys

    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
        try:
            import jsonschema  # noqa: F401
        finally:
            del sys.modules["rfc3987_syntax"]
    import nbformat  # noqa: F401
    import papermill  # noqa: F401


def _register_engine() -> None:
    from papermill.engines import papermill_engines

    from .kernels import WarmKernelEngine

    if "mlplat" not in papermill_engines._engines:  # not installed as a plugin
        papermill_engines.register("mlplat", WarmKernelEngine)


def _on_timeout(km: Any, flag: threading.Event, done: threading.Event) -> None:
    """A step ran past its timeout: interrupt it, and stop the kernel if it does not listen."""
    from .kernels import interrupt, shutdown

    flag.set()
    interrupt(km)
    deadline = time.time() + 5
    while time.time() < deadline and not done.is_set():
        time.sleep(0.1)
    if not done.is_set():  # still busy (stuck in C code, or catching KeyboardInterrupt)
        shutdown(km)


def run_step(task: StepTask, pool: KernelPool | None = None) -> StepResult:
    """Run one step with papermill and report what happened (never raises for a failing step).

    Parameters
    ----------
    task : StepTask
        The step, its inputs and where to put what it produces.
    pool : KernelPool, optional
        Warm kernels; without one the step gets a fresh kernel.
    """
    import_papermill()
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from ..store import open_artifacts
    from ..tracking.records import read_file

    _register_engine()
    started = time.time()
    workdir = tempfile.mkdtemp(prefix=f"mlplat-{task.run_id}-{task.step}-")
    context = {
        "run_id": task.run_id,
        "step_run_id": task.step_run_id,
        "step": task.step,
        "inputs": task.inputs,
        "outputs": task.outputs,
        "metrics": task.metrics,
        "artifacts_url": task.artifacts_url,
        "cwd": task.cwd,
        "trusted": task.trusted,
        "manifest_path": os.path.join(workdir, "manifest.json"),
        "tracking_path": os.path.join(workdir, "tracking.jsonl"),
    }
    nb_dict = build_step_notebook(task, context)
    nb = nbformat.from_dict(nb_dict)
    out_path = os.path.join(workdir, f"{task.step}.ipynb")
    log_path = task.log_path or os.path.join(workdir, "step.log")
    result = StepResult(step=task.step, step_run_id=task.step_run_id, status="failed",
                        started_at=started, finished_at=started, worker=socket.gethostname())
    km = None
    try:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        with open(log_path, "a", buffering=1, encoding="utf-8") as log_file:
            log_file.write(f"--- step {task.step} (attempt {task.attempt}) started on "
                           f"{result.worker} ---\n")
            timer = None
            timed_out, done = threading.Event(), threading.Event()
            try:
                t0 = time.time()
                if pool is not None:
                    try:
                        km, warm = pool.acquire(task.kernel_key, task.run_id)
                    except RunCancelledError:
                        result.status = "cancelled"
                        raise
                else:
                    km, warm = start_kernel_manager(task.kernel_key), False
                log_file.write(f"kernel {task.kernel_name}: {'warm' if warm else 'new'}, "
                               f"ready in {time.time() - t0:.2f}s\n")
                if task.timeout:
                    timer = threading.Timer(task.timeout, _on_timeout, (km, timed_out, done))
                    timer.daemon = True
                    timer.start()
                papermill.execute_notebook(
                    nb,
                    out_path,
                    parameters=task.parameters or None,
                    engine_name="mlplat",
                    kernel_name=task.kernel_name,
                    language="python",
                    progress_bar=False,
                    log_output=False,
                    stdout_file=log_file,
                    stderr_file=log_file,
                    start_timeout=120,
                    km=km,
                )
                result.status = "succeeded"
            except PapermillExecutionError as exc:
                result.error_cell_index = exc.cell_index
                result.ename, result.evalue = exc.ename, exc.evalue
                result.traceback = "\n".join(exc.traceback or [])
                cells = nb_dict["cells"]
                meta = cells[exc.cell_index]["metadata"] if 0 <= exc.cell_index < len(cells) else {}
                result.source_cell_index = meta.get("mlplat", {}).get("source_index")
            except RunCancelledError:
                result.ename, result.evalue = "RunCancelled", "the run was cancelled"
            except BaseException as exc:  # dead kernel, interrupt
                result.ename = type(exc).__name__
                result.evalue = str(exc) or repr(exc)
                result.traceback = tb.format_exc()
                if isinstance(exc, KeyboardInterrupt):
                    raise
            finally:
                done.set()
                if timer is not None:
                    timer.cancel()
                if km is not None:
                    if pool is not None:
                        pool.release(km, task.run_id)
                    else:
                        from .kernels import shutdown

                        threading.Thread(target=shutdown, args=(km,), daemon=True).start()
            if timed_out.is_set():
                result.status = "failed"
                result.ename = "StepTimeoutError"
                result.evalue = (f"step {task.step!r} did not finish within its timeout of "
                                 f"{task.timeout:g}s and was stopped")
            if pool is not None and pool.was_cancelled(task.run_id):
                result.status = "cancelled"
            result.finished_at = time.time()
            log_file.write(f"--- step {task.step} {result.status} in "
                           f"{result.duration:.2f}s ---\n")
            if result.ename:
                log_file.write(f"{result.ename}: {result.evalue}\n")
        store = open_artifacts(task.artifacts_url)
        if os.path.exists(out_path):
            result.executed_notebook = store.put_file(out_path, ".ipynb").uri
        result.log_uri = store.put_file(log_path, ".log").uri if os.path.exists(log_path) else None
        result.records = read_file(context["tracking_path"])
        if result.status == "succeeded":
            with open(context["manifest_path"], encoding="utf-8") as f:
                result.outputs = json.load(f)["outputs"]
    except Exception as exc:  # the worker side itself failed (artifact store, disk)
        result.status = "failed" if result.status != "cancelled" else result.status
        result.ename = result.ename or type(exc).__name__
        result.evalue = result.evalue or str(exc)
        result.traceback = result.traceback or tb.format_exc()
    finally:
        result.finished_at = max(result.finished_at, time.time())
        shutil.rmtree(workdir, ignore_errors=True)
    return result
