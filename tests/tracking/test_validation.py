"""Validation policies and verdicts on real scores of small synthetic predictions."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.tracking.metrics import Scores, score_predictions
from jupyter_mlplat.tracking.validation import ValidationPolicy, Verdict, evaluate_policy


def _classifier_scores(noise: float, n: int = 400, seed: int = 0) -> Scores:
    """roc_auc of a noisy score on a fixed labelling, sliced by plan (one slice tiny)."""
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, n)
    plan = np.array(["basic"] * (n // 2) + ["pro"] * (n // 2 - 10) + ["free"] * 10, dtype=object)
    noisy = np.random.default_rng(seed).normal(scale=noise, size=n)
    return score_predictions("roc_auc", y, y_score=y + noisy, by=plan, by_name="plan")


def _regression_scores(noise: float, seed: int = 0) -> Scores:
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    pred = y + np.random.default_rng(seed).normal(scale=noise, size=300)
    return score_predictions("rmse", y, y_pred=pred)


def _check(verdict: Verdict, name: str) -> dict:
    [check] = [c for c in verdict.checks if c.name == name]
    return check.model_dump()


# --- floors ------------------------------------------------------------------------------------


def test_floor_pass_and_fail() -> None:
    scores = _classifier_scores(noise=0.8)
    assert 0.7 < scores.overall < 0.95
    ok = evaluate_policy(ValidationPolicy(metric="roc_auc", min_value=0.6), scores)
    assert ok.status == "blessed" and ok.blessed
    check = _check(ok, "min_value")
    assert check["status"] == "passed" and check["threshold"] == 0.6
    assert check["reason"] == f"roc_auc {scores.overall:.3f} >= floor 0.600"

    bad = evaluate_policy(ValidationPolicy(metric="roc_auc", min_value=0.99), scores)
    assert bad.status == "rejected"
    assert bad.reasons() == [f"roc_auc {scores.overall:.3f} < floor 0.990"]


def test_floor_is_a_ceiling_for_lower_is_better_metrics() -> None:
    scores = _regression_scores(noise=0.5)
    policy = ValidationPolicy(metric="rmse", min_value=0.6)
    assert policy.direction_higher is False
    assert evaluate_policy(policy, scores).status == "blessed"
    bad = evaluate_policy(ValidationPolicy(metric="rmse", min_value=0.3), scores)
    assert bad.status == "rejected"
    assert bad.reasons() == [f"rmse {scores.overall:.3f} > ceiling 0.300"]
    assert bad.higher_is_better is False


# --- regression against production -------------------------------------------------------------


def test_regression_against_production_higher_is_better() -> None:
    production = _classifier_scores(noise=0.8, seed=1)
    slightly_worse = _classifier_scores(noise=0.85, seed=1)
    much_worse = _classifier_scores(noise=2.0, seed=1)
    policy = ValidationPolicy(metric="roc_auc", max_regression=0.02)

    ok = evaluate_policy(policy, slightly_worse, production, baseline_version=3)
    assert ok.status == "blessed", ok.reasons()
    check = _check(ok, "max_regression")
    assert check["baseline"] == production.overall
    assert check["threshold"] == pytest.approx(production.overall - 0.02)
    assert "vs production v3" in check["reason"] and "<= allowed 0.020" in check["reason"]

    bad = evaluate_policy(policy, much_worse, production, baseline_version=3)
    assert bad.status == "rejected"
    drop = production.overall - much_worse.overall
    assert bad.reasons() == [
        f"roc_auc {much_worse.overall:.3f} vs production v3 {production.overall:.3f}: "
        f"drop {drop:.3f} > allowed 0.020"
    ]
    assert bad.baseline_version == 3 and bad.baseline["overall"] == production.overall


def test_regression_against_production_lower_is_better() -> None:
    production = _regression_scores(noise=0.5, seed=1)
    better = _regression_scores(noise=0.4, seed=1)
    worse = _regression_scores(noise=0.7, seed=1)
    policy = ValidationPolicy(metric="rmse", max_regression=0.05)

    ok = evaluate_policy(policy, better, production, baseline_version=2)
    assert ok.status == "blessed"
    assert "improved by" in _check(ok, "max_regression")["reason"]

    bad = evaluate_policy(policy, worse, production, baseline_version=2)
    assert bad.status == "rejected"
    [reason] = bad.reasons()
    assert reason.startswith(
        f"rmse {worse.overall:.3f} vs production v2 {production.overall:.3f}: "
    )
    assert "increase" in reason and "> allowed 0.050" in reason
    assert _check(bad, "max_regression")["threshold"] == pytest.approx(production.overall + 0.05)


def test_exact_boundary_passes_despite_float_noise() -> None:
    policy = ValidationPolicy(metric="accuracy", max_regression=0.05)
    candidate = Scores("accuracy", 0.85, 100, [], None)
    production = Scores("accuracy", 0.9, 100, [], None)  # 0.9 - 0.85 > 0.05 in binary floats
    assert evaluate_policy(policy, candidate, production).status == "blessed"


# --- slices ------------------------------------------------------------------------------------


def test_slice_floor_failure_names_the_slice() -> None:
    candidate = Scores(
        "accuracy",
        0.9,
        300,
        [
            {"slice": "basic", "value": 0.95, "count": 150},
            {"slice": "pro", "value": 0.62, "count": 140},
            {"slice": "trial", "value": 0.1, "count": 10},
        ],
        "plan",
    )
    policy = ValidationPolicy(metric="accuracy", slice_floor=0.7, min_slice_count=30)
    verdict = evaluate_policy(policy, candidate)
    assert verdict.status == "rejected"
    assert verdict.reasons() == ["slice plan=pro: accuracy 0.620 < floor 0.700"]
    assert _check(verdict, "slice_floor[plan=pro]")["status"] == "failed"
    assert _check(verdict, "slice_floor[plan=basic]")["status"] == "passed"
    trial = _check(verdict, "slice_floor[plan=trial]")
    assert trial["status"] == "ignored"
    assert trial["reason"] == "slice plan=trial has 10 rows < 30: ignored"


def test_too_small_and_undefined_slices_are_ignored_not_failed() -> None:
    scores = _classifier_scores(noise=0.8)  # the "free" slice has 10 rows
    policy = ValidationPolicy(metric="roc_auc", slice_floor=0.6, min_slice_count=30)
    verdict = evaluate_policy(policy, scores)
    assert verdict.status == "blessed", verdict.reasons()
    assert _check(verdict, "slice_floor[plan=free]")["status"] == "ignored"
    assert verdict.summary() == (
        f"blessed: roc_auc {scores.overall:.3f} (no production version), 2 slices >= 0.600, "
        "1 slice ignored"
    )
    undefined = Scores("roc_auc", 0.8, 100, [{"slice": "x", "value": None, "count": 60}], "seg")
    verdict = evaluate_policy(policy, undefined)
    assert verdict.status == "blessed"
    assert "undefined" in _check(verdict, "slice_floor[seg=x]")["reason"]


def test_slice_regression_only_where_both_slices_are_big_enough() -> None:
    production = Scores(
        "accuracy",
        0.9,
        300,
        [
            {"slice": "basic", "value": 0.90, "count": 150},
            {"slice": "pro", "value": 0.88, "count": 20},
            {"slice": "team", "value": 0.95, "count": 100},
        ],
        "plan",
    )
    candidate = Scores(
        "accuracy",
        0.9,
        300,
        [
            {"slice": "basic", "value": 0.89, "count": 150},
            {"slice": "new", "value": 0.5, "count": 50},
            {"slice": "pro", "value": 0.50, "count": 40},
            {"slice": "team", "value": 0.80, "count": 100},
        ],
        "plan",
    )
    policy = ValidationPolicy(metric="accuracy", max_slice_regression=0.05, min_slice_count=30)
    verdict = evaluate_policy(policy, candidate, production, baseline_version=4)
    assert verdict.status == "rejected"
    assert verdict.reasons() == [
        "slice plan=team: accuracy 0.800 vs production v4 0.950: drop 0.150 > allowed 0.050"
    ]
    assert _check(verdict, "slice_regression[plan=basic]")["status"] == "passed"
    pro = _check(verdict, "slice_regression[plan=pro]")
    assert pro["status"] == "ignored"
    assert pro["reason"] == "slice plan=pro has 40 rows (production v4: 20) < 30: ignored"
    assert "not in production v4" in _check(verdict, "slice_regression[plan=new]")["reason"]


def test_slice_rules_without_slices_are_ignored() -> None:
    policy = ValidationPolicy(metric="accuracy", slice_floor=0.5)
    verdict = evaluate_policy(policy, Scores("accuracy", 0.9, 100, [], None))
    assert verdict.status == "blessed"
    assert _check(verdict, "slice_floor")["status"] == "ignored"


# --- first version, undefined metric -----------------------------------------------------------


def test_first_version_checks_floors_only() -> None:
    scores = _classifier_scores(noise=0.8)
    policy = ValidationPolicy(metric="roc_auc", min_value=0.6, max_regression=0.0, slice_floor=0.6)
    verdict = evaluate_policy(policy, scores)
    assert verdict.status == "blessed"
    assert verdict.baseline is None and verdict.baseline_version is None
    assert verdict.note == "no production version to compare with: floors only"
    assert _check(verdict, "max_regression")["status"] == "ignored"
    assert _check(verdict, "min_value")["status"] == "passed"


def test_undefined_metric_is_rejected() -> None:
    one_class = score_predictions("roc_auc", [1] * 40, y_score=np.linspace(0, 1, 40))
    assert one_class.overall is None
    verdict = evaluate_policy(ValidationPolicy(metric="roc_auc", min_value=0.5), one_class)
    assert verdict.status == "rejected"
    [reason] = verdict.reasons()
    assert reason.startswith("metric could not be computed: roc_auc of the candidate")
    assert verdict.summary().startswith("rejected: roc_auc n/a (no production version): metric")
    nan = Scores("roc_auc", float("nan"), 10, [], None)
    assert evaluate_policy(ValidationPolicy(metric="roc_auc"), nan).status == "rejected"


def test_scores_for_another_metric_are_refused() -> None:
    with pytest.raises(
        InvalidSpecError, match="scores are for 'f1' but the policy judges 'accuracy'"
    ):
        evaluate_policy(ValidationPolicy(), Scores("f1", 0.5, 10, [], None))


# --- policy validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "auc"}, "unknown metric 'auc'; expected one of accuracy"),
        ({"max_regression": -0.1}, "must be >= 0"),
        ({"max_slice_regression": -1}, "must be >= 0"),
        ({"min_slice_count": 0}, "must be an integer >= 1"),
        (
            {"min_value": 80},
            "outside the range of accuracy \\[0, 1\\]; give a fraction such as 0.8",
        ),
        ({"max_regression": 2}, "exceeds the whole range of accuracy"),
        (
            {"metric": "rmse", "higher_is_better": True},
            "contradicts rmse, for which lower is better",
        ),
        ({"min_value": float("nan")}, "finite number"),
        ({"promote_to": "prod uction"}, "alias 'prod uction' is not valid"),
        ({"promote_to": "7"}, "cannot be an alias"),
        ({"thresold": 0.5}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_policy_values_are_rejected_clearly(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ValidationPolicy(**fields)


def test_policy_defaults_and_round_trip() -> None:
    policy = ValidationPolicy(metric="rmse", min_value=12.5, promote_to="production")
    assert policy.direction_higher is False
    assert ValidationPolicy().metric == "accuracy" and ValidationPolicy().direction_higher
    assert ValidationPolicy(metric="r2", higher_is_better=True).direction_higher
    assert ValidationPolicy.model_validate(policy.model_dump(mode="json")) == policy


# --- verdict text ------------------------------------------------------------------------------


def test_verdict_summary_and_reasons_and_round_trip() -> None:
    production = Scores("roc_auc", 0.90, 500, [{"slice": "a", "value": 0.8, "count": 100}], "seg")
    candidate = Scores(
        "roc_auc",
        0.91,
        500,
        [
            {"slice": "a", "value": 0.81, "count": 100},
            {"slice": "b", "value": 0.75, "count": 100},
            {"slice": "c", "value": 0.72, "count": 100},
            {"slice": "d", "value": 0.99, "count": 100},
        ],
        "seg",
    )
    policy = ValidationPolicy(metric="roc_auc", min_value=0.8, max_regression=0.02, slice_floor=0.7)
    verdict = evaluate_policy(policy, candidate, production, baseline_version=3)
    assert verdict.summary() == "blessed: roc_auc 0.910 (production v3: 0.900), 4 slices >= 0.700"
    assert verdict.reasons() == []
    assert Verdict.model_validate(verdict.model_dump(mode="json")) == verdict
    assert Scores(**verdict.candidate) == candidate  # the registry rebuilds scores from it

    worse = Scores("roc_auc", 0.75, 500, [{"slice": "a", "value": 0.6, "count": 100}], "seg")
    rejected = evaluate_policy(policy, worse, production, baseline_version=3)
    assert rejected.reasons() == [
        "roc_auc 0.750 < floor 0.800",
        "roc_auc 0.750 vs production v3 0.900: drop 0.150 > allowed 0.020",
        "slice seg=a: roc_auc 0.600 < floor 0.700",
    ]
    assert rejected.summary() == (
        "rejected: roc_auc 0.750 (production v3: 0.900): " + "; ".join(rejected.reasons())
    )
