"""The Python API: ``import jupyter_mlplat as mlp; mlp.run("nb.ipynb")``.

Thin functions over the library's services; in a notebook ``run`` shows live progress as an
ipywidgets display, elsewhere it logs nothing and returns the finished run.
"""

from __future__ import annotations

import os
from typing import Any

from .config import MLPlat
from .schemas import DescribeRun


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def run(notebook: str | os.PathLike[str], parameters: dict[str, Any] | None = None, *,
        only: str | None = None, from_step: str | None = None, to: str | None = None,
        force: list[str] | tuple[str, ...] = (), dask_address: str | None = None,
        progress: bool | None = None, config: MLPlat | None = None) -> DescribeRun:
    """Run a notebook as a pipeline and return the finished run with its step results.

    Parameters
    ----------
    notebook : path
        The ``.ipynb`` whose marked cells are the steps.
    parameters : dict, optional
        Values for the notebook's parameters; types must match the defaults.
    only, from_step, to : str, optional
        Run one step, a step and its descendants, or a step and its ancestors.
    force : list of str
        Steps to run even when cached.
    dask_address : str, optional
        An existing Dask scheduler; default: a local cluster.
    progress : bool, optional
        Show a live ipywidgets table (default: when called from a notebook).
    config : MLPlat, optional
        Settings; default from the ``MLPLAT_*`` environment.

    Returns
    -------
    DescribeRun
        The run: ``.status``, ``.steps`` (each with status, duration, cached, outputs,
        metrics), ``.params``, ``.metrics``.
    """
    from .pipeline.executor import PipelineExecutor, RunReporter
    from .pipeline.runs import RunService

    config = config or MLPlat()
    if dask_address:
        config.dask_address = dask_address
    reporter: RunReporter | None = None
    if progress or (progress is None and _in_notebook()):
        from .widgets import RunProgress

        reporter = RunProgress()
    executor = PipelineExecutor(config, reporter=reporter)
    try:
        outcome = executor.run(notebook, parameters, only=only, from_step=from_step, to=to,
                               force=force)
    finally:
        executor.close()
    return RunService(config, store=executor.store).describe(outcome.run_id)


def resume(run_id: str, *, config: MLPlat | None = None) -> DescribeRun:
    """Re-run the steps of a failed, cancelled or interrupted run that did not succeed."""
    from .pipeline.executor import PipelineExecutor
    from .pipeline.runs import RunService

    config = config or MLPlat()
    executor = PipelineExecutor(config)
    try:
        outcome = executor.resume(run_id)
    finally:
        executor.close()
    return RunService(config, store=executor.store).describe(outcome.run_id)


def runs(pipeline: str | None = None, limit: int = 1000, *, config: MLPlat | None = None) -> Any:
    """Runs as a pandas DataFrame (newest first) with ``param.*`` and ``metric.*`` columns."""
    from .pipeline.runs import RunService

    return RunService(config).frame(limit=limit, pipeline=pipeline)


def get_run(run_id: str, *, config: MLPlat | None = None) -> DescribeRun:
    """One run with its steps, params, metrics and outputs."""
    from .pipeline.runs import RunService

    return RunService(config).describe(run_id)


def load_output(run: str | DescribeRun, step: str, name: str, *,
                config: MLPlat | None = None) -> Any:
    """A value that ``step`` of ``run`` produced (a variable a later step read)."""
    from .pipeline.runs import RunService

    run_id = run.id if isinstance(run, DescribeRun) else str(run)
    return RunService(config).load_output(run_id, step, name)


def cancel(run_id: str, *, config: MLPlat | None = None) -> DescribeRun:
    """Ask the process running ``run_id`` to cancel it."""
    from .pipeline.runs import RunService

    return RunService(config).cancel(run_id)


def models(*, config: MLPlat | None = None) -> Any:
    """The registered models as a pandas DataFrame: versions, newest verdict, aliases."""
    import pandas as pd

    from .tracking.service import ModelService

    listing = ModelService(config).list()
    return pd.DataFrame([m.model_dump() for m in listing.models],
                        columns=["name", "versions", "latest", "latest_verdict", "aliases",
                                 "created_at"])


def get_model(ref: str, *, config: MLPlat | None = None) -> Any:
    """One model version (``"churn@3"``, ``"churn@production"``, ``"churn"`` = newest) with its
    verdict, metrics, slices, signature and lineage (a ``DescribeModelVersion``)."""
    from .tracking.service import ModelService

    return ModelService(config).describe_version(ref)


def lineage(ref: str, *, config: MLPlat | None = None) -> Any:
    """Where a model version came from: cells -> step version -> inputs -> run -> version."""
    from .tracking.service import ModelService

    return ModelService(config).lineage(ref)


def compare(*runs: str | DescribeRun, config: MLPlat | None = None) -> Any:
    """Params and metrics of two or more runs side by side (a ``CompareRuns``)."""
    from .pipeline.runs import RunService

    ids = [r.id if isinstance(r, DescribeRun) else str(r) for r in runs]
    return RunService(config).compare(ids)


