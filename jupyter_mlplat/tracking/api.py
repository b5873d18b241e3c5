"""log_param / log_metric / log_slices / log_eval / log_model, set_policy / set_alias, load_model.

Inside a step the kernel appends one JSON line per call to the step's tracking file; the executor
reads that file when the step ends (failed steps included) and writes the rows to the store, so a
step kernel needs no database connection to record, and a crash loses at most the line being
written. Outside a step (a plain notebook or script) each call is written at once to the
notebook's own run (:mod:`jupyter_mlplat.tracking.session`), which :func:`end_run` closes.
Model files, sample inputs and evaluation data go to the artifact store from the calling process
either way; only their references travel in records.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from numbers import Real
from typing import Any

from ..errors import InvalidSpecError, MLPlatError


@dataclass(frozen=True)
class StepContext:
    """Where the running step records: set by the injected cell of a step notebook."""

    run_id: str
    step_run_id: int
    step: str
    tracking_path: str
    artifacts_url: str = ""


_context: StepContext | None = None


def set_context(context: StepContext | None) -> None:
    """Make ``context`` the current step (``None``: outside any step)."""
    global _context
    _context = context


def current_context() -> StepContext | None:
    """The running step, or None outside a step (a plain notebook or script)."""
    return _context


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidSpecError(f"{kind} name must be a non-empty string of up to 255 characters; "
                               f"got {name!r}")
    return name


def _record(*records: dict[str, Any]) -> list[Any]:
    """Record in the running step's file, or at once on the notebook's run outside a step (all
    of ``records`` together: one store call per kind, one round trip each through the store
    service).

    Returns the model versions registered at once (outside a step), else an empty list.
    """
    if not records:
        return []
    if _context is not None:
        _append(_context, records)
        return []
    from . import session

    run = session.current()
    assert run is not None
    return run.apply(*records)


def _append(ctx: StepContext, records: tuple[dict[str, Any], ...]) -> None:
    lines = "".join(json.dumps(record, allow_nan=True) + "\n" for record in records)
    # One write call with O_APPEND: lines from one process never interleave.
    fd = os.open(ctx.tracking_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, lines.encode())
    finally:
        os.close(fd)


def log_param(name: str, value: Any) -> None:
    """Record a parameter of the current step run.

    Parameters
    ----------
    name : str
        Parameter name.
    value : JSON-serialisable value
        Numbers, strings, booleans, None, and lists/dicts of them.
    """
    _record(_param(name, value))


def _param(name: str, value: Any) -> dict[str, Any]:
    _check_name("parameter", name)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(
            f"parameter {name!r}: value of type {type(value).__name__} is not JSON-serialisable "
            f"({exc}); expected a number, string, bool, None or a list/dict of them"
        ) from None
    return {"kind": "param", "name": name, "value": value}


def log_params(params: dict[str, Any]) -> None:
    """Record several parameters at once (all or, when one is invalid, none)."""
    _record(*(_param(name, value) for name, value in _mapping("params", params).items()))


def _mapping(what: str, value: Any) -> dict[str, Any]:
    """``value`` as a dict: anything with ``items()`` (a dict, a pandas Series) as before."""
    if not callable(getattr(value, "items", None)):
        raise InvalidSpecError(f"{what} must be a dict of name to value; got "
                               f"{type(value).__name__} {value!r:.80}")
    return dict(value.items())


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record a metric value of the current step run.

    Parameters
    ----------
    name : str
        Metric name.
    value : float
        A real number (numpy scalars and 0-d arrays are accepted).
    step : int, optional
        Position on a curve (epoch, iteration); several values of one name make a curve.
    """
    _record(_metric(name, value, step))


