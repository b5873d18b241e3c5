"""ModelRegistry on a real SQLite store and artifact store: versions, aliases, verdicts, release."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from jupyter_mlplat.errors import InvalidSpecError, NotBlessedError, NotFoundError
from jupyter_mlplat.pipeline.marshal import save_value
from jupyter_mlplat.store.artifacts import ArtifactStore
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.flavors import save_model
from jupyter_mlplat.tracking.registry import ModelRegistry, parse_ref


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'reg.db'}", "alice")
    reg = ModelRegistry(store, ArtifactStore(str(tmp_path / "artifacts")))
    yield reg
    store.close()


def _data(n: int = 600, seed: int = 0, noise: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "seg": rng.choice(["x", "y", "tiny"], n, p=[0.5, 0.47, 0.03])})
    y = ((X.a + 0.5 * X.b + rng.normal(scale=0.3, size=n)) > 0).astype(int).to_numpy()
    if noise:  # flip labels of segment y: a model trained on it is worse there
        flip = (X.seg == "y").to_numpy() & (rng.random(n) < noise)
        y = np.where(flip, 1 - y, y)
    return X, y


def _fit(X: pd.DataFrame, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression().fit(X[["a", "b"]].to_numpy(), y)


def _run(reg: ModelRegistry, name: str = "nb") -> str:
    store = reg.store
    pid = store.pipeline_id(name, f"/tmp/{name}.ipynb")
    return store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/x.ipynb",
                            parameters={}, options={}, steps=["train"])


def _register(reg: ModelRegistry, model: Any, run_id: str, X: pd.DataFrame, name: str = "churn"
              ) -> Any:
    saved = save_model(model, name=name, sample_input=X[["a", "b"]].to_numpy()[:5],
                       store=reg.artifacts)
    return reg.register(name, asdict(saved), run_id=run_id, step_name="train",
                        step_version="sv1", notebook_path="/x.ipynb", cell_ids=["c1", "c2"],
                        input_artifacts={"df": "ab" * 32})


def _log_eval(reg: ModelRegistry, run_id: str, X: pd.DataFrame, y: np.ndarray) -> None:
    def ref(value: Any, label: str) -> dict[str, Any]:
        return save_value(value, name=label, step="t", store=reg.artifacts).to_dict()

    reg.store.add_eval_set(run_id, None, x=ref(X[["a", "b"]].to_numpy(), "x"), y=ref(y, "y"),
                           slices=ref(X.seg.to_numpy(), "s"), slices_name="seg", count=len(y))


def test_parse_ref() -> None:
    assert parse_ref("churn") == ("churn", None)
    assert parse_ref("churn@3") == ("churn", "3")
    assert parse_ref("churn@production") == ("churn", "production")
    for bad in ("", "churn@", "bad name", "@3", "a/b"):
        with pytest.raises(InvalidSpecError):
            parse_ref(bad)


def test_versions_resolve_and_load_identical(registry: ModelRegistry) -> None:
    X, y = _data()
    run_id = _run(registry)
    v1 = _register(registry, _fit(X, y), run_id, X)
    v2 = _register(registry, _fit(X[:300], y[:300]), run_id, X)
    assert (v1.version, v2.version) == (1, 2)
    assert registry.resolve("churn")[1].version == 2
    assert registry.resolve("churn@1")[1].version == 1
    assert registry.resolve("churn@latest")[1].version == 2
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.resolve("churn@9")
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        registry.resolve("churn@production")
    with pytest.raises(NotFoundError, match="no model 'other'"):
        registry.resolve("other")
    sample_in, sample_out = registry.sample(v1)
    loaded = registry.load("churn@1")
    assert np.array_equal(np.asarray(loaded.predict(sample_in)), np.asarray(sample_out))


def test_alias_moves_are_kept_with_who(registry: ModelRegistry) -> None:
    X, y = _data()
    run_id = _run(registry)
    _register(registry, _fit(X, y), run_id, X)
    _register(registry, _fit(X, y), run_id, X)
    registry.set_alias("churn", "production", 1, reason="first")
    registry.set_alias("churn", "production", 2)
    registry.set_alias("churn", "staging", 1)
    registry.set_alias("churn", "staging", None)
    assert registry.store.aliases("churn") == {"production": 2}
    history = registry.store.alias_history("churn")
    assert [(e.alias, e.version, e.previous) for e in history] == [
        ("production", 1, None), ("production", 2, 1), ("staging", 1, None),
        ("staging", None, 1)]
    assert {e.actor for e in history} == {"alice"}
    assert history[0].reason == "first"
    assert registry.resolve("churn@production")[1].version == 2
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.set_alias("churn", "production", 7)
    with pytest.raises(InvalidSpecError):
        registry.set_alias("churn", "latest", 1)
    with pytest.raises(InvalidSpecError):
        registry.set_alias("churn", "bad alias", 1)


def test_first_version_floors_only_then_regression_against_production(
        registry: ModelRegistry) -> None:
    X, y = _data()
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.7,
                                  "max_regression": 0.02, "slice_floor": 0.6,
                                  "min_slice_count": 30, "promote_to": "production"})
    run1 = _run(registry)
    _register(registry, _fit(X, y), run1, X)
    _log_eval(registry, run1, X, y)
    [v1] = registry.evaluate_run(run1)
    assert v1.status == "blessed", v1.summary
    assert "floors only" in (v1.verdict.note or "")
    assert v1.promoted_to == "production"
    assert registry.store.aliases("churn") == {"production": 1}
    # the tiny segment (about 18 rows) is reported and ignored, not failed
    tiny = [c for c in v1.verdict.checks if "tiny" in c.name]
    assert tiny and all(c.status == "ignored" for c in tiny)

    # a worse candidate: trained on labels flipped in segment y -> regression and slice floor
    Xn, yn = _data(seed=1, noise=0.9)
    run2 = _run(registry)
    _register(registry, _fit(Xn, yn), run2, X)
    _log_eval(registry, run2, X, y)  # like for like: both scored on run2's data
    [v2] = registry.evaluate_run(run2)
    assert v2.status == "rejected"
    assert v2.verdict.baseline_version == 1
    failed = {c.name for c in v2.verdict.checks if c.status == "failed"}
    assert "max_regression" in failed
    assert any(name.startswith("slice_floor[seg=y") for name in failed), failed
    assert registry.store.aliases("churn") == {"production": 1}  # not promoted
    # the verdict is stored and visible later; evaluating again does not judge twice
    assert registry.verdict(registry.store.model_version("churn", 2)).status == "rejected"
    assert registry.evaluate_run(run2) == []


def test_no_policy_leaves_version_unvalidated_and_not_deployable(
        registry: ModelRegistry) -> None:
    X, y = _data()
    run_id = _run(registry)
    _register(registry, _fit(X, y), run_id, X)
    [verdict] = registry.evaluate_run(run_id)
    assert verdict.status == "unvalidated" and "set_policy" in verdict.summary
    with pytest.raises(NotBlessedError, match="never validated"):
        registry.deployable("churn", 1)


def test_without_eval_data_the_logged_metric_is_judged(registry: ModelRegistry) -> None:
    X, y = _data()
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.99})
    run_id = _run(registry)
    _register(registry, _fit(X, y), run_id, X)
    registry.store.log_metrics(run_id, None, [{"name": "accuracy", "value": 0.8}])
    [verdict] = registry.evaluate_run(run_id)
    assert verdict.status == "rejected"
    assert "not like for like" in verdict.verdict.note
    assert any("0.99" in r for r in verdict.verdict.reasons())


def test_deployable_refuses_unblessed_unless_forced_with_reason(registry: ModelRegistry) -> None:
    X, y = _data()
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.999})
    run_id = _run(registry)
    _register(registry, _fit(X, y), run_id, X)
    _log_eval(registry, run_id, X, y)
    [verdict] = registry.evaluate_run(run_id)
    assert verdict.status == "rejected"
    with pytest.raises(NotBlessedError, match="not blessed: rejected: .*0.999"):
        registry.deployable("churn", 1)
    with pytest.raises(NotBlessedError, match="no blessed version"):
        registry.deployable("churn")
    with pytest.raises(InvalidSpecError, match="needs a reason"):
        registry.deployable("churn", 1, force=True)
    mv = registry.deployable("churn", 1, force=True, reason="hotfix for incident 42")
    assert mv.version == 1
    [override] = registry.store.overrides(mv.id)
    assert (override.actor, override.reason) == ("alice", "hotfix for incident 42")
    # a blessed version is released without force
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.5})
    run2 = _run(registry)
    _register(registry, _fit(X, y), run2, X)
    _log_eval(registry, run2, X, y)
    assert registry.evaluate_run(run2)[0].status == "blessed"
    assert registry.deployable("churn").version == 2


def test_policy_is_validated_and_history_kept(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidSpecError, match="max_regression"):
        registry.set_policy("churn", {"metric": "accuracy", "max_regression": -1})
    with pytest.raises(InvalidSpecError, match="metric"):
        registry.set_policy("churn", {"metric": "nope"})
    with pytest.raises(InvalidSpecError, match="extra|not permitted|unknown"):
        registry.set_policy("churn", {"metric": "accuracy", "min_valu": 0.8})
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.8})
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.8})  # same: no new row
    registry.set_policy("churn", {"metric": "f1", "min_value": 0.7})
    assert registry.policy("churn").metric == "f1"


def test_lineage_reaches_from_cells_to_the_version(registry: ModelRegistry) -> None:
    X, y = _data()
    run_id = _run(registry)
    _register(registry, _fit(X, y), run_id, X)
    registry.set_alias("churn", "production", 1)
    lin = registry.lineage("churn@production")
    assert lin["version"] == 1 and lin["cells"] == ["c1", "c2"]
    assert lin["step"] == "train" and lin["step_version"] == "sv1"
    assert lin["inputs"] == {"df": "ab" * 32}
    assert lin["run"]["id"] == run_id and lin["aliases"] == ["production"]
    assert lin["artifact"]["format"] == "skops"


def test_owners_do_not_see_each_others_models(registry: ModelRegistry, tmp_path: Path) -> None:
    X, y = _data()
    _register(registry, _fit(X, y), _run(registry), X)
    bob = Store(f"sqlite:///{tmp_path / 'reg.db'}", "bob")
    try:
        other = ModelRegistry(bob, registry.artifacts)
        with pytest.raises(NotFoundError):
            other.resolve("churn@1")
        assert bob.models() == []
    finally:
        bob.close()


def test_concurrent_registrations_get_distinct_versions(registry: ModelRegistry) -> None:
    X, y = _data()
    run_id = _run(registry)
    saved = asdict(save_model(_fit(X, y), name="churn", sample_input=X[["a", "b"]].to_numpy()[:5],
                              store=registry.artifacts))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                registry.register("churn", saved, run_id=run_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = [v.version for v in registry.store.model_versions("churn")]
    assert versions == list(range(1, 21))


def _register_from_process(url: str, artifacts: str, saved: dict[str, Any], n: int) -> None:
    store = Store(url, "alice", sweep=False)
    try:
        reg = ModelRegistry(store, ArtifactStore(artifacts))
        for _ in range(n):
            reg.register("churn", saved, run_id=None)
    finally:
        store.close()


def test_concurrent_registrations_from_processes(registry: ModelRegistry) -> None:
    X, y = _data()
    saved = asdict(save_model(_fit(X, y), name="churn", sample_input=X[["a", "b"]].to_numpy()[:5],
                              store=registry.artifacts))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_register_from_process,
                         args=(registry.store.url, registry.artifacts.root, saved, 5))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [v.version for v in registry.store.model_versions("churn")] == list(range(1, 16))


def test_torch_models_keep_their_input_dtype_and_task(registry: ModelRegistry) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # int64 input (an embedding) judged as a classifier
    X = rng.integers(0, 10, size=(200, 2))
    y = (X[:, 0] > 4).astype(int)
    emb = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2)).eval()
    registry.set_policy("emb", {"metric": "accuracy", "min_value": 0.0})
    run_id = _run(registry)
    saved = save_model(emb, name="emb", sample_input=X[:5], store=registry.artifacts)
    registry.register("emb", asdict(saved), run_id=run_id)
    # a one-output regression judged by rmse
    Xr = rng.normal(size=(200, 3)).astype(np.float32)
    reg = nn.Linear(3, 1).eval()
    registry.set_policy("reg", {"metric": "rmse", "min_value": 100.0})
    saved = save_model(reg, name="reg", sample_input=Xr[:5], store=registry.artifacts,
                       task="regression")
    registry.register("reg", asdict(saved), run_id=run_id)

    def ref(value: Any, label: str) -> dict[str, Any]:
        return save_value(value, name=label, step="t", store=registry.artifacts).to_dict()

    registry.store.add_eval_set(run_id, None, x=ref(X, "x"), y=ref(y, "y"), slices=None,
                                slices_name=None, count=len(y), model="emb")
    registry.store.add_eval_set(run_id, None, x=ref(Xr, "xr"), y=ref(Xr.sum(axis=1), "yr"),
                                slices=None, slices_name=None, count=200, model="reg")
    verdicts = {v.model: v for v in registry.evaluate_run(run_id)}
    assert verdicts["emb"].status == "blessed", verdicts["emb"].summary
    assert verdicts["reg"].status == "blessed", verdicts["reg"].summary
    assert verdicts["reg"].verdict.candidate["count"] == 200
    loaded = registry.load("reg@1")
    assert np.asarray(loaded.predict(Xr[:4])).shape == (4,)


def test_unscorable_production_fails_the_regression_check(registry: ModelRegistry) -> None:
    X, y = _data()
    registry.set_policy("churn", {"metric": "accuracy", "max_regression": 0.01})
    run1 = _run(registry)
    # v1 takes three features: it cannot predict on the two-feature evaluation data below
    three = LogisticRegression().fit(np.c_[X[["a", "b"]].to_numpy(), X.a.to_numpy()], y)
    saved = save_model(three, name="churn",
                       sample_input=np.c_[X[["a", "b"]].to_numpy(), X.a.to_numpy()][:5],
                       store=registry.artifacts)
    registry.register("churn", asdict(saved), run_id=run1)
    registry.set_alias("churn", "production", 1)
    run2 = _run(registry)
    _register(registry, _fit(X, y), run2, X)
    _log_eval(registry, run2, X, y)
    [verdict] = registry.evaluate_run(run2)
    assert verdict.status == "rejected"
    assert "production v1: could not be scored" in verdict.summary
    assert any("could not be scored" in r for r in verdict.verdict.reasons())


def test_an_older_version_judged_late_never_takes_production_back(registry: ModelRegistry
                                                                  ) -> None:
    X, y = _data()
    registry.set_policy("churn", {"metric": "accuracy", "min_value": 0.5,
                                  "promote_to": "production"})
    slow, fast = _run(registry, "slow"), _run(registry, "fast")
    _register(registry, _fit(X, y), slow, X)       # v1, its run still open
    _register(registry, _fit(X, y), fast, X)       # v2
    _log_eval(registry, slow, X, y)
    _log_eval(registry, fast, X, y)
    [v2] = registry.evaluate_run(fast)
    assert v2.promoted_to == "production"
    [v1] = registry.evaluate_run(slow)              # judged against production v2 now
    assert v1.status == "blessed" and v1.promoted_to is None
    assert registry.store.aliases("churn") == {"production": 2}


def test_a_validation_that_errors_is_stored_as_unvalidated(registry: ModelRegistry) -> None:
    from jupyter_mlplat.tracking.service import ModelService

    class TwoColumns:  # predicts a matrix: accuracy cannot be computed from it
        def predict(self, X: Any) -> Any:
            return np.c_[np.asarray(X)[:, 0], np.asarray(X)[:, 1]]

    X, y = _data()
    registry.set_policy("odd", {"metric": "accuracy", "min_value": 0.5})
    run_id = _run(registry)
    saved = save_model(TwoColumns(), name="odd", sample_input=X[["a", "b"]].to_numpy()[:3],
                       store=registry.artifacts)
    registry.register("odd", asdict(saved), run_id=run_id)
    _log_eval(registry, run_id, X, y)
    [verdict] = registry.evaluate_run(run_id)
    assert verdict.status == "unvalidated"
    assert "one true and one predicted label per row" in verdict.summary
    assert registry.evaluate_run(run_id) == []  # stored: not judged again
    with pytest.raises(NotBlessedError, match="one true and one predicted label"):
        registry.deployable("odd", 1)
    shown = ModelService(store=registry.store, artifacts=registry.artifacts).describe_version(
        "odd@1")
    assert shown.verdict_status == "unvalidated" and "label" in shown.verdict_reason
