"""Validation policies and verdicts: whether a model version is "blessed" (as in TFX).

A :class:`ValidationPolicy` says what a candidate must reach: an absolute floor on its overall
score, a bounded regression against the production version, and the same two per slice. The
candidate and the baseline are :class:`~jupyter_mlplat.tracking.metrics.Scores` computed on the
same evaluation data; :func:`evaluate_policy` turns them into a :class:`Verdict` whose checks
carry the numbers, so a rejection explains itself.

Direction is handled in one place (:func:`_worse_by`): for a lower-is-better metric such as
``rmse`` a floor is a ceiling and a regression is an increase.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from ..errors import InvalidSpecError
from .metrics import METRICS, Scores

# Float noise must not fail a check that holds exactly (0.9 - 0.85 > 0.05 in binary floats).
_REL_TOL = 1e-9
_ABS_TOL = 1e-12


def _num(x: float | None) -> str:
    """A score as people read it: three decimals, or three significant digits when tiny/huge."""
    if x is None:
        return "n/a"
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.3f}"
    return f"{x:.3g}"


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _le(a: float, b: float) -> bool:
    return a <= b or math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


class ValidationPolicy(BaseModel, extra="forbid"):
    """What a model version must reach to be blessed.

    All thresholds are in the metric's own units. For a lower-is-better metric (``rmse``,
    ``mae``, ``log_loss``) ``min_value`` and ``slice_floor`` are ceilings, and a regression is
    an increase.

    Attributes
    ----------
    metric : str
        A built-in metric name (:data:`~jupyter_mlplat.tracking.metrics.METRICS`).
    higher_is_better : bool, optional
        Leave unset: it comes from the metric. If given it must agree with the metric.
    min_value : float, optional
        Absolute floor (ceiling) on the overall score.
    max_regression : float, optional
        Allowed worsening of the overall score against production, >= 0.
    slice_floor : float, optional
        Absolute floor (ceiling) for every slice with at least ``min_slice_count`` rows.
    max_slice_regression : float, optional
        Allowed worsening per slice against production, >= 0; only slices big enough in both.
    min_slice_count : int
        Slices with fewer rows are ignored (reported, never failed); >= 1.
    promote_to : str, optional
        Alias moved to a version this policy blesses, e.g. ``"production"``.
    """

    metric: str = "accuracy"
    higher_is_better: bool | None = None
    min_value: float | None = None
    max_regression: float | None = None
    slice_floor: float | None = None
    max_slice_regression: float | None = None
    min_slice_count: int = 30
    promote_to: str | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(
                f"unknown metric {value!r}; expected one of {', '.join(METRICS)} (custom metric "
                "functions cannot be policy metrics: a policy must be reproducible from its JSON)"
            )
        return value

    @field_validator("min_value", "max_regression", "slice_floor", "max_slice_regression")
    @classmethod
    def _finite_number(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"expected a finite number or null; got {value!r}")
        return value

    @field_validator("max_regression", "max_slice_regression")
    @classmethod
    def _non_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError(
                f"must be >= 0: it is the worsening allowed against production, in the metric's "
                f"units (0 allows none); got {value!r}"
            )
        return value

    @field_validator("min_slice_count")
    @classmethod
    def _positive_count(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"must be an integer >= 1 (rows a slice needs to be checked); got {value!r}"
            )
        return value

    @field_validator("promote_to")
    @classmethod
    def _alias_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        # The registry's rule for model and alias names; imported here because store modules
        # pull in SQLAlchemy, which notebook kernels should not pay for at import.
        from ..store.registry import check_model_name

        try:
            check_model_name(value, "alias")
        except InvalidSpecError as exc:
            raise ValueError(str(exc)) from None
        if value == "latest" or (value.isascii() and value.isdigit()):
            raise ValueError(f"{value!r} cannot be an alias: it already means a version")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ValidationPolicy:
        d = METRICS[self.metric]
        if self.higher_is_better is not None and self.higher_is_better != d.higher_is_better:
            better = "higher" if d.higher_is_better else "lower"
            raise ValueError(
                f"higher_is_better={self.higher_is_better} contradicts {self.metric}, for which "
                f"{better} is better; leave higher_is_better unset"
            )
        if d.bounds is not None:
            lo, hi = d.bounds
            for name in ("min_value", "slice_floor"):
                value = getattr(self, name)
                if value is not None and not lo <= value <= hi:
                    raise ValueError(
                        f"{name}={value!r} is outside the range of {self.metric} "
                        f"[{lo:g}, {hi:g}]"
                        + (
                            f"; give a fraction such as {value / 100:g}"
                            if hi == 1 and value > 1
                            else ""
                        )
                    )
            for name in ("max_regression", "max_slice_regression"):
                value = getattr(self, name)
                if value is not None and value > hi - lo:
                    raise ValueError(
                        f"{name}={value!r} exceeds the whole range of {self.metric} "
                        f"[{lo:g}, {hi:g}]; give it in the metric's units (0.02 for two "
                        "points of accuracy)"
                    )
        return self

    @property
    def direction_higher(self) -> bool:
        """Whether higher scores are better: ``higher_is_better`` or the metric's own."""
        if self.higher_is_better is not None:
            return self.higher_is_better
        return METRICS[self.metric].higher_is_better


