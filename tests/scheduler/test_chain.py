"""retrain -> bless -> deploy, end to end: scheduled firings of a real training notebook, the
model's validation policy, and a real serve process that picks up (or not) the new version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from jupyter_mlplat.scheduler.actions import DeployFence, deploy_if_blessed
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.schemas import DeployIfBlessed
from jupyter_mlplat.serving.deploy import DeployService
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.artifacts import ArtifactStore

from .conftest import claim, notebook, wait_for

TRAIN = """\
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
import jupyter_mlplat as mlp

rng = np.random.default_rng(seed)
X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
y = 3 * X.a - 2 * X.b + noise * rng.normal(size=400)
model = LinearRegression().fit(X[:300], y[:300])
mlp.set_policy("churn", metric="r2", min_value=0.9)
mlp.log_model(model, "churn", sample_input=X[:5])
mlp.log_eval(X[300:], y[300:])
"""
ROWS = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [0.5, -1.0]]}}


def _serve() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlplat.cli.serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving on "):
        proc.kill()
        raise AssertionError(f"no URL: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[-1]


def _served_version(url: str) -> str | None:
    request = urllib.request.Request(f"{url}/endpoints/churn/invocations", method="POST",
                                     data=json.dumps(ROWS).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.headers["X-Model-Version"]
    except urllib.error.HTTPError:
        return None


def _baseline(config, store, artifacts) -> None:
    """churn v1, blessed and serving the public endpoint ``churn`` (yesterday's retrain)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from jupyter_mlplat.tracking.flavors import save_model
    from jupyter_mlplat.tracking.registry import ModelRegistry

    X = pd.DataFrame(np.random.default_rng(9).normal(size=(50, 2)), columns=["a", "b"])
    saved = save_model(LinearRegression().fit(X, 3 * X.a - 2 * X.b), name="churn",
                       sample_input=X[:5], store=artifacts)
    mv = ModelRegistry(store, artifacts).register("churn", saved.__dict__, run_id=None)
    store.add_validation(mv.id, run_id=None, status="blessed", policy={},
                         report={"status": "blessed"})
    DeployService(config, store=store, artifacts=artifacts).deploy("churn", public=True)


def test_blessed_retrain_is_deployed_and_rejected_one_is_not(config, store, clock, loops,
                                                             tmp_path: Path) -> None:
    _baseline(config, store, ArtifactStore(config.artifacts_url))
    nb = notebook(tmp_path, "retrain", "noise = 0.1\nseed = 0", TRAIN)
    service = ScheduleService(config, store=store, clock=clock)
    s = service.create({
        "notebook": str(nb), "cron": "0 3 * * *", "timezone": "Europe/Berlin",
        "on_success": {"deploy_if_blessed": {"model": "churn", "endpoint": "churn"}}})
    loop = loops(clock=clock)
    proc, url = _serve()
    try:
        assert wait_for(lambda: _served_version(url) == "churn@1", timeout=20)

        clock.set(datetime(2026, 3, 29, 1, 0, 1, tzinfo=UTC))  # 03:00 CEST on 29 March
        (nightly,) = loop.tick()
        assert loop.drain(120)
        fired = service.firing(nightly)
        assert fired.status == "succeeded", fired.error
        assert fired.slot_at.isoformat() == "2026-03-29T03:00:00+02:00"
        assert (fired.on_success.status, fired.on_success.version) == ("deployed", 2)
        assert wait_for(lambda: _served_version(url) == "churn@2", timeout=20)

        service.update(s.id, {"parameters": {"noise": 25.0}})  # a broken upstream feed
        rerun = service.run_now(s.id)
        loop.tick()
        assert loop.drain(120)
        fired = service.firing(rerun.id)
        assert fired.status == "succeeded", fired.error  # the run itself worked
        assert (fired.on_success.status, fired.on_success.version) == ("not_blessed", 3)
        assert "rejected" in fired.on_success.detail and "r2" in fired.on_success.detail
        time.sleep(1.5)  # longer than a serve process takes to apply a new revision
        assert _served_version(url) == "churn@2"
        endpoint = DeployService(config, store=store).describe("churn")
        assert [r.routes[0].version for r in endpoint.revisions] == [1, 2]
        assert [f.on_success.status for f in service.history(s.id).firings] == [
            "not_blessed", "deployed"]
    finally:
        proc.terminate()
        proc.wait(15)


def _blessed_run(store, artifacts, registry, seed: int) -> tuple[str, int]:
    """A run that registered a blessed version of ``churn``: (run id, version)."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from jupyter_mlplat.tracking.flavors import save_model

    pid = store.pipeline_id("p", "/p.ipynb")
    run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/p.ipynb",
                              parameters={}, options={}, steps=["notebook"])
    X = np.random.default_rng(seed).normal(size=(40, 2))
    saved = save_model(LinearRegression().fit(X, X[:, 0]), name="churn", sample_input=X[:3],
                       store=artifacts)
    mv = registry.register("churn", saved.__dict__, run_id=run_id)
    store.add_validation(mv.id, run_id=run_id, status="blessed", policy={},
                         report={"status": "blessed"})
    return run_id, mv.version


def test_the_deploy_commits_only_under_its_firings_fence(config, store, clock,
                                                          tmp_path: Path) -> None:
    """The endpoint revision is written in the transaction that checks the fence: a scheduler
    that passed the early check and then lost the schedule (paused between the two) deploys
    nothing; nor does a firing deploy an older version than its schedule deployed before."""
    from jupyter_mlplat.tracking.registry import ModelRegistry

    artifacts = ArtifactStore(config.artifacts_url)
    registry = ModelRegistry(store, artifacts)
    run_1, v1 = _blessed_run(store, artifacts, registry, 0)
    run_2, v2 = _blessed_run(store, artifacts, registry, 1)
    nb = notebook(tmp_path, "retrain", "seed = 0")
    sid = ScheduleService(config, store=store, clock=clock).create(
        {"notebook": str(nb), "cron": "@hourly"}).id
    spec = DeployIfBlessed(model="churn", public=True)

    class PausedAfterTheCheck:
        """The owner's store, as seen by a scheduler that is paused right after its early
        fence check: another scheduler takes the schedule over before the deploy writes."""

        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def still_fenced(self, firing_id, holder):
            ok = self.inner.still_fenced(firing_id, holder)
            # A's lease (2 s) runs out; B takes the schedule as soon as it does, no sweep
            wait_for(lambda: self.inner.acquire_lease(sid, "B", timedelta(seconds=30))
                     is not None, timeout=10)
            return ok

    lost = claim(store, sid, "A", lease=2.0)  # its lease outlasts the claim's three steps
    outcome = deploy_if_blessed(spec, run_id=run_2, config=config,
                                store=PausedAfterTheCheck(store), artifacts=artifacts,
                                fence=DeployFence(firing_id=lost.id, holder="A"))
    assert outcome.status == "not_committed" and outcome.version == v2
    assert "lost the schedule" in outcome.detail
    assert store.endpoint_revisions("churn") == []  # the endpoint exists; nothing deployed

    store.release_leases("B")
    with store.session() as s:  # the next slot, for B's next firing
        s.execute(update(orm.Schedule).where(orm.Schedule.id == sid)
                  .values(next_fire_at=datetime(2026, 3, 28, tzinfo=UTC)))
    newer = claim(store, sid, "B")
    fence = DeployFence(firing_id=newer.id, holder="B")
    done = deploy_if_blessed(spec, run_id=run_2, config=config, store=store,
                             artifacts=artifacts, fence=fence)
    assert (done.status, done.version) == ("deployed", v2)
    assert store.update_firing(newer.id, "B", status="succeeded", finish=True,
                               actions=done.model_dump(mode="json"))
    with store.session() as s:
        s.execute(update(orm.Schedule).where(orm.Schedule.id == sid)
                  .values(next_fire_at=datetime(2026, 3, 29, tzinfo=UTC)))
    older = claim(store, sid, "B")  # an overlapping firing that registered the older version
    late = deploy_if_blessed(spec, run_id=run_1, config=config, store=store,
                             artifacts=artifacts,
                             fence=DeployFence(firing_id=older.id, holder="B"))
    assert (late.status, late.version) == ("not_committed", v1)
    assert f"already deployed churn v{v2}" in late.detail
    revisions = store.endpoint_revisions("churn")
    assert [r.routes[0]["version"] for r in revisions] == [v2]
