"""Models, slices, evaluation data and verdicts recorded from real step kernels."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jupyter_mlplat.cli.demo import template_path
from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.pipeline.executor import PipelineExecutor
from jupyter_mlplat.pipeline.runs import RunService
from jupyter_mlplat.tracking.registry import ModelRegistry
from jupyter_mlplat.tracking.service import ModelService

from .conftest import imports, params, step

DATA = """
rng = np.random.default_rng(seed)
X = rng.normal(size=(800, 3))
seg = rng.choice(["a", "b"], 800)
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
flip = (seg == "b") & (rng.random(800) < noise)
y = np.where(flip, 1 - y, y)  # noise: segment b's labels turned around
"""

TRAIN = """
model = LogisticRegression().fit(X[:600], y[:600])
mlp.set_policy("clf", metric="accuracy", min_value=0.6, max_regression=0.02, slice_floor=0.6,
               min_slice_count=30, promote_to="production")
info = mlp.log_model(model, "clf", sample_input=X[:5])
assert info.version is None and info.flavor == "sklearn"
"""

EVALUATE = """
pred = model.predict(X[600:])
mlp.log_metric("accuracy", float((pred == y[600:]).mean()))
mlp.log_eval(X[600:], y[600:], slices=seg[600:], slices_name="seg")
table = mlp.log_slices(y[600:], pred, by=seg[600:], metric="accuracy", name="seg")
assert list(table.columns) == ["slice", "value", "count"]
"""


def _nb(make_nb: Any) -> Path:
    return make_nb(
        imports("import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
                "import jupyter_mlplat as mlp"),
        params("seed = 0\nnoise = 0.0"),
        step("data", DATA),
        step("train", TRAIN),
        step("evaluate", EVALUATE),
    )


def test_pipeline_registers_validates_promotes_and_rejects(executor: PipelineExecutor,
                                                           make_nb: Any, config: MLPlat) -> None:
    nb = _nb(make_nb)
    first = executor.run(nb)
    assert first.status == "succeeded", first.error
    [verdict] = first.verdicts
    assert (verdict.model, verdict.version, verdict.status) == ("clf", 1, "blessed")
    assert verdict.promoted_to == "production"

    run = RunService(config, store=executor.store).describe(first.run_id)
    assert [(m.model, m.version, m.verdict) for m in run.models] == [("clf", 1, "blessed")]
    assert {(s.slice, s.step) for s in run.slices} == {("a", "evaluate"), ("b", "evaluate")}

    # lineage: the train step's cells, version and inputs, the run
    version = ModelService(config, store=executor.store).describe_version("clf@1")
    assert version.step == "train" and version.run_id == first.run_id
    assert version.notebook == str(nb) and len(version.cell_ids) == 1
    assert set(version.input_artifacts) == {"X", "y"}
    assert version.signature["inputs"]["type"] == "tensor"

    # segment b's labels turned around: the candidate fails the floor on slice b
    second = executor.run(nb, {"noise": 0.95})
    [rejected] = second.verdicts
    assert (rejected.version, rejected.status) == (2, "rejected"), rejected.summary
    checks = {c.name: c.status for c in rejected.verdict.checks}
    assert checks["slice_floor[seg=b]"] == "failed"
    assert checks["slice_floor[seg=a]"] == "passed"
    assert "max_regression" in checks  # compared with production v1 on this run's data
    assert rejected.verdict.baseline_version == 1
    assert executor.store.aliases("clf") == {"production": 1}

    # a cached re-run registers nothing new
    third = executor.run(nb, {"noise": 0.95})
    assert third.verdicts == []
    assert len(executor.store.model_versions("clf")) == 2


def test_load_model_gives_identical_predictions(executor: PipelineExecutor, make_nb: Any,
                                                config: MLPlat) -> None:
    import jupyter_mlplat as mlp

    outcome = executor.run(_nb(make_nb))
    assert outcome.status == "succeeded", outcome.error
    model = mlp.load_model("clf@production")
    registry = ModelRegistry(executor.store, executor.artifacts)
    sample_in, sample_out = registry.sample(registry.resolve("clf@1")[1])
    assert np.array_equal(model.predict(sample_in), sample_out)
    assert type(model).__name__ == "LogisticRegression"


def test_parallel_steps_logging_at_once_lose_no_rows(executor: PipelineExecutor,
                                                     make_nb: Any) -> None:
    body = """
for i in range(40):
    mlp.log_metric("m", float(i), step=i)
    mlp.log_param(f"p{{i}}", i)