class Check(BaseModel):
    """One test of a verdict, with the numbers it compared."""

    model_config = ConfigDict(extra="forbid")

    name: str  # "evaluated", "min_value", "max_regression", "slice_floor[by=v]", ...
    status: Literal["passed", "failed", "ignored"]
    reason: str
    candidate: float | None = None
    baseline: float | None = None
    threshold: float | None = None


class Verdict(BaseModel):
    """The outcome of a policy on one candidate: blessed iff no check failed."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["blessed", "rejected"]
    metric: str
    higher_is_better: bool
    candidate: dict[str, Any]  # Scores.to_dict()
    baseline: dict[str, Any] | None
    baseline_version: int | None
    checks: list[Check]
    note: str | None = None

    @property
    def blessed(self) -> bool:
        return self.status == "blessed"

    def reasons(self) -> list[str]:
        """The reasons of the failed checks (what an error message about a rejection says)."""
        return [c.reason for c in self.checks if c.status == "failed"]

    def summary(self) -> str:
        """One line, e.g. ``"blessed: roc_auc 0.910 (production v3: 0.900), 4 slices >= 0.700"``."""
        cand = self.candidate.get("overall")
        head = f"{self.status}: {self.metric} {_num(_finite(cand))}"
        if self.baseline is not None:
            version = f" v{self.baseline_version}" if self.baseline_version is not None else ""
            head += f" (production{version}: {_num(_finite(self.baseline.get('overall')))})"
        elif self.baseline_version is not None:
            head += f" (production v{self.baseline_version}: could not be scored)"
        else:
            head += " (no production version)"
        if self.status == "rejected":
            reasons = self.reasons()
            shown = "; ".join(reasons[:3])
            more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
            return f"{head}: {shown}{more}"
        parts = [head]
        floors = [c for c in self.checks if c.name.startswith("slice_floor[")]
        passed = [c for c in floors if c.status == "passed"]
        if passed:
            op = ">=" if self.higher_is_better else "<="
            n = len(passed)
            parts.append(f"{n} slice{'s' if n != 1 else ''} {op} {_num(passed[0].threshold)}")
        else:
            regressions = [
                c
                for c in self.checks
                if c.name.startswith("slice_regression[") and c.status == "passed"
            ]
            if regressions:
                n = len(regressions)
                parts.append(f"{n} slice{'s' if n != 1 else ''} within allowed regression")
        ignored = {
            c.name.partition("[")[2] for c in self.checks if c.status == "ignored" and "[" in c.name
        }
        if ignored:
            parts.append(f"{len(ignored)} slice{'s' if len(ignored) != 1 else ''} ignored")
        return ", ".join(parts)


def _worse_by(candidate: float, baseline: float, higher: bool) -> float:
    """How much worse the candidate is than the baseline (negative: better)."""
    return baseline - candidate if higher else candidate - baseline


def _floor_check(name: str, what: str, value: float, floor: float, higher: bool) -> Check:
    """``value`` against an absolute floor (a ceiling when lower is better)."""
    if higher:
        ok = _le(floor, value)
        reason = f"{what} {_num(value)} {'>=' if ok else '<'} floor {_num(floor)}"
    else:
        ok = _le(value, floor)
        reason = f"{what} {_num(value)} {'<=' if ok else '>'} ceiling {_num(floor)}"
    return Check(
        name=name,
        status="passed" if ok else "failed",
        reason=reason,
        candidate=value,
        threshold=floor,
    )


def _regression_check(
    name: str, what: str, value: float, base: float, base_label: str, allowed: float, higher: bool
) -> Check:
    """``value`` against the baseline's ``base``, allowing ``allowed`` worsening."""
    worse = _worse_by(value, base, higher)
    ok = _le(worse, allowed)
    head = f"{what} {_num(value)} vs {base_label} {_num(base)}"
    if worse < 0:
        reason = f"{head}: improved by {_num(-worse)}"
    elif worse == 0:
        reason = f"{head}: unchanged"
    else:
        word = "drop" if higher else "increase"
        reason = f"{head}: {word} {_num(worse)} {'<=' if ok else '>'} allowed {_num(allowed)}"
    return Check(
        name=name,
        status="passed" if ok else "failed",
        reason=reason,
        candidate=value,
        baseline=base,
        threshold=base - allowed if higher else base + allowed,
    )