def _metric(name: str, value: Any, step: int | None) -> dict[str, Any]:
    _check_name("metric", name)
    number = _as_float(name, value)
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise InvalidSpecError(f"metric {name!r}: step must be a non-negative int; got {step!r}")
    return {"kind": "metric", "name": name, "value": number, "step": step,
            "timestamp": time.time()}


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Record several metrics at once (all or, when one is invalid, none)."""
    _record(*(_metric(name, value, step) for name, value in _mapping("metrics", metrics).items()))


def _as_float(name: str, value: Any) -> float:
    if hasattr(value, "item") and not isinstance(value, Real):
        try:
            value = value.item()  # numpy / torch scalars and one-element arrays
        except (ValueError, RuntimeError, TypeError):
            pass  # more than one element: refused below
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidSpecError(
            f"metric {name!r}: expected a real number; got {type(value).__name__} {value!r:.80}"
        )
    number = float(value)
    if math.isnan(number):
        raise InvalidSpecError(f"metric {name!r}: value is NaN; expected a real number")
    return number


def read_records(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Params (last value wins) and metric points from a step's tracking file."""
    from .records import read_file

    params: dict[str, Any] = {}
    metrics: list[dict[str, Any]] = []
    for record in read_file(path):
        if record["kind"] == "param":
            params[record["name"]] = record["value"]
        elif record["kind"] == "metric":
            metrics.append(record)
    return params, metrics


# -- models, slices, evaluation data, policies -------------------------------------------------


@dataclass(frozen=True)
class LoggedModel:
    """What :func:`log_model` saved. ``version`` is known at once outside a step; inside a step
    the version is numbered when the step ends (see ``jupyter mlplat model show NAME``)."""

    name: str
    flavor: str
    sha256: str
    signature: dict[str, Any]
    version: int | None = None

    def __repr__(self) -> str:
        version = f"v{self.version}" if self.version is not None else "version at step end"
        return f"<LoggedModel {self.name} {version}, {self.flavor}, sha256 {self.sha256[:12]}>"


def _artifact_store() -> Any:
    from ..store import open_artifacts

    if _context is not None and _context.artifacts_url:
        return open_artifacts(_context.artifacts_url)
    from . import session

    run = session.current()
    assert run is not None
    return run.artifacts


def log_model(model: Any, name: str, *, sample_input: Any = None, task: str | None = None,
              flavor: str | None = None) -> LoggedModel:
    """Save ``model`` and register it as a new version of the model called ``name``.

    Parameters
    ----------
    model : estimator, ``torch.nn.Module`` or object with ``predict``
        scikit-learn estimators and pipelines are saved with skops; torch modules as TorchScript
        (or ``torch.export``), checked against the eager model on ``sample_input``; anything
        else with ``predict`` / ``predict_proba`` with cloudpickle, loadable by its owner only.
    name : str
        The model's name (letters, digits, ``.``, ``_``, ``-``).
    sample_input : DataFrame, array, tensor or list, optional
        A few rows of input. The signature is inferred from it, the saved model's predictions
        on it are checked against the in-memory model's, and serving warms up with it.
    task : {"classification", "regression"}, optional
        For torch modules: whether outputs are class logits (default: inferred from the output).
    flavor : {"sklearn", "torch", "pyfunc"}, optional
        Force a flavour instead of the one inferred from the model's type.

    Returns
    -------
    LoggedModel
    """
    from ..store.registry import check_model_name
    from .flavors import save_model

    check_model_name(name)
    if task is not None and task not in ("classification", "regression"):
        raise InvalidSpecError(f"task must be 'classification' or 'regression'; got {task!r}")
    saved = save_model(model, name=name, sample_input=sample_input, store=_artifact_store(),
                       flavor=flavor, task=task)
    from dataclasses import asdict

    record: dict[str, Any] = {"kind": "model", "name": name, "saved": asdict(saved)}
    if _context is None:
        from .session import current_cell_id

        cell = current_cell_id()
        record["cell_ids"] = [cell] if cell else []
    registered = _record(record)
    version = registered[0][1].version if registered else None
    return LoggedModel(name, saved.flavor, saved.artifact["sha256"], saved.signature, version)


def _name_of(values: Any, default: str) -> str:
    name = getattr(values, "name", None)
    return str(name) if isinstance(name, (str, int)) and str(name) else default


