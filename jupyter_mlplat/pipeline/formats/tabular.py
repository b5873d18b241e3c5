"""numpy arrays as ``.npy`` and pandas frames/series as Parquet, checked to read back the same."""

from __future__ import annotations

import sys
import warnings
from typing import Any

from jupyter_mlplat.pipeline.formats import Fallback, Written
from jupyter_mlplat.pipeline.formats.plain import NotJSON, json_decode_value, json_encode

# numpy ---------------------------------------------------------------------------------------


def try_numpy(value: Any, path: str) -> Written | None:
    """Write a numpy array or numpy scalar (as 0-d) with ``allow_pickle=False``."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if type(value) in (np.ndarray, np.memmap):
        arr, meta = value, {}
    elif isinstance(value, np.generic) and type(value).__module__ == "numpy":
        arr, meta = np.asarray(value), {"scalar": True}
    else:
        return None
    if arr.dtype.hasobject:
        raise Fallback(f"numpy dtype {arr.dtype} holds Python objects")
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return Written("npy", meta=meta)


def read_npy(path: str, meta: dict[str, Any]) -> Any:
    """Read a file written by :func:`try_numpy`."""
    import numpy as np

    arr = np.load(path, allow_pickle=False)
    return arr[()] if meta.get("scalar") else arr


# pandas --------------------------------------------------------------------------------------

_SERIES_COLUMN = "__series__"
# Object columns whose values pyarrow reads back as the same Python objects.
_PARQUET_OBJECT_KINDS = frozenset({"bytes", "date", "decimal", "empty"})


def try_pandas(value: Any, path: str) -> Written | None:
    """Write a DataFrame or Series as Parquet, if it reads back exactly."""
    pd = sys.modules.get("pandas")
    if pd is None or type(value) not in (pd.DataFrame, pd.Series):
        return None
    meta: dict[str, Any] = {}
    if type(value) is pd.Series:
        try:
            encoded_name = json_encode(value.name)
        except NotJSON:
            raise Fallback(f"series name of type {type(value.name).__name__}") from None
        column = (
            value.name
            if isinstance(value.name, str) and value.name not in value.index.names
            else _SERIES_COLUMN
        )
        meta.update(kind="series", name=encoded_name, column=column)
        frame = value.to_frame(name=column)
    else:
        meta["kind"] = "frame"
        frame = value
    _check_object_columns(frame, pd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "mixed type column names": caught below
            frame.to_parquet(path, engine="pyarrow", compression="snappy")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for unsupported data
        raise Fallback(f"parquet: {type(exc).__name__}: {exc}") from None
    problem = _parquet_reads_back_differently(frame, path, pd)
    if problem:
        raise Fallback(f"parquet does not round-trip it exactly: {problem}")
    freq = getattr(frame.index, "freq", None)
    if freq is not None and isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        meta["index_freq"] = freq.freqstr
    return Written("parquet", meta=meta)


def _check_object_columns(frame: Any, pd: Any) -> None:
    # Checked before writing: pyarrow reads some object values back as other types
    # (dicts as structs with every key, lists as arrays, NaN as None).
    levels = [frame.index.get_level_values(i) for i in range(frame.index.nlevels)]
    columns = [frame.iloc[:, i] for i in range(frame.shape[1])]
    for col in levels + columns:
        if col.dtype == object:
            kind = pd.api.types.infer_dtype(col, skipna=False)
            if kind not in _PARQUET_OBJECT_KINDS:
                raise Fallback(f"object column {col.name!r} holds {kind} values")


def _parquet_reads_back_differently(frame: Any, path: str, pd: Any) -> str | None:
    """Compare dtypes, labels and the first row as read back (cheap: one row, not the file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if pf.metadata.num_rows == 0:
        table = pf.schema_arrow.empty_table()
    else:
        batch = next(pf.iter_batches(batch_size=1))
        table = pa.Table.from_batches([batch], schema=pf.schema_arrow)
    head = table.to_pandas()
    expected = frame.iloc[: len(head)]
    if isinstance(frame.index, pd.RangeIndex):
        # stored as start/stop/step metadata, which a one-row read cannot match
        head.index = expected.index
    try:
        pd.testing.assert_frame_equal(expected, head, check_freq=False, check_exact=True)
    except AssertionError as exc:
        return " ".join(str(exc).split())[:300]
    return None


def read_parquet(path: str, meta: dict[str, Any]) -> Any:
    """Read a file written by :func:`try_pandas`."""
    import pandas as pd

    frame = pd.read_parquet(path, engine="pyarrow")
    freq = meta.get("index_freq")
    if freq and isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        frame.index = type(frame.index)(frame.index, freq=freq)
    if meta.get("kind") == "series":
        series = frame.iloc[:, 0]
        series.name = json_decode_value(meta.get("name"))
        return series
    return frame