def _slice_label(by: str | None, value: str) -> str:
    return f"{by}={value}" if by else value


def _slice_checks(
    policy: ValidationPolicy, candidate: Scores, baseline: Scores | None, base_label: str
) -> list[Check]:
    higher = policy.direction_higher
    metric = policy.metric
    need = policy.min_slice_count
    checks: list[Check] = []
    if not candidate.slices:
        for name, value in (
            ("slice_floor", policy.slice_floor),
            ("slice_regression", policy.max_slice_regression),
        ):
            if value is not None:
                checks.append(
                    Check(
                        name=name,
                        status="ignored",
                        reason="no slices to check: the evaluation was not sliced (score it with by=...)",
                    )
                )
        return checks

    if policy.slice_floor is not None:
        for row in candidate.slices:
            label = _slice_label(candidate.by, row["slice"])
            name = f"slice_floor[{label}]"
            count, value = int(row.get("count") or 0), _finite(row.get("value"))
            if count < need:
                checks.append(
                    Check(
                        name=name,
                        status="ignored",
                        candidate=value,
                        reason=f"slice {label} has {count} rows < {need}: ignored",
                    )
                )
            elif value is None:
                checks.append(
                    Check(
                        name=name,
                        status="ignored",
                        reason=f"slice {label}: {metric} is undefined on its {count} rows: ignored",
                    )
                )
            else:
                checks.append(
                    _floor_check(
                        name, f"slice {label}: {metric}", value, policy.slice_floor, higher
                    )
                )

    allowed = policy.max_slice_regression
    if allowed is None:
        return checks
    if baseline is None:
        checks.append(
            Check(
                name="slice_regression",
                status="ignored",
                reason="no production version to compare slices with",
            )
        )
        return checks
    if baseline.by != candidate.by:
        checks.append(
            Check(
                name="slice_regression",
                status="ignored",
                reason=(
                    f"{base_label} was sliced by {baseline.by!r}, the candidate by "
                    f"{candidate.by!r}: slices not compared"
                ),
            )
        )
        return checks
    base_rows = {row["slice"]: row for row in baseline.slices}
    for row in candidate.slices:
        label = _slice_label(candidate.by, row["slice"])
        name = f"slice_regression[{label}]"
        count, value = int(row.get("count") or 0), _finite(row.get("value"))
        base_row = base_rows.get(row["slice"])
        if base_row is None:
            checks.append(
                Check(
                    name=name,
                    status="ignored",
                    candidate=value,
                    reason=f"slice {label} is not in {base_label}'s evaluation: ignored",
                )
            )
            continue
        base_count, base_value = int(base_row.get("count") or 0), _finite(base_row.get("value"))
        if count < need or base_count < need:
            checks.append(
                Check(
                    name=name,
                    status="ignored",
                    candidate=value,
                    baseline=base_value,
                    reason=(
                        f"slice {label} has {count} rows ({base_label}: {base_count}) < {need}: "
                        "ignored"
                    ),
                )
            )
        elif value is None or base_value is None:
            checks.append(
                Check(
                    name=name,
                    status="ignored",
                    candidate=value,
                    baseline=base_value,
                    reason=(
                        f"slice {label}: {metric} is undefined for "
                        f"{'the candidate' if value is None else base_label}: ignored"
                    ),
                )
            )
        else:
            checks.append(
                _regression_check(
                    name, f"slice {label}: {metric}", value, base_value, base_label, allowed, higher
                )
            )
    return checks


