"""Batch prediction: a registered model over Parquet or CSV files, with dask.dataframe.

Every input partition becomes one output file (``part-00000.parquet``, ...) holding the same rows
in the same order: the input columns (unless ``keep_columns=False``) plus ``prediction`` (and
``proba_<class>`` columns with ``proba=True``). The work runs on the pipeline cluster (the
configured Dask scheduler, or a local cluster); workers load the model from the artifact store
through the flavour's safe loader, once per process, and need no database connection.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import MLPlat
from ..errors import InvalidSpecError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class BatchResult:
    """What a batch prediction wrote."""

    model: str
    version: int
    inputs: list[str]
    output: str
    files: list[str]
    rows: int
    seconds: float


@dataclass(frozen=True)
class _ModelSpec:
    """What a worker needs to load the model: plain data, no store connection."""

    artifact: dict[str, Any]
    flavor: str
    signature: dict[str, Any]
    meta: dict[str, Any]
    artifacts_url: str


_CACHE: OrderedDict[str, Any] = OrderedDict()  # loaded models by sha256, per worker process
_CACHE_LOCK = threading.Lock()


def _model(spec: _ModelSpec) -> Any:
    from ..store import open_artifacts
    from ..tracking.flavors import LoadedModel, load_model_artifact

    key = spec.artifact["sha256"]
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    native = load_model_artifact(spec.artifact, spec.flavor,
                                 store=open_artifacts(spec.artifacts_url), trusted=True)
    loaded = LoadedModel(native, spec.flavor, spec.signature, meta=spec.meta)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return loaded


def _predict_frame(frame: Any, spec: _ModelSpec, keep_columns: bool, proba: bool,
                   columns: list[str] | None = None) -> Any:
    """One partition's predictions, row for row."""
    import numpy as np
    import pandas as pd

    model = _model(spec)
    out = frame.copy() if keep_columns else pd.DataFrame(index=frame.index)
    if len(frame) == 0:
        out["prediction"] = pd.Series(dtype="float64")
        return out
    features = frame[columns] if columns else frame
    inputs = spec.signature.get("inputs") or {}
    # a DataFrame signature picks (and orders) its own columns from the frame; a tensor
    # signature takes the feature columns in file order (``columns=`` to choose them)
    X = features if inputs.get("type") == "dataframe" or not inputs else features.to_numpy()
    prediction = np.asarray(model.predict(X))
    if prediction.ndim == 2 and prediction.shape[1] == 1:
        prediction = prediction[:, 0]
    if prediction.ndim != 1 or len(prediction) != len(frame):
        raise InvalidSpecError(f"the model returned predictions of shape {list(prediction.shape)} "
                               f"for {len(frame)} rows; expected one per row")
    out["prediction"] = prediction
    if proba:
        scores = model.predict_proba(X)
        if scores is None:
            raise InvalidSpecError("proba=True, but the model has no predict_proba")
        scores = np.asarray(scores)
        classes = getattr(model.model, "classes_", range(scores.shape[1]))
        for i, cls in enumerate(classes):
            out[f"proba_{cls}"] = scores[:, i]
    return out


def _write(frame: Any, path: str, fmt: str) -> int:
    tmp = f"{path}.tmp{os.getpid()}-{threading.get_ident()}"
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, path)  # a reader never sees half a file
    return len(frame)


def input_files(data: str | list[str]) -> list[str]:
    """The files ``data`` names (paths or glob patterns), sorted, all of one format."""
    patterns = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    files: list[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(str(pattern))
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        files += [f for f in matched if os.path.isfile(f)]
    if not files:
        raise InvalidSpecError(f"no input files match {data!r}; expected Parquet or CSV file "
                               "paths or a glob such as 'data/*.parquet'")
    kinds = {FORMATS.get(Path(f).suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        raise InvalidSpecError(f"inputs must all be Parquet (.parquet, .pq) or all CSV (.csv); "
                               f"got {sorted({Path(f).suffix or '(none)' for f in files})}")
    return files


def batch_predict(model: str, data: str | list[str], output: str, *,
                  config: MLPlat | None = None, output_format: str | None = None,
                  keep_columns: bool = True, proba: bool = False, blocksize: str = "64MB",
                  columns: list[str] | None = None, cluster: Any = None,
                  on_progress: Any = None) -> BatchResult:
    """Predict with ``model`` (``"churn@production"``) over ``data`` into folder ``output``.

    Parameters
    ----------
    data : str or list of str
        Parquet or CSV paths or globs (``"data/*.parquet"``).
    output : str
        A folder, created if missing; it must not hold earlier ``part-*`` files.
    output_format : {"parquet", "csv"}, optional
        Default: the inputs' format.
    keep_columns : bool
        Copy the input columns next to the predictions (rows stay aligned either way).
    proba : bool
        Add ``proba_<class>`` columns.
    columns : list of str, optional
        The input columns the model reads (in this order); default: all of them for a model
        with a tensor signature, the signature's own columns for a DataFrame one.
    cluster : DaskCluster, optional
        Default: the configured scheduler or a local cluster, closed afterwards.
    on_progress : callable, optional
        ``on_progress(done, total)`` after each partition.
    """
    import dask.dataframe as dd
    from dask import delayed

    from ..store import open_artifacts, open_store
    from ..tracking.registry import ModelRegistry

    config = config or MLPlat()
    files = input_files(data)
    fmt = FORMATS[Path(files[0]).suffix.lower()]
    out_fmt = output_format or fmt
    if out_fmt not in ("parquet", "csv"):
        raise InvalidSpecError(f"output_format must be 'parquet' or 'csv'; got {output_format!r}")
    out_dir = Path(output).expanduser()
    if out_dir.exists() and any(out_dir.glob("part-*")):
        raise InvalidSpecError(f"{out_dir} already holds part-* files; give an empty or new "
                               "output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config, sweep=False)
    try:
        registry = ModelRegistry(store, open_artifacts(config.artifacts_url))
        name, mv = registry.resolve(model)
        artifact = store.artifact_ref(mv.artifact_id)
    finally:
        store.close()
    spec = _ModelSpec(artifact=artifact, flavor=mv.flavor, signature=mv.signature or {},
                      meta={**(artifact.get("meta") or {}), **(mv.meta or {})},
                      artifacts_url=config.artifacts_url)
    if fmt == "parquet":
        frame = dd.read_parquet(files)
    else:
        frame = dd.read_csv(files, blocksize=blocksize)
    missing = [c for c in columns or [] if c not in frame.columns]
    if missing:
        raise InvalidSpecError(f"columns {missing} are not in the input; it has "
                               f"{list(frame.columns)}")
    ext = ".parquet" if out_fmt == "parquet" else ".csv"
    tasks = []
    for i, part in enumerate(frame.to_delayed()):
        predicted = delayed(_predict_frame)(part, spec, keep_columns, proba, columns)
        tasks.append(delayed(_write)(predicted, str(out_dir / f"part-{i:05d}{ext}"), out_fmt))
    own = cluster is None
    if own:
        from ..pipeline.dask import DaskCluster

        cluster = DaskCluster(config.dask_address, config.dask_workers, warm_kernels=False,
                              processes=config.dask_processes)
    started = time.perf_counter()
    try:
        rows = cluster.compute(tasks, on_progress)
    finally:
        if own:
            cluster.close()
    written = [str(out_dir / f"part-{i:05d}{ext}") for i in range(len(tasks))]
    return BatchResult(model=name, version=mv.version, inputs=files, output=str(out_dir),
                       files=written, rows=int(sum(rows)), seconds=time.perf_counter() - started)
