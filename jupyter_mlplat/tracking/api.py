"""log_param / log_metric: what a step records about itself.

Inside a step the kernel appends one JSON line per call to the step's tracking file; the executor
reads that file when the step ends (failed steps included) and writes the rows to the store, so a
step kernel needs no database connection and a crash loses at most the line being written.
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


_context: StepContext | None = None


def set_context(context: StepContext | None) -> None:
    """Make ``context`` the current step (``None``: outside any step)."""
    global _context
    _context = context


def current_context() -> StepContext:
    if _context is None:
        raise MLPlatError(
            "no pipeline step is running in this kernel: log_param/log_metric record onto a "
            "step run; run the notebook as a pipeline (`jupyter mlplat run NOTEBOOK` or "
            "`mlp.run(...)`)"
        )
    return _context


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidSpecError(f"{kind} name must be a non-empty string of up to 255 characters; "
                               f"got {name!r}")
    return name


def _append(record: dict[str, Any]) -> None:
    ctx = current_context()
    line = json.dumps(record, allow_nan=True) + "\n"
    # One write call per line with O_APPEND: lines from one process never interleave.
    fd = os.open(ctx.tracking_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
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
    _check_name("parameter", name)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(
            f"parameter {name!r}: value of type {type(value).__name__} is not JSON-serialisable "
            f"({exc}); expected a number, string, bool, None or a list/dict of them"
        ) from None
    _append({"kind": "param", "name": name, "value": value})


def log_params(params: dict[str, Any]) -> None:
    """Record several parameters at once."""
    for name, value in params.items():
        log_param(name, value)


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
    _check_name("metric", name)
    number = _as_float(name, value)
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise InvalidSpecError(f"metric {name!r}: step must be a non-negative int; got {step!r}")
    _append({"kind": "metric", "name": name, "value": number, "step": step,
             "timestamp": time.time()})


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Record several metrics at once."""
    for name, value in metrics.items():
        log_metric(name, value, step=step)


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
    params: dict[str, Any] = {}
    metrics: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return params, metrics
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed kernel
        if record.get("kind") == "param":
            params[record["name"]] = record["value"]
        elif record.get("kind") == "metric":
            metrics.append(record)
    return params, metrics