def evaluate_policy(
    policy: ValidationPolicy,
    candidate: Scores,
    baseline: Scores | None = None,
    *,
    baseline_version: int | None = None,
) -> Verdict:
    """Judge a candidate's scores by a policy.

    Parameters
    ----------
    policy : ValidationPolicy
        What the candidate must reach.
    candidate : Scores
        The candidate's scores for ``policy.metric``.
    baseline : Scores, optional
        The production version's scores on the same evaluation data. Without it only the
        floors (``min_value``, ``slice_floor``) are checked, and the verdict's note says so.
    baseline_version : int, optional
        The production version's number, for the messages.

    Returns
    -------
    Verdict
        ``"blessed"`` iff no check failed. A candidate whose overall score is missing or NaN is
        ``"rejected"`` with the reason "metric could not be computed".

    Raises
    ------
    InvalidSpecError
        The scores are for another metric than the policy's.
    """
    metric = policy.metric
    for role, scores in (("candidate", candidate), ("baseline", baseline)):
        if scores is not None and scores.metric != metric:
            raise InvalidSpecError(
                f"the {role}'s scores are for {scores.metric!r} but the policy judges {metric!r}; "
                f"score both versions with {metric!r}"
            )
    higher = policy.direction_higher
    base_label = "production" + (f" v{baseline_version}" if baseline_version is not None else "")
    cand = _finite(candidate.overall)
    base = _finite(baseline.overall) if baseline is not None else None
    cand_dict = candidate.to_dict() | {"overall": cand}
    base_dict = None if baseline is None else baseline.to_dict() | {"overall": base}
    note = None if baseline is not None else "no production version to compare with: floors only"
    checks: list[Check] = []

    if cand is None:
        rows = f"on its {candidate.count} evaluation rows " if candidate.count else ""
        checks.append(
            Check(
                name="evaluated",
                status="failed",
                reason=(
                    f"metric could not be computed: {metric} of the candidate is undefined "
                    f"{rows}(e.g. only one class present) or was not logged"
                ),
            )
        )
        return Verdict(
            status="rejected",
            metric=metric,
            higher_is_better=higher,
            candidate=cand_dict,
            baseline=base_dict,
            baseline_version=baseline_version,
            checks=checks,
            note=note,
        )
    rows = f" on {candidate.count} rows" if candidate.count else ""
    checks.append(
        Check(
            name="evaluated", status="passed", candidate=cand, reason=f"{metric} {_num(cand)}{rows}"
        )
    )

    if policy.min_value is not None:
        checks.append(_floor_check("min_value", metric, cand, policy.min_value, higher))

    if policy.max_regression is not None:
        if baseline is None:
            checks.append(
                Check(
                    name="max_regression",
                    status="ignored",
                    candidate=cand,
                    reason="no production version to compare with",
                )
            )
        elif base is None:
            checks.append(
                Check(
                    name="max_regression",
                    status="ignored",
                    candidate=cand,
                    reason=f"{metric} of {base_label} could not be computed: not compared",
                )
            )
        else:
            checks.append(
                _regression_check(
                    "max_regression", metric, cand, base, base_label, policy.max_regression, higher
                )
            )

    checks.extend(_slice_checks(policy, candidate, baseline, base_label))
    failed = any(c.status == "failed" for c in checks)
    return Verdict(
        status="rejected" if failed else "blessed",
        metric=metric,
        higher_is_better=higher,
        candidate=cand_dict,
        baseline=base_dict,
        baseline_version=baseline_version,
        checks=checks,
        note=note,
    )