def log_slices(y_true: Any, y_pred: Any, *, by: Any, metric: Any = "accuracy",
               name: str | None = None) -> Any:
    """Record one value and row count per slice of the data (bias per segment).

    Parameters
    ----------
    y_true, y_pred : array-like
        Labels and predictions (class probabilities for ``roc_auc`` / ``log_loss``).
    by : array-like or Series
        The slice of each row (same length), e.g. ``X_val["plan"]``.
    metric : str or callable
        ``"accuracy"``, ``"roc_auc"``, ``"f1"``, ... or ``f(y_true, y_pred) -> float``.
    name : str, optional
        The slicing's name; default the Series' name, else ``"slice"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``slice``, ``value``, ``count``.
    """
    import pandas as pd

    from .metrics import metric_def, slice_table

    definition = metric_def(metric)
    by_name = _check_name("slicing", name or _name_of(by, "slice"))
    rows = slice_table(y_true, y_pred, by, definition)
    for row in rows:
        if len(str(row["slice"])) > 1024:
            raise InvalidSpecError(f"log_slices: slice value {str(row['slice'])[:60]!r}... is "
                                   "longer than 1024 characters; expected short category labels")
    _record({"kind": "slices", "metric": definition.name, "by": by_name,
             "rows": [{"slice": r["slice"], "value": r["value"], "count": r["count"]}
                      for r in rows]})
    return pd.DataFrame(rows, columns=["slice", "value", "count"])


def log_eval(X: Any, y: Any, *, slices: Any = None, slices_name: str | None = None,
             model: str | None = None) -> None:
    """Record the evaluation data of this run: the data its model versions are judged on.

    When the run ends, each model version it logged and the version aliased ``production`` are
    both scored on ``X`` / ``y`` (and per slice of ``slices``) by the model's validation policy.

    Parameters
    ----------
    X : DataFrame or array
        Inputs, as the model's ``predict`` takes them.
    y : array-like or Series
        True labels or values, one per row of ``X``.
    slices : array-like or Series, optional
        The slice of each row, e.g. ``X_val["plan"]``.
    slices_name : str, optional
        What the slices are called in verdicts; default the Series' name, else ``"slice"``.
    model : str, optional
        Judge only this model on this data (several models in one run); default every model
        the run logs. Called again for the same model, the last call wins.
    """
    from ..pipeline.marshal import save_value

    if model is not None:
        from ..store.registry import check_model_name

        check_model_name(model)
    if slices_name is not None:
        _check_name("slices", slices_name)
    n = _length(X, "X")
    if _length(y, "y") != n:
        raise InvalidSpecError(f"log_eval: X has {n} rows but y has {_length(y, 'y')}; expected "
                               "one label per row")
    if slices is not None and _length(slices, "slices") != n:
        raise InvalidSpecError(f"log_eval: X has {n} rows but slices has "
                               f"{_length(slices, 'slices')}; expected one slice value per row")
    store = _artifact_store()
    step = _context.step if _context is not None else "notebook"

    def save(value: Any, label: str) -> dict[str, Any] | None:
        if value is None:
            return None
        return save_value(_plain(value), name=f"eval_{label}", step=step, store=store).to_dict()

    _record({"kind": "eval", "x": save(X, "x"), "y": save(y, "y"), "slices": save(slices,
             "slices"), "slices_name": (slices_name or _name_of(slices, "slice")) if slices is not None else None,
             "count": n, "model": model})


def _plain(value: Any) -> Any:
    """A list becomes an array (saved as npy, not JSON); a tensor a numpy array."""
    if isinstance(value, (list, tuple)):
        import numpy as np

        return np.asarray(value)
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def _length(value: Any, what: str) -> int:
    try:
        return len(value)
    except TypeError:
        raise InvalidSpecError(f"log_eval: {what} of type {type(value).__name__} has no length; "
                               "expected an array, a Series, a DataFrame or a list") from None


