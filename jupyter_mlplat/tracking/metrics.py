"""Metric computation: overall scores and per-slice tables.

Every built-in metric is a thin wrapper over scikit-learn with one extra rule: a value that is
undefined on the given rows (ROC AUC with one class present, precision with no predicted
positives, R² of a constant target) comes back as ``math.nan`` instead of a warning and a
made-up number, because slices make such cases routine and the validation policy must tell
"undefined" from "bad".

numpy, pandas and scikit-learn are imported inside functions: this module is imported in
notebook kernels, and ``import jupyter_mlplat`` has to stay fast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSpecError

if TYPE_CHECKING:
    import numpy as np

MISSING_SLICE = "(missing)"
_NEEDS = ("labels", "scores")
_TASKS = ("classification", "regression", "any")


@dataclass(frozen=True)
class MetricDef:
    """What a metric is computed from and which way is better.

    ``fn(y_true, y_pred)`` returns a float; built-in classification metrics also take
    ``labels=`` (the class labels, in the order of a probability matrix's columns).
    """

    name: str
    fn: Callable[..., float]
    needs: str  # "labels": predicted labels or values; "scores": probabilities or scores
    higher_is_better: bool
    task: str  # "classification" | "regression" | "any"
    bounds: tuple[float, float] | None = field(default=None, compare=False)  # attainable range


# --- array helpers ----------------------------------------------------------------------------


def _to_numpy(values: Any, what: str) -> np.ndarray:
    """lists, numpy arrays, pandas objects and torch tensors -> a numpy array."""
    import numpy as np

    if values is None:
        raise InvalidSpecError(f"{what} is missing; expected an array of values")
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # torch tensor, possibly on a GPU
        values = values.detach().cpu().numpy()
    elif hasattr(values, "to_numpy"):  # pandas Series / DataFrame
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise InvalidSpecError(f"{what} must be an array of values; got a scalar {values!r}")
    if arr.ndim == 2 and arr.shape[1] == 1:  # a one-column frame or (n, 1) tensor
        arr = arr[:, 0]
    return arr


def _sorted_labels(values: Any) -> list[Any]:
    """Distinct labels, sorted the way scikit-learn orders ``classes_`` (by str if unorderable)."""
    distinct = {_plain(v) for v in values}
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar, so labels hash, sort and print as the user wrote them."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def _is_01(labels: Sequence[Any]) -> bool:
    return all(isinstance(v, Real) and v in (0, 1) for v in labels)


# --- built-in metrics -------------------------------------------------------------------------


def _binary_or_macro(score_fn: Callable[..., float]) -> Callable[..., float]:
    def compute_prf(
        y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None = None
    ) -> float:
        import numpy as np

        classes = (
            list(labels) if labels is not None else _sorted_labels(np.concatenate([y_true, y_pred]))
        )
        if len(classes) <= 2 and (len(classes) == 2 or _is_01(classes)):
            # The positive class is 1 for 0/1 labels, else the later of the two sorted labels,
            # which is the column predict_proba gives for it.
            pos = 1 if _is_01(classes) else classes[-1]
            return score_fn(y_true, y_pred, average="binary", pos_label=pos, zero_division=np.nan)
        return score_fn(y_true, y_pred, average="macro", labels=classes, zero_division=np.nan)

    return compute_prf


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None = None) -> float:
    from sklearn.metrics import accuracy_score

    return accuracy_score(y_true, y_pred)


def _balanced_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None = None
) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        # Routine in slices, where some predicted classes have no true rows; not an error.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return balanced_accuracy_score(y_true, y_pred)


def _f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None = None) -> float:
    from sklearn.metrics import f1_score

    return _binary_or_macro(f1_score)(y_true, y_pred, labels)


def _precision(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None = None
) -> float:
    from sklearn.metrics import precision_score

    return _binary_or_macro(precision_score)(y_true, y_pred, labels)


def _recall(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None = None) -> float:
    from sklearn.metrics import recall_score

    return _binary_or_macro(recall_score)(y_true, y_pred, labels)


def _score_labels(
    name: str, y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[Any] | None
) -> list[Any]:
    """The class label of each column of an (n, k) score matrix."""
    k = y_score.shape[1]
    if labels is not None:
        labels = list(labels)
        if len(labels) != k:
            raise InvalidSpecError(
                f"{name}: the score matrix has {k} columns but {len(labels)} class labels were "
                f"given ({labels!r}); expected one label per column"
            )
        return labels
    present = _sorted_labels(y_true)
    if len(present) == k:
        return present
    if all(
        isinstance(v, Real) and not isinstance(v, bool) and float(v).is_integer() and 0 <= v < k
        for v in present
    ):
        # Some classes absent, all integer-coded below k: column j is class j, as with classes_.
        return list(range(k))
    raise InvalidSpecError(
        f"{name}: cannot tell which class each of the score matrix's {k} columns stands for: "
        f"y_true holds {len(present)} classes ({present[:10]!r}); pass labels= (the model's "
        "classes_)"
    )


def _roc_auc(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[Any] | None = None) -> float:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if y_score.ndim == 1 or y_score.shape[1] == 2:
        if y_score.ndim == 2:
            classes = _score_labels("roc_auc", y_true, y_score, labels)
            y_score = y_score[:, 1]
        else:
            classes = list(labels) if labels is not None else _sorted_labels(y_true)
            if len(classes) > 2:
                raise InvalidSpecError(
                    f"roc_auc: y_true holds {len(classes)} classes but the scores are one column; "
                    f"expected an (n, {len(classes)}) probability matrix (predict_proba)"
                )
        positive = np.array([_plain(v) for v in y_true], dtype=object) == classes[-1]
        if len(classes) < 2 or positive.all() or not positive.any():
            return math.nan
        return roc_auc_score(positive, y_score)
    # One-vs-rest, macro: the mean of per-class binary AUCs. Done by hand so that a slice lacking
    # some classes averages over the classes it has, where scikit-learn would refuse.
    classes = _score_labels("roc_auc", y_true, y_score, labels)
    truth = np.array([_plain(v) for v in y_true], dtype=object)
    aucs = []
    for j, cls in enumerate(classes):
        positive = truth == cls
        if positive.any() and not positive.all():
            aucs.append(roc_auc_score(positive, y_score[:, j]))
    return float(np.mean(aucs)) if aucs else math.nan


def _log_loss(
    y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[Any] | None = None
) -> float:
    from sklearn.metrics import log_loss

    if y_score.ndim == 2:
        classes = _score_labels("log_loss", y_true, y_score, labels)
    elif labels is not None:
        classes = list(labels)
    else:
        classes = _sorted_labels(y_true)
        if len(classes) < 2:
            if not _is_01(classes):
                raise InvalidSpecError(
                    f"log_loss: y_true holds the single class {classes!r}; pass labels= (the "
                    "model's two classes) to say which one the scores are the probability of"
                )
            classes = [0, 1]
    if y_score.ndim == 1 and len(classes) > 2:
        raise InvalidSpecError(
            f"log_loss: y_true holds {len(classes)} classes but the scores are one column; "
            f"expected an (n, {len(classes)}) probability matrix (predict_proba)"
        )
    return log_loss(y_true, y_score, labels=classes)


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import root_mean_squared_error

    return root_mean_squared_error(y_true, y_pred)


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error

    return mean_absolute_error(y_true, y_pred)


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    import numpy as np
    from sklearn.metrics import r2_score

    # R² divides by the target's variance: undefined for one row or a constant target, where
    # scikit-learn would return a conventional 0.0 or 1.0.
    if len(y_true) < 2 or np.all(y_true == y_true[0]):
        return math.nan
    return r2_score(y_true, y_pred)


_UNIT = (0.0, 1.0)
METRICS: dict[str, MetricDef] = {
    d.name: d
    for d in (
        MetricDef("accuracy", _accuracy, "labels", True, "classification", _UNIT),
        MetricDef("balanced_accuracy", _balanced_accuracy, "labels", True, "classification", _UNIT),
        MetricDef("f1", _f1, "labels", True, "classification", _UNIT),
        MetricDef("precision", _precision, "labels", True, "classification", _UNIT),
        MetricDef("recall", _recall, "labels", True, "classification", _UNIT),
        MetricDef("roc_auc", _roc_auc, "scores", True, "classification", _UNIT),
        MetricDef("log_loss", _log_loss, "scores", False, "classification", (0.0, math.inf)),
        MetricDef("rmse", _rmse, "labels", False, "regression", (0.0, math.inf)),
        MetricDef("mae", _mae, "labels", False, "regression", (0.0, math.inf)),
        MetricDef("r2", _r2, "labels", True, "regression", (-math.inf, 1.0)),
    )
}
"""The built-in metrics by name: a constant table, never extended at run time."""


# --- public API -------------------------------------------------------------------------------


def metric_def(metric: str | Callable[..., float] | MetricDef) -> MetricDef:
    """Resolve a metric name or function to its definition.

    Parameters
    ----------
    metric : str, callable or MetricDef
        A name in :data:`METRICS`, or a function ``f(y_true, y_pred) -> float``, which becomes a
        custom metric named ``f.__name__``, computed from predicted labels (or from scores if
        ``f.needs == "scores"``), higher-is-better unless ``f.higher_is_better`` is false.

    Returns
    -------
    MetricDef

    Raises
    ------
    InvalidSpecError
        For an unknown name (the message lists the known ones) or anything else.
    """
    if isinstance(metric, MetricDef):
        return metric
    if isinstance(metric, str):
        try:
            return METRICS[metric]
        except KeyError:
            raise InvalidSpecError(
                f"unknown metric {metric!r}; expected one of {', '.join(METRICS)} or a function "
                "f(y_true, y_pred) -> float"
            ) from None
    if callable(metric):
        needs = getattr(metric, "needs", "labels")
        if needs not in _NEEDS:
            raise InvalidSpecError(
                f"metric function {getattr(metric, '__name__', metric)!r} has needs={needs!r}; "
                f"expected one of {', '.join(_NEEDS)}"
            )
        return MetricDef(
            name=getattr(metric, "__name__", type(metric).__name__),
            fn=metric,
            needs=needs,
            higher_is_better=bool(getattr(metric, "higher_is_better", True)),
            task="any",
        )
    raise InvalidSpecError(
        f"metric must be a name ({', '.join(METRICS)}) or a function f(y_true, y_pred) -> float; "
        f"got {type(metric).__name__} {metric!r}"
    )


def compute(
    metric: str | Callable[..., float] | MetricDef,
    y_true: Any,
    y_pred: Any,
    *,
    labels: Sequence[Any] | None = None,
) -> float:
    """Compute one metric over all rows.

    Parameters
    ----------
    metric : str, callable or MetricDef
        See :func:`metric_def`.
    y_true : array-like
        True labels or values (list, numpy array, pandas Series or torch tensor).
    y_pred : array-like
        What the metric needs: predicted labels/values, or for ``"scores"`` metrics a 1-D score
        vector (binary: the positive class's score) or an (n, k) probability matrix (binary uses
        column 1; multiclass ROC AUC is one-vs-rest, macro-averaged).
    labels : sequence, optional
        The model's class labels (``classes_``), in the order of the probability matrix's
        columns. Needed only when ``y_true`` alone cannot tell (e.g. a slice lacking a class);
        for f1/precision/recall it fixes the class set (2 classes: binary with the second as
        positive; more: macro average).

    Returns
    -------
    float
        ``math.nan`` when the metric is undefined on these rows (e.g. ROC AUC with one class).

    Raises
    ------
    InvalidSpecError
        Empty input, length mismatch, or inputs the metric cannot be computed from.
    """
    d = metric_def(metric)
    truth = _to_numpy(y_true, "y_true")
    pred = _to_numpy(y_pred, "y_score" if d.needs == "scores" else "y_pred")
    if len(truth) == 0:
        raise InvalidSpecError(f"{d.name}: no rows to score; expected at least one label")
    if len(truth) != len(pred):
        raise InvalidSpecError(
            f"{d.name}: y_true has {len(truth)} values but "
            f"{'y_score' if d.needs == 'scores' else 'y_pred'} has {len(pred)}; expected one "
            "prediction per row"
        )
    builtin = METRICS.get(d.name) is d
    try:
        if builtin and d.task == "classification":
            value = d.fn(truth, pred, labels=labels)
        else:
            value = d.fn(truth, pred)
    except InvalidSpecError:
        raise
    except (ValueError, TypeError) as err:
        raise InvalidSpecError(f"{d.name} could not be computed: {err}") from err
    if not isinstance(value, Real) and not hasattr(value, "__float__"):
        raise InvalidSpecError(f"metric {d.name!r} returned {value!r}; expected a number")
    return float(value)


def _slice_keys(by: Any, n: int) -> tuple[np.ndarray, list[Any]]:
    """Integer slice codes per row (-1: missing) and the slice values, in sorted order."""
    import numpy as np
    import pandas as pd

    if hasattr(by, "detach") and hasattr(by, "cpu"):
        by = by.detach().cpu().numpy()
    values = by.to_numpy() if hasattr(by, "to_numpy") else np.asarray(by, dtype=object)
    if values.ndim != 1:
        raise InvalidSpecError(f"by must be one column of slice values; got shape {values.shape}")
    if len(values) != n:
        raise InvalidSpecError(
            f"by has {len(values)} values but y_true has {n}; expected one slice value per row"
        )
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    uniques = [_plain(u) for u in uniques]
    try:
        order = sorted(range(len(uniques)), key=lambda i: uniques[i])
    except TypeError:
        order = sorted(range(len(uniques)), key=lambda i: str(uniques[i]))
    remap = np.empty(len(uniques), dtype=np.int64)
    remap[order] = np.arange(len(order))
    if uniques:
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    return codes, [uniques[i] for i in order]


def _resolve_labels(d: MetricDef, truth: np.ndarray, pred: np.ndarray) -> list[Any] | None:
    """The class set of all rows, so that every slice is scored against the same classes."""
    if METRICS.get(d.name) is not d or d.task != "classification":
        return None
    if d.needs == "labels":
        import numpy as np

        if truth.ndim != 1 or pred.ndim != 1:
            raise InvalidSpecError(
                f"{d.name} needs one true and one predicted label per row; got shapes "
                f"{list(truth.shape)} and {list(pred.shape)} (class probabilities: take "
                "argmax(axis=1), or judge with a score metric such as roc_auc)"
            )
        return _sorted_labels(np.concatenate([truth, pred]))
    if pred.ndim == 2:
        return _score_labels(d.name, truth, pred, None)
    classes = _sorted_labels(truth)
    return classes if len(classes) == 2 else None


def slice_table(
    y_true: Any,
    y_pred: Any,
    by: Any,
    metric: str | Callable[..., float] | MetricDef,
    *,
    min_count: int = 1,
    labels: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Compute a metric per slice: one row per distinct value of ``by``.

    Parameters
    ----------
    y_true, y_pred : array-like
        As for :func:`compute`.
    by : array-like
        One slice value per row (pandas Series, array or list). Missing values (None, NaN, NA)
        form the slice ``"(missing)"``.
    metric : str, callable or MetricDef
        See :func:`metric_def`.
    min_count : int, default 1
        Slices with fewer rows get ``value=None`` (not computed).
    labels : sequence, optional
        The model's class labels; by default the classes found in all rows, so that every
        slice is scored against the same class set even when it lacks some classes.

    Returns
    -------
    list of dict
        ``{"slice": str, "value": float | None, "count": int}`` sorted by slice value, the
        missing slice last. ``value`` is None when undefined on the slice or too few rows.

    Raises
    ------
    InvalidSpecError
        Length mismatch (the message names both lengths), empty input or a bad ``min_count``.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise InvalidSpecError(f"min_count must be an integer >= 1; got {min_count!r}")
    d = metric_def(metric)
    truth = _to_numpy(y_true, "y_true")
    pred = _to_numpy(y_pred, "y_score" if d.needs == "scores" else "y_pred")
    if len(truth) != len(pred):
        raise InvalidSpecError(
            f"{d.name}: y_true has {len(truth)} values but y_pred has {len(pred)}; expected one "
            "prediction per row"
        )
    if len(truth) == 0:
        raise InvalidSpecError(f"{d.name}: no rows to score; expected at least one label")
    codes, values = _slice_keys(by, len(truth))
    if labels is None:
        labels = _resolve_labels(d, truth, pred)
    rows = []
    groups = [(str(v), codes == i) for i, v in enumerate(values)]
    if (codes < 0).any():
        groups.append((MISSING_SLICE, codes < 0))
    for name, mask in groups:
        count = int(mask.sum())
        value: float | None = None
        if count >= min_count:
            value = compute(d, truth[mask], pred[mask], labels=labels)
            value = None if math.isnan(value) else value
        rows.append({"slice": name, "value": value, "count": count})
    return rows


@dataclass
class Scores:
    """One metric over an evaluation set: overall and per slice."""

    metric: str
    overall: float | None
    count: int
    slices: list[dict[str, Any]]  # slice_table rows
    by: str | None  # the slicing column's name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a :class:`~.validation.Verdict` stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scores:
        """Inverse of :meth:`to_dict` (extra keys are ignored)."""
        overall = data.get("overall")
        return cls(
            metric=data["metric"],
            overall=None if overall is None or math.isnan(overall) else float(overall),
            count=int(data.get("count", 0)),
            slices=list(data.get("slices") or []),
            by=data.get("by"),
        )


def score_predictions(
    metric: str | Callable[..., float] | MetricDef,
    y_true: Any,
    *,
    y_pred: Any = None,
    y_score: Any = None,
    by: Any = None,
    by_name: str | None = None,
    labels: Sequence[Any] | None = None,
) -> Scores:
    """Score a model's predictions overall and, with ``by``, per slice.

    Parameters
    ----------
    metric : str, callable or MetricDef
        See :func:`metric_def`.
    y_true : array-like
        True labels or values.
    y_pred : array-like, optional
        Predicted labels or values; used by ``"labels"`` metrics.
    y_score : array-like, optional
        Predicted probabilities or scores (``predict_proba``); used by ``"scores"`` metrics.
    by : array-like, optional
        Slice value per row; see :func:`slice_table`.
    by_name : str, optional
        Name of the slicing column; defaults to ``by.name`` for a pandas Series.
    labels : sequence, optional
        The model's class labels (``classes_``); see :func:`compute`.

    Returns
    -------
    Scores
        ``overall`` is None when the metric is undefined on these rows.

    Raises
    ------
    InvalidSpecError
        The metric's input is missing (e.g. ROC AUC without probabilities), or see
        :func:`compute` and :func:`slice_table`.
    """
    d = metric_def(metric)
    if d.needs == "scores":
        if y_score is None:
            raise InvalidSpecError(
                f"{d.name} needs predicted probabilities or scores (y_score) and none were given: "
                "the model has no predict_proba; choose a metric computed from predicted labels "
                "(accuracy, f1, ...)"
            )
        pred = y_score
    else:
        if y_pred is None:
            raise InvalidSpecError(
                f"{d.name} needs predicted labels or values (y_pred) and none were given"
            )
        pred = y_pred
    truth = _to_numpy(y_true, "y_true")
    pred = _to_numpy(pred, "y_score" if d.needs == "scores" else "y_pred")
    if labels is None and len(truth) == len(pred) and len(truth):
        labels = _resolve_labels(d, truth, pred)
    overall = compute(d, truth, pred, labels=labels)
    slices: list[dict[str, Any]] = []
    if by is not None:
        slices = slice_table(truth, pred, by, d, labels=labels)
        if by_name is None:
            name = getattr(by, "name", None)
            by_name = None if name is None else str(name)
    return Scores(
        metric=d.name,
        overall=None if math.isnan(overall) else overall,
        count=len(truth),
        slices=slices,
        by=by_name if by is not None else None,
    )