mlp.log_slices([0, 1] * 20, [0, 1] * 20, by=["s{k}"] * 40)
mlp.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "par", sample_input=[[0.5]])
"""
    nb = make_nb(
        imports("from sklearn.linear_model import LogisticRegression\nimport jupyter_mlplat as mlp"),
        *[step(f"s{k}", body.format(k=k)) for k in range(4)],
    )
    outcome = executor.run(nb)
    assert outcome.status == "succeeded", outcome.error
    store = executor.store
    assert len(store.metrics([outcome.run_id])) == 4 * 40
    assert len(store.params([outcome.run_id])) == 4 * 40
    assert len(store.slice_metrics([outcome.run_id])) == 4
    assert sorted(v.version for v in store.model_versions("par")) == [1, 2, 3, 4]
    assert {v.step_name for v in store.model_versions("par")} == {"s0", "s1", "s2", "s3"}


def test_a_bad_policy_in_notebook_metadata_fails_before_running(executor: PipelineExecutor,
                                                                make_nb: Any) -> None:
    import json

    from jupyter_mlplat.errors import InvalidSpecError

    nb = make_nb(step("a", "x = 1"))
    data = json.loads(nb.read_text())
    data["metadata"]["mlplat"] = {"policies": {"clf": {"metric": "accuracy", "min_value": 7}}}
    nb.write_text(json.dumps(data))
    with pytest.raises(InvalidSpecError, match="min_value"):
        executor.run(nb)
    data["metadata"]["mlplat"] = {"policies": {"clf": {"metric": "accuracy", "min_value": 0.5}}}
    nb.write_text(json.dumps(data))
    assert executor.run(nb).status == "succeeded"
    assert executor.registry.policy("clf").min_value == 0.5


@pytest.mark.parametrize("name", ["quickstart.ipynb", "torch_classifier.ipynb"])
def test_templates_log_and_bless_their_models(name: str, executor: PipelineExecutor,
                                              tmp_path: Path, config: MLPlat) -> None:
    """The torch template's gpu: 1 training step runs on the CPU here (no GPU on CI)."""
    nb = tmp_path / name
    shutil.copyfile(template_path(name), nb)
    outcome = executor.run(nb)
    assert outcome.status == "succeeded", outcome.error
    [verdict] = outcome.verdicts
    assert verdict.status == "blessed", verdict.summary
    assert verdict.promoted_to == "production"
    model_name = verdict.model
    registry = ModelRegistry(executor.store, executor.artifacts)
    _, mv = registry.resolve(f"{model_name}@production")
    sample_in, sample_out = registry.sample(mv)
    loaded = registry.load(f"{model_name}@production")
    np.testing.assert_array_equal(np.asarray(loaded.predict(sample_in)), np.asarray(sample_out))
    run = RunService(config, store=executor.store).describe(outcome.run_id)
    assert run.slices, "the template logs slice metrics"
    if name == "torch_classifier.ipynb":
        assert mv.flavor == "torch"
        assert run.params["device"] == "cpu"
        train = next(s for s in run.steps if s.name == "train")
        assert "CPU" in (train.message or "")


def test_a_failed_step_registers_no_model_but_keeps_its_metrics(executor: PipelineExecutor,
                                                                make_nb: Any) -> None:
    nb = make_nb(
        imports("from sklearn.linear_model import LogisticRegression\nimport jupyter_mlplat as mlp"),
        step("train", "mlp.log_metric('loss', 0.5)\n"
                      "mlp.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), 'broken',"
                      " sample_input=[[0.5]])\n"
                      "raise RuntimeError('after logging')"),
    )
    outcome = executor.run(nb)
    assert outcome.status == "failed"
    assert [m.name for m in executor.store.metrics([outcome.run_id])] == ["loss"]
    assert executor.store.models() == []


def test_a_refused_record_fails_the_step_before_any_model_is_registered(
        executor: PipelineExecutor, make_nb: Any) -> None:
    nb = make_nb(
        imports("from sklearn.linear_model import LogisticRegression\nimport jupyter_mlplat as mlp"),
        step("train", "mlp.log_metric('loss', 0.5)\nmlp.log_param('lr', 0.1)\n"
                      "mlp.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), 'half',"
                      " sample_input=[[0.5]])\n"
                      "mlp.set_alias('half', 'production', 99)"),
    )
    outcome = executor.run(nb)
    assert outcome.status == "failed"
    assert "could not be recorded: no model 'half'" in outcome.steps["train"].message
    assert executor.store.models() == []
    assert [m.name for m in executor.store.metrics([outcome.run_id])] == ["loss"]
    assert [p.name for p in executor.store.params([outcome.run_id])] == ["lr"]
