"""Firing a notebook target: a real papermill job on a real kernel, recorded as a run."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.pipeline.runs import RunService
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.store.artifacts import ArtifactStore
from jupyter_mlplat.store.sql import Store

from .conftest import notebook

TYPES = (
    "import json, pathlib\n"
    "import jupyter_mlplat as mlp\n"
    "seen = {k: type(v).__name__ for k, v in dict(label=label, epochs=epochs, tags=tags,\n"
    "        rate=rate, fast=fast, cfg=cfg, sizes=sizes).items()}\n"
    "print(json.dumps(seen))\n"
    "mlp.log_param('seen', seen)\n"
    "mlp.log_metric('epochs_x2', epochs * 2)\n"
    "assert tags == ['x', 'y'] and cfg == {'k': [1, 2]} and label == 'v2'\n"
    "assert sizes == (3, 4) and rate == 2.0\n"
    "pathlib.Path('cwd.txt').write_text(str(pathlib.Path.cwd()))"
)


def test_parameters_keep_their_types_and_the_run_records_it(service, store, config, loops,
                                                            tmp_path: Path) -> None:
    nb = notebook(tmp_path, "typed",
                  "label = 'v1'\nepochs = 1\ntags = ['a']\nrate = 0.5\nfast = False\n"
                  "cfg = {'k': []}\nsizes = (1, 2)", TYPES)
    s = service.create({"notebook": str(nb), "cron": "@daily", "paused": True, "parameters": {
        "label": "v2", "epochs": 21, "tags": ["x", "y"], "rate": 2, "fast": True,
        "cfg": {"k": [1, 2]}, "sizes": [3, 4]}})
    assert s.parameters["rate"] == 2.0 and s.parameters["sizes"] == [3, 4]  # as JSON keeps them
    loop = loops()
    pending = service.run_now(s.id)
    assert loop.tick() == [pending.id]
    assert loop.drain(120)
    firing = service.firing(pending.id)
    assert firing.status == "succeeded", firing.error
    assert firing.run_status == "succeeded" and firing.executed_notebook
    run = RunService(config, store=store).describe(firing.run_id)
    assert run.owner == config.owner and run.notebook == str(nb)
    assert run.parameters["tags"] == ["x", "y"]
    assert run.params["seen"] == {"label": "str", "epochs": "int", "tags": "list",
                                  "rate": "float", "fast": "bool", "cfg": "dict",
                                  "sizes": "tuple"}
    assert run.metrics["epochs_x2"] == 42
    (step,) = run.steps
    assert step.name == "notebook" and step.executed_notebook == firing.executed_notebook
    assert (tmp_path / "cwd.txt").read_text() == str(tmp_path)  # ran in its own folder
    executed = json.loads(ArtifactStore(config.artifacts_url).read_bytes(
        firing.executed_notebook))
    cells = {tuple(c["metadata"].get("tags", [])): c for c in executed["cells"]}
    injected = "".join(cells[("injected-parameters",)]["source"])
    assert "label = \"v2\"" in injected and "tags = [\"x\", \"y\"]" in injected
    assert "sizes = (3, 4)" in injected and "rate = 2.0" in injected
    outputs = ["".join(o.get("text", "")) for c in executed["cells"]
               for o in c.get("outputs", [])]
    assert any('"tags": "list"' in text for text in outputs)


def test_a_failing_notebook_records_its_executed_notebook_and_error(service, store, config,
                                                                    loops, tmp_path: Path
                                                                    ) -> None:
    nb = notebook(tmp_path, "broken", "n = 1", "print('before the error')",
                  "raise ValueError(f'bad input {n}')")
    s = service.create({"notebook": str(nb), "cron": "@daily", "paused": True, "parameters": {"n": 5}})
    loop = loops()
    pending = service.run_now(s.id)
    loop.tick()
    assert loop.drain(120)
    firing = service.firing(pending.id)
    assert firing.status == "failed" and firing.run_status == "failed"
    assert "ValueError" in firing.error and "bad input 5" in firing.error
    assert firing.executed_notebook is not None
    run = RunService(config, store=store).describe(firing.run_id)
    (step,) = run.steps
    assert step.ename == "ValueError" and step.error_cell_index is not None
    assert "before the error" in RunService(config, store=store).logs(firing.run_id)


@pytest.mark.parametrize("own, default", [(1.5, 0.0), (None, 1.5)])
def test_a_notebook_past_its_timeout_is_stopped(service, loops, tmp_path: Path,
                                                own: float | None, default: float) -> None:
    """The schedule's timeout, else the scheduler's default one (a notebook without a timeout
    never runs for ever)."""
    nb = notebook(tmp_path, "slow", "seconds = 60", "import time\ntime.sleep(seconds)")
    s = service.create({"notebook": str(nb), "cron": "@daily", "paused": True,
                        "timeout": own})
    loop = loops(config=MLPlat(scheduler_timeout=default))
    pending = service.run_now(s.id)
    loop.tick()
    assert loop.drain(60)
    firing = service.firing(pending.id)
    assert firing.status == "failed" and "timeout of 1.5s" in firing.error
    assert firing.duration is not None and firing.duration < 30


WHOAMI = (
    "import json, os\n"
    "import jupyter_mlplat as mlp\n"
    "from jupyter_mlplat.config import MLPlat\n"
    "mlp.log_param('owner_in_kernel', MLPlat().owner)\n"
    "mlp.log_param('env', {k: v for k, v in os.environ.items() if v})"
)


def _pipeline(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    step = nbformat.v4.new_code_cell(WHOAMI)
    step.metadata["mlplat"] = {"step": "whoami"}
    nb.cells = [params, step]
    path = folder / "whoami_pipeline.ipynb"
    nbformat.write(nb, str(path))
    return path


SECRETS = {"MLPLAT_SMTP_PASSWORD": "smtp-secret", "JUPYTERHUB_API_TOKEN": "hub-secret",
           "MLPLAT_SERVICE_TOKEN": "service-secret", "PGPASSWORD": "pg-secret",
           "JPY_API_TOKEN": "jpy-secret"}


def test_a_scheduler_for_another_owner_runs_each_firing_as_that_owner_without_its_secrets(
        config, loops, monkeypatch, tmp_path: Path) -> None:
    """Both targets, a notebook and a pipeline: the run is bob's, ``mlp`` in the kernel acts as
    bob, and the kernels get an allow-listed environment: none of the scheduler's tokens and
    passwords, the variables ``scheduler_kernel_env`` names."""
    for name, value in {**SECRETS, "TEAM_SETTING": "kept"}.items():
        monkeypatch.setenv(name, value)
    nb = notebook(tmp_path, "whoami", "x = 1", WHOAMI)
    bob_store = Store(config.store_url, "bob")
    try:
        bob = ScheduleService(MLPlat(owner="bob"), store=bob_store)
        ids = [bob.create({"notebook": str(nb), "cron": "@daily", "paused": True}).id,
               bob.create({"notebook": str(_pipeline(tmp_path)), "cron": "@daily",
                           "paused": True, "target": "pipeline"}).id]
        pending = [bob.run_now(sid) for sid in ids]
        mine = loops()  # the default: only its own user's schedules
        assert mine.tick() == []
        scheduler = loops(config=MLPlat(scheduler_kernel_env="TEAM_*", dask_workers=1),
                          owners=["bob"])
        assert scheduler.tick() == [p.id for p in pending]
        assert scheduler.drain(180)
        for firing in (bob.firing(p.id) for p in pending):
            assert firing.status == "succeeded", firing.error
            run = bob_store.run_row(firing.run_id)
            assert run.owner == "bob"
            params = {p.name: p.value for p in bob_store.params([run.id])}
            assert params["owner_in_kernel"] == "bob"
            env = params["env"]
            assert not set(SECRETS) & set(env), sorted(env)
            assert not any(value in env.values() for value in SECRETS.values())
            assert env["TEAM_SETTING"] == "kept" and env["PATH"]
            assert env["JUPYTERHUB_USER"] == "bob"
            assert env["MLPLAT_STORE_URL"] == config.store_url  # one owner: its own store
    finally:
        bob_store.close()
