"""Deploying: the release gate, revisions, canary, shadow, rollback, tokens (service and CLI)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.errors import ConflictError, InvalidSpecError, NotBlessedError, NotFoundError
from jupyter_mlplat.pipeline.marshal import save_value
from jupyter_mlplat.serving.deploy import DeployService, hash_token
from jupyter_mlplat.tracking.flavors import save_model

from .conftest import Cli


@pytest.fixture
def service() -> Any:
    svc = DeployService(MLPlat())
    yield svc
    svc.store.close()


def _version(service: DeployService, min_value: float) -> int:
    """Register a version of "churn" judged by a policy with ``min_value`` (blessed or not)."""
    reg = service.registry
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)  # accuracy below 1
    reg.set_policy("churn", {"metric": "accuracy", "min_value": min_value})
    store = service.store
    pid = store.pipeline_id("nb", "/nb.ipynb")
    run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/nb.ipynb",
                              parameters={}, options={}, steps=["train"])
    saved = save_model(LogisticRegression().fit(X, y), name="churn", sample_input=X[:3],
                       store=reg.artifacts)
    mv = reg.register("churn", asdict(saved), run_id=run_id)
    ref = {k: save_value(v, name=k, step="t", store=reg.artifacts).to_dict()
           for k, v in (("x", X), ("y", y))}
    store.add_eval_set(run_id, None, x=ref["x"], y=ref["y"], slices=None, slices_name=None,
                       count=200)
    reg.evaluate_run(run_id)
    return mv.version


def test_deploy_gate_revisions_canary_shadow_rollback(service: DeployService) -> None:
    v1 = _version(service, 0.5)          # blessed
    v2 = _version(service, 0.999)        # rejected
    first = service.deploy("churn")
    assert first.endpoint.routes[0].version == v1 and first.token and not first.forced
    assert service.store.endpoint_row("churn").token_hash == hash_token(first.token)
    with pytest.raises(NotBlessedError, match="not blessed: rejected"):
        service.deploy("churn", v2)
    with pytest.raises(InvalidSpecError, match="needs a reason"):
        service.deploy("churn", v2, force=True)
    canary = service.deploy(f"churn@{v2}", traffic=10, force=True, reason="try the new one")
    assert canary.forced and canary.token is None  # the endpoint keeps its token
    assert [(r.version, r.weight) for r in canary.endpoint.routes] == [(v1, 90), (v2, 10)]
    [override] = service.store.overrides(service.store.model_version("churn", v2).id)
    assert override.reason == "try the new one"
    shadowed = service.deploy("churn", v1, shadow=f"churn@{v2}", shadow_share=0.25)
    assert shadowed.endpoint.shadow.version == v2 and shadowed.endpoint.shadow.share == 0.25
    back = service.rollback("churn")
    assert [(r.version, r.weight) for r in back.routes] == [(v1, 90), (v2, 10)]
    lineage = service.registry.lineage(f"churn@{v2}")["endpoints"]
    assert [(e["revision"], e["weight"], e["shadow"]) for e in lineage] == [
        (2, 10, False), (3, 0, True), (4, 10, False)]
    history = service.describe("churn").revisions
    assert [r.action for r in history] == ["deploy", "traffic", "deploy", "rollback"]
    assert history[1].forced and history[1].reason == "try the new one"
    assert {r.actor for r in history} == {service.config.owner}
    states = service.store.serving_states()
    assert [(s["name"], s["revision"]) for s in states] == [("churn", 4)]
    gone = service.undeploy("churn")
    assert not gone.deployed and service.store.serving_states() == []
    with pytest.raises(ConflictError, match="not deployed"):
        service.undeploy("churn")


def test_every_version_taking_traffic_passes_the_gate(service: DeployService) -> None:
    v1 = _version(service, 0.5)          # blessed
    v2 = _version(service, 0.999)        # rejected
    service.deploy("churn", v1)
    with pytest.raises(NotBlessedError, match=f"v{v2} is not blessed"):
        service.deploy("churn", v1, traffic={f"churn@{v1}": 0, f"churn@{v2}": 100})
    forced = service.deploy("churn", v1, traffic={f"churn@{v1}": 50, f"churn@{v2}": 50},
                            force=True, reason="compare them live")
    assert forced.forced
    assert service.store.overrides(service.store.model_version("churn", v2).id)


def test_rollback_keeps_who_may_call(service: DeployService) -> None:
    _version(service, 0.5)
    service.deploy("churn", public=True)
    service.deploy("churn", public=False)
    assert not service.rollback("churn").public


def test_bad_deploys_are_clear_errors(service: DeployService) -> None:
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        service.deploy("nope")
    v1 = _version(service, 0.5)
    with pytest.raises(ConflictError, match="canary needs a version already serving"):
        service.deploy("churn", v1, traffic=10)
    service.deploy("churn")
    with pytest.raises(InvalidSpecError, match="1-99"):
        service.deploy("churn", v1, traffic=100)
    with pytest.raises(InvalidSpecError, match="sum to 100"):
        service.deploy("churn", v1, traffic={f"churn@{v1}": 50})
    with pytest.raises(InvalidSpecError, match="endpoint name"):
        service.deploy("churn", endpoint="bad name")
    with pytest.raises(NotFoundError, match="no endpoint"):
        service.rollback("other")
    with pytest.raises(ConflictError, match="no earlier revision"):
        service.rollback("churn")


def test_public_endpoints_have_no_token_and_rotation(service: DeployService) -> None:
    _version(service, 0.5)
    public = service.deploy("churn", endpoint="open", public=True)
    assert public.token is None and public.endpoint.public
    private = service.deploy("churn", endpoint="closed")
    rotated = service.rotate_token("closed")
    assert rotated.token and rotated.token != private.token
    assert service.store.endpoint_row("closed").token_hash == hash_token(rotated.token)


@pytest.mark.timeout(120)
def test_cli_deploy_endpoints_rollback(cli: Cli, tmp_path: Path) -> None:
    svc = DeployService(MLPlat())
    try:
        v1 = _version(svc, 0.5)
        _version(svc, 0.5)
    finally:
        svc.store.close()
    out = cli("deploy", f"churn@{v1}").stdout
    assert "churn@1 100%" in out and "token (shown once" in out
    doc = cli.json("deploy", "churn", "--canary", "20")
    assert [(r["version"], r["weight"]) for r in doc["endpoint"]["routes"]] == [(1, 80), (2, 20)]
    assert doc["token"] is None
    listing = cli.json("endpoints")["endpoints"]
    assert [e["name"] for e in listing] == ["churn"]
    shown = cli("endpoints", "show", "churn").stdout
    assert "r1" in shown and "r2" in shown and "traffic" in shown
    assert cli.json("rollback", "churn")["routes"][0]["weight"] == 100
    token = cli.json("endpoints", "token", "churn", "--rotate")["token"]
    assert len(token) > 30
    assert "needs --reason" in cli.usage_error("deploy", "churn", "--force")
    assert "--rotate" in cli.usage_error("endpoints", "token", "churn")
    assert "undeployed" in cli("undeploy", "churn").stdout


@pytest.mark.timeout(180)
def test_batch_predict_keeps_rows_aligned(service: DeployService, tmp_path: Path,
                                          cli: Cli) -> None:
    import pandas as pd

    from jupyter_mlplat.serving.batch import batch_predict

    v1 = _version(service, 0.5)
    model = service.registry.load(f"churn@{v1}").model
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    frames = []
    for i, n in enumerate((120, 7, 300)):
        frame = pd.DataFrame(rng.normal(size=(n, 2)), columns=["a", "b"])
        frame["row"] = np.arange(n) + 1000 * i
        frames.append(frame)
        frame[["a", "b", "row"]].to_parquet(data / f"f{i}.parquet")
        frame[["a", "b"]].to_csv(data / f"f{i}.csv", index=False)
    # the tensor signature takes the two feature columns; "row" rides along
    seen: list[tuple[int, int]] = []
    result = batch_predict(f"churn@{v1}", str(data / "*.parquet"), str(tmp_path / "out"),
                           proba=True, columns=["a", "b"],
                           on_progress=lambda d, t: seen.append((d, t)))
    assert result.rows == 427 and len(result.files) == 3 and seen[-1] == (3, 3)
    got = pd.concat([pd.read_parquet(f) for f in result.files], ignore_index=True)
    expected = pd.concat([f[["a", "b"]] for f in frames], ignore_index=True)
    np.testing.assert_array_equal(got[["a", "b"]].to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(got["row"], pd.concat([f["row"] for f in frames]))
    np.testing.assert_array_equal(got["prediction"], model.predict(expected.to_numpy()))
    np.testing.assert_allclose(got["proba_1"], model.predict_proba(expected.to_numpy())[:, 1])

    out = cli("batch-predict", f"churn@{v1}", str(data / "*.csv"), "-o", tmp_path / "csv-out",
              "--no-columns").stdout
    assert "427 rows from 3 file(s)" in out
    csv = pd.concat([pd.read_csv(f) for f in sorted((tmp_path / "csv-out").glob("part-*.csv"))],
                    ignore_index=True)
    assert list(csv.columns) == ["prediction"] and len(csv) == 427
    assert "no input files match" in cli.usage_error("batch-predict", "churn", "nothing/*.csv",
                                                     "-o", tmp_path / "x")
    assert "columns ['zz'] are not in the input" in cli.usage_error(
        "batch-predict", "churn", str(data / "*.csv"), "-o", tmp_path / "y", "--columns", "zz")
    assert "already holds part-* files" in cli.usage_error(
        "batch-predict", "churn", str(data / "*.csv"), "-o", tmp_path / "csv-out")
