"""log_* outside a pipeline step: the notebook's (or script's) own run, validated when it ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jupyter_mlplat as mlp
from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.pipeline.runs import RunService
from jupyter_mlplat.tracking import session
from jupyter_mlplat.tracking.service import ModelService


@pytest.fixture(autouse=True)
def no_open_run():
    yield
    session.end("failed")  # a test that failed midway leaves nothing open for the next


def _data(n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] > 0).astype(int), rng.choice(["p", "q"], n)


def test_plain_notebook_logs_registers_at_once_and_judges_at_end() -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y, seg = _data()
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    mlp.log_param("depth", 3)
    mlp.set_policy("nb_model", metric="accuracy", min_value=0.8, slice_floor=0.7,
                   min_slice_count=20)
    info = mlp.log_model(model, "nb_model", sample_input=X[:4])
    assert info.version == 1 and info.flavor == "sklearn"
    mlp.log_eval(X, y, slices=seg)
    table = mlp.log_slices(y, model.predict(X), by=seg, metric="accuracy")
    assert set(table["slice"]) == {"p", "q"}
    [verdict] = mlp.end_run()
    assert verdict.status == "blessed", verdict.summary
    assert mlp.end_run() == []  # nothing open any more

    config = MLPlat()
    run = RunService(config).list(limit=1)[0]
    assert run.status == "succeeded" and run.pipeline_version == "interactive"
    assert run.params == {"depth": 3}
    described = RunService(config).describe(run.id)
    assert [(m.model, m.verdict) for m in described.models] == [("nb_model", "blessed")]
    version = ModelService(config).describe_version("nb_model@1")
    assert version.step == "notebook" and version.verdict_status == "blessed"
    # the same fitted object comes back
    loaded = mlp.load_model("nb_model@1")
    assert np.array_equal(loaded.predict(X[:4]), model.predict(X[:4]))


def test_bad_calls_are_clear_errors() -> None:
    X, y, _ = _data()
    with pytest.raises(InvalidSpecError, match="model name"):
        mlp.log_model(object(), "bad name")
    with pytest.raises(InvalidSpecError, match="predict"):
        mlp.log_model(object(), "m")
    with pytest.raises(InvalidSpecError, match="X has 300 rows but y has 3"):
        mlp.log_eval(X, y[:3])
    with pytest.raises(InvalidSpecError, match="min_slice_count"):
        mlp.set_policy("m", metric="accuracy", min_slice_count=0)
    with pytest.raises(InvalidSpecError, match="metric"):
        mlp.log_slices(y, y, by=y, metric="no_such_metric")
    with pytest.raises(InvalidSpecError, match="positive int"):
        mlp.set_alias("m", "production", 0)
    with pytest.raises(InvalidSpecError, match="task"):
        mlp.log_model(object(), "m", task="ranking")


def test_a_script_that_exits_without_end_run_is_still_judged(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        import jupyter_mlplat as mlp

        X = np.random.default_rng(0).normal(size=(200, 2))
        y = (X[:, 1] > 0).astype(int)
        mlp.set_policy("script_model", metric="roc_auc", min_value=0.9)
        mlp.log_model(LogisticRegression().fit(X, y), "script_model", sample_input=X[:2])
        mlp.log_eval(X, y)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    model = ModelService(MLPlat()).describe("script_model")
    assert model.versions[0].verdict_status == "blessed"
    assert model.versions[0].notebook == str(script)
    run = RunService(MLPlat()).describe(model.versions[0].run_id)
    assert run.status == "succeeded" and run.pipeline == "train"
    assert "model script_model v1: blessed" in proc.stderr  # the verdict is printed


def test_a_script_that_crashes_fails_its_run_and_judges_nothing(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        import jupyter_mlplat as mlp

        X = np.random.default_rng(0).normal(size=(200, 2))
        y = (X[:, 1] > 0).astype(int)
        mlp.set_policy("crash_model", metric="accuracy", min_value=0.5, promote_to="production")
        mlp.log_model(LogisticRegression().fit(X, y), "crash_model", sample_input=X[:2])
        mlp.log_eval(X, y)
        raise RuntimeError("the script dies here")
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and "the script dies here" in proc.stderr
    model = ModelService(MLPlat()).describe("crash_model")
    assert model.versions[0].verdict_status == "unvalidated"
    assert model.aliases == {}
    run = RunService(MLPlat()).describe(model.versions[0].run_id)
    assert run.status == "failed"


def test_each_log_call_is_one_store_call() -> None:
    """Through the store service every store call is an HTTP round trip: logging a param or a
    metric sends that one batch, never an empty one beside it."""
    mlp.log_param("warm", 1)  # opens the notebook's run
    run = session.current()
    calls: list[str] = []
    real = run.store

    class Counting:
        def __getattr__(self, name: str):
            attr = getattr(real, name)
            if callable(attr):
                def call(*args, **kwargs):
                    calls.append(name)
                    return attr(*args, **kwargs)
                return call
            return attr

    run.store = Counting()
    try:
        mlp.log_param("depth", 3)
        mlp.log_metric("loss", 0.5)
        mlp.log_metrics({"a": 1.0, "b": 2.0})  # one batch, not one call per metric
        mlp.log_params({"x": 1, "y": "two"})
        with pytest.raises(InvalidSpecError, match="metric 'bad'"):
            mlp.log_metrics({"ok": 1.0, "bad": "high"})  # all or none
        with pytest.raises(InvalidSpecError, match="dict of name to value"):
            mlp.log_params([("x", 1)])
    finally:
        run.store = real
    assert calls == ["log_params", "log_metrics", "log_metrics", "log_params"]
    metrics = {m.name for m in real.metrics([run.run_id])}
    assert {"loss", "a", "b"} <= metrics and "ok" not in metrics
    assert mlp.end_run() == []  # no model: nothing to judge, and no query for verdicts