def set_policy(model: str, *, metric: str = "accuracy", higher_is_better: bool | None = None,
               min_value: float | None = None, max_regression: float | None = None,
               slice_floor: float | None = None, max_slice_regression: float | None = None,
               min_slice_count: int = 30, promote_to: str | None = None) -> Any:
    """Set the validation policy that decides whether a new version of ``model`` is blessed.

    Parameters
    ----------
    model : str
        The model's name.
    metric : str
        What to score: ``accuracy``, ``roc_auc``, ``f1``, ``rmse``, ... (see ``metrics.METRICS``).
    higher_is_better : bool, optional
        Default: the metric's own direction.
    min_value : float, optional
        Absolute floor on the overall score.
    max_regression : float, optional
        How much worse than the ``production`` version the candidate may score (metric units).
    slice_floor : float, optional
        Floor for every slice with at least ``min_slice_count`` rows.
    max_slice_regression : float, optional
        How much worse than ``production`` each such slice may score.
    min_slice_count : int
        Slices with fewer rows are reported and ignored.
    promote_to : str, optional
        Alias (e.g. ``"production"``) to move to a version once it is blessed.

    Returns
    -------
    ValidationPolicy
    """
    from pydantic import ValidationError

    from ..store.registry import check_model_name
    from .registry import _pydantic_message
    from .validation import ValidationPolicy

    check_model_name(model)
    fields = dict(metric=metric, higher_is_better=higher_is_better, min_value=min_value,
                  max_regression=max_regression, slice_floor=slice_floor,
                  max_slice_regression=max_slice_regression, min_slice_count=min_slice_count,
                  promote_to=promote_to)
    try:
        policy = ValidationPolicy.model_validate(fields)
    except ValidationError as exc:
        raise InvalidSpecError(_pydantic_message(f"validation policy of {model!r}", exc)) from None
    _record({"kind": "policy", "model": model, "policy": policy.model_dump(mode="json"),
             "source": "step" if _context is not None else "api"})
    return policy


def set_alias(model: str, alias: str, version: int | None, *, reason: str | None = None) -> None:
    """Point ``alias`` (e.g. ``"production"``) of ``model`` at ``version``; None removes it.

    Every move is kept with who made it and when (``jupyter mlplat model show``).
    """
    from ..store.registry import check_model_name

    check_model_name(model)
    check_model_name(alias, "alias")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 1):
        raise InvalidSpecError(f"version must be a positive int or None; got {version!r}")
    _record({"kind": "alias", "model": model, "alias": alias, "version": version,
             "reason": reason})


def _registry() -> Any:
    from ..config import MLPlat
    from ..store import open_artifacts, open_store
    from .registry import ModelRegistry

    config = MLPlat()
    return ModelRegistry(open_store(config, sweep=False),
                         open_artifacts(config.artifacts_url))


def load_model(ref: str) -> Any:
    """The fitted model behind ``ref`` (``"churn"``, ``"churn@3"``, ``"churn@production"``), or
    behind ``"alice/churn@production"``: a model another user shared with a project of yours,
    loaded in safe formats only (skops with the trusted types; never a pickled or torch model of
    someone else).

    Returns the object that was evaluated: a scikit-learn estimator (loaded with skops and the
    project's trusted types), a TorchScript / ``torch.export`` module, or your own pickled
    object. Predictions on the version's stored sample input equal those logged with it.
    """
    registry = _registry()
    try:
        return registry.load(ref).model
    finally:
        registry.store.close()


def end_run() -> list[Any]:
    """End this notebook's run (outside a pipeline) and validate the models it logged.

    Returns the verdicts, one per model version; each also prints as one line.
    """
    from . import session

    if _context is not None:
        raise MLPlatError("end_run() is for plain notebooks; a pipeline step's run ends with "
                          "the pipeline")
    verdicts = session.end()
    for verdict in verdicts:
        print(verdict)  # the notebook's own output: what became of the models it logged
    return verdicts


def device(preference: str = "auto") -> str:
    """The torch device a step should use: ``"cuda"`` when it was given a GPU, else ``"cpu"``.

    ``preference`` ``"auto"`` decides as above; ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` are
    returned as given (``"cuda"`` without a GPU is an error, rather than a silent CPU run).
    """
    if preference not in ("auto", "cpu") and not preference.startswith("cuda"):
        raise InvalidSpecError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {preference!r}")
    granted = os.environ.get("MLPLAT_GPUS")
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if preference == "auto":
        # a step given no GPU stays off the GPU even on a machine that has one
        return "cuda" if available and granted != "0" else "cpu"
    if preference.startswith("cuda") and not available:
        raise InvalidSpecError(f"device {preference!r} asked for, but torch sees no CUDA GPU "
                               "here; use device='auto' to fall back to the CPU")
    return preference
