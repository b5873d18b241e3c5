"""Metric computation against scikit-learn, slice tables and score_predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.tracking.metrics import (
    METRICS,
    MISSING_SLICE,
    MetricDef,
    Scores,
    compute,
    metric_def,
    score_predictions,
    slice_table,
)

RNG = np.random.default_rng(7)
N = 120
Y_BIN = RNG.integers(0, 2, N)
P_BIN = np.clip(Y_BIN * 0.35 + RNG.random(N) * 0.65, 0.01, 0.99)  # informative, not perfect
L_BIN = (P_BIN > 0.5).astype(int)
Y_MC = RNG.integers(0, 3, N)
P_MC = RNG.dirichlet([1, 1, 1], N)
P_MC[np.arange(N), Y_MC] += 0.5
P_MC /= P_MC.sum(axis=1, keepdims=True)
L_MC = P_MC.argmax(axis=1)
Y_REG = RNG.normal(size=N)
P_REG = Y_REG + RNG.normal(scale=0.5, size=N)


@pytest.mark.parametrize(
    ("name", "y_true", "y_pred", "expected"),
    [
        ("accuracy", Y_BIN, L_BIN, skm.accuracy_score(Y_BIN, L_BIN)),
        ("balanced_accuracy", Y_MC, L_MC, skm.balanced_accuracy_score(Y_MC, L_MC)),
        ("f1", Y_BIN, L_BIN, skm.f1_score(Y_BIN, L_BIN)),
        ("precision", Y_BIN, L_BIN, skm.precision_score(Y_BIN, L_BIN)),
        ("recall", Y_BIN, L_BIN, skm.recall_score(Y_BIN, L_BIN)),
        ("f1", Y_MC, L_MC, skm.f1_score(Y_MC, L_MC, average="macro")),
        ("precision", Y_MC, L_MC, skm.precision_score(Y_MC, L_MC, average="macro")),
        ("recall", Y_MC, L_MC, skm.recall_score(Y_MC, L_MC, average="macro")),
        ("roc_auc", Y_BIN, P_BIN, skm.roc_auc_score(Y_BIN, P_BIN)),
        ("roc_auc", Y_BIN, np.c_[1 - P_BIN, P_BIN], skm.roc_auc_score(Y_BIN, P_BIN)),
        ("roc_auc", Y_MC, P_MC, skm.roc_auc_score(Y_MC, P_MC, multi_class="ovr")),
        ("log_loss", Y_BIN, P_BIN, skm.log_loss(Y_BIN, P_BIN)),
        ("log_loss", Y_MC, P_MC, skm.log_loss(Y_MC, P_MC)),
        ("rmse", Y_REG, P_REG, skm.root_mean_squared_error(Y_REG, P_REG)),
        ("mae", Y_REG, P_REG, skm.mean_absolute_error(Y_REG, P_REG)),
        ("r2", Y_REG, P_REG, skm.r2_score(Y_REG, P_REG)),
    ],
)
def test_builtin_metrics_match_sklearn(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, expected: float
) -> None:
    value = compute(name, y_true, y_pred)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)


def test_metric_table_directions_and_needs() -> None:
    assert set(METRICS) == {
        "accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "log_loss",
        "rmse", "mae", "r2",
    }  # fmt: skip
    lower = {name for name, d in METRICS.items() if not d.higher_is_better}
    assert lower == {"log_loss", "rmse", "mae"}
    assert {name for name, d in METRICS.items() if d.needs == "scores"} == {"roc_auc", "log_loss"}
    assert METRICS["rmse"].task == "regression" and METRICS["f1"].task == "classification"


def test_string_labels_binary_uses_later_label_as_positive() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes", "no"])
    p = np.array(["no", "yes", "no", "no", "yes", "yes"])
    assert compute("f1", y, p) == pytest.approx(skm.f1_score(y, p, pos_label="yes"))
    scores = np.array([0.1, 0.9, 0.4, 0.3, 0.8, 0.6])
    assert compute("roc_auc", y, scores) == pytest.approx(skm.roc_auc_score(y == "yes", scores))


def test_accepts_lists_series_and_tensors() -> None:
    expected = skm.accuracy_score(Y_BIN, L_BIN)
    assert compute("accuracy", list(Y_BIN), pd.Series(L_BIN)) == pytest.approx(expected)
    torch = pytest.importorskip("torch")
    assert compute("accuracy", torch.tensor(Y_BIN), torch.tensor(L_BIN)) == pytest.approx(expected)
    assert compute(
        "rmse", torch.tensor(Y_REG), torch.tensor(P_REG).reshape(-1, 1)
    ) == pytest.approx(skm.root_mean_squared_error(Y_REG, P_REG))


@pytest.mark.filterwarnings("error")
def test_undefined_values_are_nan_without_warnings() -> None:
    assert math.isnan(compute("roc_auc", [1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(compute("precision", [0, 1, 0], [0, 0, 0]))  # nothing predicted positive
    assert math.isnan(compute("recall", [0, 0, 0], [0, 1, 0]))  # no true positives to find
    assert math.isnan(compute("r2", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))  # constant target
    assert math.isnan(compute("r2", [2.0], [1.0]))


def test_input_errors() -> None:
    with pytest.raises(InvalidSpecError, match="y_true has 3 values but y_pred has 2"):
        compute("accuracy", [0, 1, 1], [0, 1])
    with pytest.raises(InvalidSpecError, match="no rows"):
        compute("accuracy", [], [])
    with pytest.raises(InvalidSpecError, match="one column; expected an \\(n, 3\\)"):
        compute("roc_auc", [0, 1, 2], [0.1, 0.5, 0.9])
    with pytest.raises(InvalidSpecError, match="could not be computed"):
        compute("rmse", [1.0, 2.0], [1.0, float("nan")])


def test_metric_def_unknown_name_lists_known() -> None:
    with pytest.raises(InvalidSpecError, match="unknown metric 'auc'.*roc_auc.*rmse"):
        metric_def("auc")
    with pytest.raises(InvalidSpecError, match="metric must be a name"):
        metric_def(3)  # type: ignore[arg-type]


def test_custom_callable_metric() -> None:
    def max_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.max(np.abs(y_true - y_pred)))

    max_error.higher_is_better = False  # type: ignore[attr-defined]
    d = metric_def(max_error)
    assert d == MetricDef("max_error", max_error, "labels", False, "any")
    assert compute(max_error, [1.0, 2.0, 3.0], [1.5, 2.0, 1.0]) == 2.0
    assert metric_def(lambda t, p: 0.0).higher_is_better is True


@pytest.mark.filterwarnings("error")
def test_slice_table_missing_group_small_slices_and_order() -> None:
    y = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1])
    p = np.array([1, 0, 0, 1, 0, 1, 1, 0, 1, 0])
    by = pd.Series(["pro", "basic", None, "pro", "basic", "pro", np.nan, "basic", "pro", "free"])
    rows = slice_table(y, p, by, "accuracy", min_count=2)
    assert [r["slice"] for r in rows] == ["basic", "free", "pro", MISSING_SLICE]
    assert [r["count"] for r in rows] == [3, 1, 4, 2]
    by_name = {r["slice"]: r for r in rows}
    assert by_name["basic"]["value"] == pytest.approx(1.0)
    assert by_name["pro"]["value"] == pytest.approx(1.0)
    assert by_name["free"]["value"] is None  # 1 row < min_count 2
    missing = by.isna().to_numpy()
    assert by_name[MISSING_SLICE]["value"] == pytest.approx(
        skm.accuracy_score(y[missing], p[missing])
    )


@pytest.mark.filterwarnings("error")
def test_slice_table_numeric_slices_and_undefined_values() -> None:
    y = [0, 1, 1, 1, 0, 1]
    s = [0.2, 0.7, 0.9, 0.6, 0.1, 0.8]
    rows = slice_table(y, s, [10, 10, 2, 2, 10, 2], "roc_auc")
    assert [r["slice"] for r in rows] == ["2", "10"]  # sorted as numbers, not as text
    assert rows[0] == {"slice": "2", "value": None, "count": 3}  # one class: undefined
    assert rows[1]["value"] == pytest.approx(1.0)


def test_slice_table_multiclass_slice_lacking_a_class() -> None:
    y = np.array(["a", "b", "c", "a", "b", "c", "a", "b"])
    proba = RNG.dirichlet([1, 1, 1], len(y))
    by = ["x", "x", "x", "x", "y", "y", "y", "y"]
    rows = {r["slice"]: r["value"] for r in slice_table(y, proba, by, "roc_auc")}
    mask = np.array(by) == "x"
    assert rows["x"] == pytest.approx(skm.roc_auc_score(y[mask], proba[mask], multi_class="ovr"))
    # A slice lacking class c is scored against all three classes of the whole data.
    rows = {
        r["slice"]: r["value"]
        for r in slice_table(y[:6], proba[:6], [1, 1, 2, 2, 2, 2], "log_loss")
    }
    assert rows["1"] == pytest.approx(skm.log_loss(y[:2], proba[:2], labels=["a", "b", "c"]))


def test_slice_table_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(InvalidSpecError, match="by has 2 values but y_true has 3"):
        slice_table([0, 1, 1], [0, 1, 1], ["a", "b"], "accuracy")
    with pytest.raises(InvalidSpecError, match="min_count"):
        slice_table([0, 1], [0, 1], ["a", "b"], "accuracy", min_count=0)


def test_score_predictions_picks_the_input_the_metric_needs() -> None:
    by = pd.Series(RNG.choice(["eu", "us"], N), name="region")
    scores = score_predictions("roc_auc", Y_BIN, y_pred=L_BIN, y_score=P_BIN, by=by)
    assert scores.metric == "roc_auc" and scores.by == "region" and scores.count == N
    assert scores.overall == pytest.approx(skm.roc_auc_score(Y_BIN, P_BIN))
    assert [r["slice"] for r in scores.slices] == ["eu", "us"]
    acc = score_predictions("accuracy", Y_BIN, y_pred=L_BIN, by=by.to_numpy(), by_name="zone")
    assert acc.by == "zone" and acc.overall == pytest.approx(skm.accuracy_score(Y_BIN, L_BIN))
    plain = score_predictions("rmse", Y_REG, y_pred=P_REG)
    assert plain.slices == [] and plain.by is None


def test_score_predictions_missing_input() -> None:
    with pytest.raises(
        InvalidSpecError, match="roc_auc needs predicted probabilities.*predict_proba"
    ):
        score_predictions("roc_auc", Y_BIN, y_pred=L_BIN)
    with pytest.raises(InvalidSpecError, match="accuracy needs predicted labels"):
        score_predictions("accuracy", Y_BIN, y_score=P_BIN)


def test_score_predictions_undefined_overall_is_none() -> None:
    scores = score_predictions("roc_auc", [1, 1, 1], y_score=[0.3, 0.6, 0.9])
    assert scores.overall is None


def test_scores_round_trip() -> None:
    scores = Scores("f1", 0.5, 10, [{"slice": "a", "value": None, "count": 3}], "plan")
    assert Scores.from_dict(scores.to_dict()) == scores
    assert Scores(**scores.to_dict()) == scores