def deploy(model: str, version: int | None = None, *, endpoint: str | None = None,
           traffic: int | dict[str, int] | None = None, shadow: str | None = None,
           force: bool = False, reason: str | None = None, public: bool | None = None,
           config: MLPlat | None = None) -> Any:
    """Serve ``model`` on an endpoint: a new endpoint revision (see ``DeployService.deploy``).

    The default version is the newest blessed one; one that is not blessed is refused with its
    verdict's reasons unless ``force=True`` with a ``reason``. ``traffic``: None (all), a canary
    percentage, or ``{"churn@1": 90, "churn@2": 10}``. ``shadow``: ``"churn@4"`` mirrors traffic
    to that version. Returns a ``DeployResult``; its ``token`` (new endpoints) is shown once.
    """
    from .serving.deploy import DeployService

    return DeployService(config).deploy(model, version, endpoint=endpoint, traffic=traffic,
                                        shadow=shadow, force=force, reason=reason, public=public)


def batch_predict(model: str, data: str | list[str], output: str, *,
                  output_format: str | None = None, keep_columns: bool = True,
                  proba: bool = False, config: MLPlat | None = None) -> Any:
    """Predict with ``model`` (``"churn@production"``) over Parquet/CSV ``data`` (paths or
    globs) into the folder ``output``, on the pipeline's Dask cluster; one output file per input
    partition, rows aligned. Returns a ``BatchResult`` (files, rows, seconds)."""
    from .serving.batch import batch_predict as run

    return run(model, data, output, config=config, output_format=output_format,
               keep_columns=keep_columns, proba=proba)


def schedule(notebook: str | os.PathLike[str], cron: str, *, timezone: str = "UTC",
             parameters: dict[str, Any] | None = None, target: str = "notebook",
             name: str | None = None, on_success: dict[str, Any] | None = None,
             notify: dict[str, Any] | None = None, missed: str = "latest",
             kernel: str | None = None, timeout: float | None = None, paused: bool = False,
             config: MLPlat | None = None) -> Any:
    """Fire ``notebook`` on ``cron`` in ``timezone``; a scheduler loop runs it (the Jupyter
    server's, or ``jupyter mlplat scheduler``).

    Parameters
    ----------
    notebook : path
        The ``.ipynb`` to run.
    cron : str
        5 fields, ``"minute hour day-of-month month day-of-week"`` (``"0 3 * * *"``), or a macro
        such as ``"@daily"``; read as wall-clock time in ``timezone``.
    timezone : str
        IANA name, e.g. ``"Europe/Berlin"``.
    parameters : dict, optional
        Values for the notebook's ``parameters`` cell, injected papermill-style; each must
        have its default's type.
    target : {"notebook", "pipeline"}
        One papermill job, or the notebook's steps as a pipeline.
    name : str, optional
        Default: the notebook's file name.
    on_success : dict, optional
        ``{"deploy_if_blessed": {"model": "churn", "endpoint": "churn"}}``: deploy the version
        the run registered when its policy blessed it.
    notify : dict, optional
        ``{"webhook": "https://...", "email": ["ana@example.com"], "on": ["failure"]}``.
    missed : {"latest", "skip"}
        Slots missed while no scheduler ran: fire once, or not at all.
    kernel : str, optional
        Kernel for a notebook target (default: the notebook's own).
    timeout : float, optional
        Seconds a notebook target may run.
    paused : bool
        Create it paused.

    Returns
    -------
    DescribeSchedule
        With ``id``, ``next_fire_at`` and ``next_fire_times``.
    """
    from .scheduler.service import ScheduleService

    request = {"notebook": os.fspath(notebook), "cron": cron, "timezone": timezone,
               "parameters": parameters or {}, "target": target, "name": name,
               "on_success": on_success or {}, "notify": notify or {}, "missed": missed,
               "kernel": kernel, "timeout": timeout, "paused": paused}
    return ScheduleService(config).create(request)


def share(kind: str, name: str, project: str | None, *, config: MLPlat | None = None) -> Any:
    """Share your ``kind`` (``"model"``, ``"endpoint"``, ``"pipeline"``, ``"schedule"``)
    ``name`` with ``project`` (one you belong to): its members may read it, never change it.
    ``project=None`` makes it private again. Returns a ``SharedItem``."""
    from .tracking.sharing import SharingService

    service = SharingService(config)
    try:
        if project is None:
            return service.unshare(kind, name)
        return service.share(kind, name, project)
    finally:
        service.close()


def shared(*, mine: bool = False, config: MLPlat | None = None) -> Any:
    """What other users shared with your projects (``mine=True``: what you shared) as a pandas
    DataFrame: kind, owner, name, id, project. Load a shared model with
    ``mlp.load_model("OWNER/NAME@VERSION_OR_ALIAS")`` (safe formats only)."""
    import pandas as pd

    from .tracking.sharing import SharingService

    service = SharingService(config)
    try:
        listing = service.my_shares() if mine else service.shared_with_me()
    finally:
        service.close()
    return pd.DataFrame([s.model_dump() for s in listing.shared],
                        columns=["kind", "owner", "name", "id", "project"])


def create_project(name: str, *, members: list[str] | None = None,
                   hub_group: str | None = None, description: str = "",
                   config: MLPlat | None = None) -> Any:
    """A new project of yours with ``members`` (user names), or following the JupyterHub group
    ``hub_group``; the project and its members are created together or not at all. Returns a
    ``ProjectInfo``."""
    from .tracking.sharing import SharingService

    service = SharingService(config)
    try:
        return service.create_project(name, hub_group=hub_group, description=description,
                                      members=members)
    finally:
        service.close()
