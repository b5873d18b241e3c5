"""Two users run pipelines at once against one PostgreSQL store and lose no rows.

OS processes (``jupyter mlplat run``, each with its own real LocalCluster and kernels) run a
diamond-shaped notebook as alice and as bob, two runs each, on the same database at the same
time: parallel steps log params, metric curves and versions of one model name. Afterwards every
run, step run, param, metric point, model version and artifact link is there, once, under its
owner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jupyter_mlplat.store import orm
from jupyter_mlplat.store.sql import Store
from tests.pipeline.nbbuild import code, notebook, write

from .backends import only_postgresql

OWNERS = ("alice", "bob")
RUNS_EACH = 2
STEPS = ("data", "left", "right", "report")
CURVE = 12  # metric points each of data, left and right logs

IMPORTS = "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n" \
          "import jupyter_mlplat as mlp"
DATA = f"""
rng = np.random.default_rng(seed)
X = rng.normal(size=(rows, 3))
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
mlp.log_param("rows", rows)
for i in range({CURVE}):
    mlp.log_metric("loss", 1.0 / (i + 1), step=i)
"""


def _branch(name: str, c: float) -> str:
    return f"""
{name} = LogisticRegression(C={c}).fit(X, y)
mlp.log_param("C", {c})
for i in range({CURVE}):
    mlp.log_metric("{name}_curve", i * 0.5, step=i)
{name}_acc = float(({name}.predict(X) == y).mean())
mlp.log_model({name}, "shared_name", sample_input=X[:3])
"""


REPORT = """
best = max(left_acc, right_acc)
mlp.log_metric("best", best)
mlp.log_param("winner", "left" if left_acc >= right_acc else "right")
"""


@pytest.fixture
def diamond(tmp_path: Path) -> Path:
    return write(tmp_path, "diamond", notebook(
        code(IMPORTS, mlplat={"role": "imports"}),
        code("seed = 0\nrows = 300", tags=["parameters"]),
        code(DATA, mlplat={"step": "data"}),
        code(_branch("left", 1.0), mlplat={"step": "left"}),
        code(_branch("right", 0.05), mlplat={"step": "right"}),
        code(REPORT, mlplat={"step": "report"}),
    ))


def _start(owner: str, seed: int, url: str, notebook_path: Path, home: Path
           ) -> subprocess.Popen[str]:
    """``jupyter mlplat run`` as ``owner`` (every step forced: nothing comes from the cache)."""
    env = {**os.environ, "MLPLAT_STORE_URL": url, "JUPYTERHUB_USER": owner,
           "MLPLAT_ARTIFACTS_URL": str(home / "artifacts"), "MLPLAT_LOGS_DIR": str(home / "logs"),
           "JUPYTER_DATA_DIR": str(home / "data")}
    force = [arg for step in STEPS for arg in ("--force", step)]
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlplat.cli.main", "run", str(notebook_path),
         "-p", "seed", str(seed), *force],
        cwd=notebook_path.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


@only_postgresql
@pytest.mark.timeout(300)
def test_two_users_running_pipelines_at_once_lose_no_rows(
    url: str, diamond: Path, tmp_path: Path
) -> None:
    # Each user runs the notebook twice at once, too: the same pipeline, step versions, model
    # name and output contents are then written by two processes of one owner.
    procs = [(owner, _start(owner, seed, url, diamond, tmp_path / owner))
             for seed, owner in enumerate(OWNERS) for _ in range(RUNS_EACH)]
    for owner, proc in procs:
        out = proc.communicate(timeout=240)[0]
        assert proc.returncode == 0, f"a run of {owner} failed:\n{out[-4000:]}"

    runs: list[orm.Run] = []
    for seed, owner in enumerate(OWNERS):
        store = Store(url, owner, sweep=False)
        try:
            mine = store.runs()
            assert len(mine) == RUNS_EACH
            runs += mine
            assert len({r.pipeline_id for r in mine}) == 1  # one pipeline row, raced for
            versions = store.model_versions("shared_name")
            assert [v.version for v in versions] == list(range(1, 2 * RUNS_EACH + 1))
            assert {v.owner for v in versions} == {owner}
            for run in mine:
                _check_run(store, run, owner, seed)
                assert sorted(v.step_name for v in versions if v.run_id == run.id) == [
                    "left", "right"]
            # Both runs computed the same data: its artifacts row is shared, not duplicated.
            data = [store.step_io(store.step_run(r.id, "data").id) for r in mine]
            assert len({d["X"]["sha256"] for d in data}) == 1
            assert store.count(orm.StepVersion) == len(STEPS)
            assert store.count(orm.PipelineVersion) == 1
        finally:
            store.close()

    # The runs did overlap in time: this was concurrency, not runs one after another.
    by_owner = {o: [r for r in runs if r.owner == o] for o in OWNERS}
    assert any(a.started_at < b.finished_at and b.started_at < a.finished_at
               for a in by_owner["alice"] for b in by_owner["bob"])

    # Nothing of anyone else's, nothing twice: the database holds exactly these rows.
    reader = Store(url, "alice", sweep=False)
    try:
        with reader.session() as s:
            for model, each in ((orm.Run, RUNS_EACH), (orm.StepRun, RUNS_EACH * len(STEPS)),
                                (orm.Param, RUNS_EACH * 4),
                                (orm.Metric, RUNS_EACH * (3 * CURVE + 1)),
                                (orm.ModelVersion, RUNS_EACH * 2), (orm.Model, 1),
                                (orm.Pipeline, 1)):
                counts = dict(s.execute(select(model.owner, func.count())
                                        .group_by(model.owner)).all())
                assert counts == {"alice": each, "bob": each}, model.__tablename__
    finally:
        reader.close()


def _check_run(store: Store, run: orm.Run, owner: str, seed: int) -> None:
    """Every step run, param and metric point of one run is there, in its owner's name."""
    assert (run.status, run.error, run.owner) == ("succeeded", None, owner)
    assert run.parameters["seed"] == seed

    attempts = store.step_runs(run.id, latest=False)
    assert sorted(s.step_name for s in attempts) == sorted(STEPS)
    assert {s.status for s in attempts} == {"succeeded"}  # forced: none came from the cache
    assert all(s.executed_notebook and s.finished_at for s in attempts)
    step_of = {s.id: s.step_name for s in attempts}

    params = {(step_of[p.step_run_id], p.name): p.value for p in store.params([run.id])}
    winner = params.get(("report", "winner"))
    assert winner in ("left", "right")
    assert params == {("data", "rows"): 300, ("left", "C"): 1.0, ("right", "C"): 0.05,
                      ("report", "winner"): winner}

    points: dict[tuple[str, str], list[int]] = {}
    for m in store.metrics([run.id]):
        points.setdefault((step_of[m.step_run_id], m.name), []).append(
            -1 if m.step is None else m.step)
    curve = list(range(CURVE))
    assert {k: sorted(v) for k, v in points.items()} == {
        ("data", "loss"): curve, ("left", "left_curve"): curve,
        ("right", "right_curve"): curve, ("report", "best"): [-1]}

    assert {"X", "y"} <= set(store.step_io(store.step_run(run.id, "data").id))
    assert {"left_acc", "right_acc"} <= set(
        store.step_io(store.step_run(run.id, "report").id, "in"))
