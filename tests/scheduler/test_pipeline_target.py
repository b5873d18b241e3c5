"""Firing a pipeline target: the notebook's steps through the PipelineExecutor on the loop's
(real, local) Dask cluster, the run owned by the schedule's owner and linked from the firing."""

from __future__ import annotations

from pathlib import Path

import nbformat

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.pipeline.runs import RunService
from jupyter_mlplat.scheduler.service import ScheduleService


def _pipeline(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 2\nlabel = 'a'\nsizes = (1,)\nrate = 0.5")
    params.metadata["tags"] = ["parameters"]
    make = nbformat.v4.new_code_cell("values = list(range(n))")
    make.metadata["mlplat"] = {"step": "make"}
    total = nbformat.v4.new_code_cell(
        "import jupyter_mlplat as mlp\n"
        "total = sum(values)\n"
        "mlp.log_metric('total', total)\n"
        "assert isinstance(label, str)\n"
        "assert isinstance(sizes, tuple) and isinstance(rate, float), (sizes, rate)\n"
        "assert total > 0, 'nothing to add up'")
    total.metadata["mlplat"] = {"step": "total"}
    nb.cells = [params, make, total]
    path = folder / "pipe.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_a_pipeline_target_runs_its_steps_through_the_executor(mlplat_isolated_env, loops,
                                                               tmp_path: Path) -> None:
    config = MLPlat(dask_workers=1)
    service = ScheduleService(config)
    s = service.create({"notebook": str(_pipeline(tmp_path)), "cron": "@daily",
                        "target": "pipeline", "paused": True,
                        "parameters": {"n": 5, "label": "b", "sizes": [5, 6], "rate": 1}})
    loop = loops(config=config)
    pending = service.run_now(s.id)
    loop.tick()
    assert loop.drain(180)
    firing = service.firing(pending.id)
    assert firing.status == "succeeded", firing.error
    run = RunService(config).describe(firing.run_id)
    assert run.owner == config.owner and run.status == "succeeded"
    assert [st.name for st in run.steps] == ["make", "total"]
    assert run.metrics["total"] == 10
    assert run.parameters == {"n": 5, "label": "b", "sizes": [5, 6], "rate": 1.0}
    assert firing.executed_notebook == run.steps[-1].executed_notebook

    service.update(s.id, {"parameters": {"n": 0}})  # the total step fails on it
    pending = service.run_now(s.id)
    loop.tick()
    assert loop.drain(180)
    firing = service.firing(pending.id)
    assert firing.status == "failed" and firing.run_status == "failed"
    assert "nothing to add up" in firing.error
    failed = RunService(config).describe(firing.run_id).steps[-1]
    assert failed.status == "failed" and firing.executed_notebook == failed.executed_notebook
