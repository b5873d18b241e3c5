"""Model input/output signatures: inferred from a sample, checked against each request.

A signature is a JSON-able dict ``{"inputs": spec, "outputs": spec | None}``, or ``{}`` when
the model was saved without a sample input. A spec is one of:

* ``{"type": "dataframe", "columns": [{"name": "age", "dtype": "int64"}, ...]}``; a
  ``category`` column also lists its ``categories``.
* ``{"type": "series", "name": "age", "dtype": "int64"}``
* ``{"type": "tensor", "dtype": "float32", "shape": [-1, 4]}`` (numpy arrays, torch tensors,
  nested lists); the first dimension, the batch, is always ``-1``.
* ``{"type": "object", "python_type": "module.Class"}`` for anything else (not checked).

dtype names are numpy/pandas names (``int64``, ``float32``, ``bool``, ``datetime64[ns]``, ...),
except that text is always ``"string"``, whether it was held as ``object`` or pandas
``StringDtype``.

:func:`check_input` converts a request to the signature's type and refuses what cannot be
converted without changing values. Columns the signature does not name are dropped (as MLflow
does), so a client may send more fields than the model uses; they are named in the error when
a column is also missing, since a misspelt column shows up as one missing plus one extra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_mlplat.errors import SignatureError

_STRING = "string"
_MAX_SHOWN = 5

# -- inference -------------------------------------------------------------------------------


def infer_signature(sample_input: Any, sample_output: Any = None) -> dict[str, Any]:
    """The signature of a model, from a sample of its input and of its output.

    Parameters
    ----------
    sample_input : Any
        A batch the model accepts: a pandas DataFrame or Series, a numpy array, a torch tensor,
        a nested list of numbers, a list of records or a dict of columns. None gives ``{}``.
    sample_output : Any, optional
        The model's predictions on ``sample_input``; None leaves ``outputs`` None.

    Returns
    -------
    dict
        ``{"inputs": spec, "outputs": spec or None}`` (see the module docstring), or ``{}``.
    """
    if sample_input is None:
        return {}
    return {
        "inputs": _spec_of(sample_input),
        "outputs": None if sample_output is None else _spec_of(sample_output),
    }


def _spec_of(value: Any) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return {"type": "dataframe", "columns": [_column_spec(c, value[c]) for c in value.columns]}
    if isinstance(value, pd.Series):
        col = _column_spec(value.name, value)
        return {"type": "series", "name": col["name"], "dtype": col["dtype"]}
    if _is_tensor(value):
        arr = _tensor_to_numpy(value)
        return _tensor_spec(arr, dtype=str(value.dtype).removeprefix("torch."))
    if isinstance(value, np.ndarray):
        return _tensor_spec(value)
    if isinstance(value, Mapping):
        return _spec_of(_frame_from_mapping(value))
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if value and all(isinstance(r, Mapping) for r in value):
            return _spec_of(pd.DataFrame.from_records(list(value)))
        try:
            arr = np.asarray(value)
        except ValueError:
            arr = None
        if arr is not None and arr.dtype != object:
            return _tensor_spec(arr)
    t = type(value)
    return {"type": "object", "python_type": f"{t.__module__}.{t.__qualname__}"}


def _tensor_spec(arr: Any, dtype: str | None = None) -> dict[str, Any]:
    shape = [int(d) for d in arr.shape]
    if shape:
        shape[0] = -1
    return {"type": "tensor", "dtype": dtype or _dtype_name(arr.dtype, arr), "shape": shape}


def _column_spec(name: Any, col: Any) -> dict[str, Any]:
    import pandas as pd

    spec: dict[str, Any] = {"name": str(name), "dtype": _dtype_name(col.dtype, col)}
    if isinstance(col.dtype, pd.CategoricalDtype):
        spec["categories"] = [_plain(c) for c in col.dtype.categories]
    return spec


def _plain(v: Any) -> Any:
    # numpy scalars -> Python scalars, so the signature stays JSON-able
    return v.item() if hasattr(v, "item") else v


def _dtype_name(dtype: Any, values: Any = None) -> str:
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "US"):
        return _STRING
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, np.dtype) and dtype.kind == "O" and values is not None:
        flat = values.ravel() if isinstance(values, np.ndarray) else values
        present = [v for v in flat if not _is_missing(v)]
        if present and all(isinstance(v, str) for v in present):
            return _STRING
        return "object"
    return str(dtype)


def _is_missing(v: Any) -> bool:
    import pandas as pd

    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _is_tensor(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _tensor_to_numpy(value: Any) -> Any:
    import torch

    t = value.detach().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16
        t = t.float()
    return t.numpy()


def _frame_from_mapping(value: Mapping[str, Any]) -> Any:
    import numpy as np
    import pandas as pd

    # {"age": 3, "plan": "a"} is one record; {"age": [3, 4], ...} is a dict of columns
    if all(np.ndim(v) == 0 for v in value.values()):
        return pd.DataFrame([dict(value)])
    return pd.DataFrame(dict(value))


# -- description -----------------------------------------------------------------------------


def describe(signature: dict[str, Any]) -> str:
    """One line for humans, e.g. ``dataframe[age: int64, plan: string] -> tensor int64 [-1]``.

    Parameters
    ----------
    signature : dict
        What :func:`infer_signature` returned.

    Returns
    -------
    str
    """
    if not signature or not signature.get("inputs"):
        return "no signature"
    text = _describe_spec(signature["inputs"])
    if signature.get("outputs"):
        text += " -> " + _describe_spec(signature["outputs"])
    return text


def _describe_spec(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "dataframe":
        cols = ", ".join(f"{c['name']}: {c['dtype']}" for c in spec["columns"])
        return f"dataframe[{cols}]"
    if kind == "series":
        return f"series {spec.get('name')}: {spec['dtype']}"
    if kind == "tensor":
        return f"tensor {spec['dtype']} {spec['shape']}"
    return f"object {spec.get('python_type', '?')}"


# -- Open Inference Protocol -----------------------------------------------------------------

_V2_TYPES = {
    "bool": "BOOL",
    "boolean": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "bfloat16": "BF16",
    "float32": "FP32",
    "float64": "FP64",
}


def _v2_datatype(dtype: str) -> str:
    # pandas nullable ints ("Int64", "UInt8") share the numpy names once lower-cased; text,
    # categories, datetimes and objects travel as BYTES (strings), as in MLServer's codecs
    return _V2_TYPES.get(dtype.lower(), "BYTES")


def to_v2_metadata(signature: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The signature as Open Inference Protocol (KServe v2) tensor metadata.

    A dataframe becomes one tensor per column, named after it, of shape ``[-1, 1]`` (the
    layout of MLServer's pandas codec); a series one tensor of shape ``[-1]``; a tensor one
    tensor named ``input-0`` (``output-0`` for outputs) of its own shape.

    Parameters
    ----------
    signature : dict
        What :func:`infer_signature` returned.

    Returns
    -------
    dict
        ``{"inputs": [{"name", "datatype", "shape"}, ...], "outputs": [...]}``; empty lists
        for a missing side.
    """
    out: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for side, default in (("inputs", "input-0"), ("outputs", "output-0")):
        spec = (signature or {}).get(side)
        if not spec:
            continue
        kind = spec.get("type")
        if kind == "dataframe":
            out[side] = [
                {"name": c["name"], "datatype": _v2_datatype(c["dtype"]), "shape": [-1, 1]}
                for c in spec["columns"]
            ]
        elif kind == "series":
            name = spec.get("name")
            out[side] = [
                {
                    "name": default if name in (None, "None") else str(name),
                    "datatype": _v2_datatype(spec["dtype"]),
                    "shape": [-1],
                }
            ]
        elif kind == "tensor":
            out[side] = [
                {"name": default, "datatype": _v2_datatype(spec["dtype"]), "shape": spec["shape"]}
            ]
        else:
            out[side] = [{"name": default, "datatype": "BYTES", "shape": [-1]}]
    return out


# -- checking --------------------------------------------------------------------------------


def check_input(signature: dict[str, Any], X: Any) -> Any:
    """Validate ``X`` against a signature and convert it to the type the model was saved with.

    Parameters
    ----------
    signature : dict
        A signature (``{"inputs": ..., "outputs": ...}``) or just its ``inputs`` spec. An empty
        signature, or an ``object`` spec, accepts anything and returns ``X`` unchanged.
    X : Any
        The request: a DataFrame, a list of records, a dict of columns (or one record), a list
        of rows, a numpy array or a torch tensor.

    Returns
    -------
    Any
        A DataFrame with the signature's columns in its order (others dropped), a Series, or a
        numpy array of the signature's dtype.

    Raises
    ------
    SignatureError
        ``X`` does not fit; the message says what was wrong and what was expected: missing
        columns, a wrong shape (``expected shape [-1, 4], got [3, 5]``) or values that cannot
        be cast without changing them (text into a number column, 2.5 into an int column).
        Widening casts (int into float) are done.
    """
    spec = signature.get("inputs", signature) if signature else None
    if not spec or "type" not in spec:
        return X
    kind = spec["type"]
    if kind == "dataframe":
        return _check_frame(spec, X)
    if kind == "series":
        return _check_series(spec, X)
    if kind == "tensor":
        return _check_tensor(spec, X)
    return X


def _check_frame(spec: dict[str, Any], X: Any) -> Any:
    import numpy as np
    import pandas as pd

    expected = _describe_spec(spec)
    columns = spec["columns"]
    names = [c["name"] for c in columns]
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, Mapping):
        try:
            frame = _frame_from_mapping(X)
        except ValueError as exc:
            raise SignatureError(f"input columns cannot form a table ({exc}); expected {expected}")
    elif isinstance(X, pd.Series) or _is_tensor(X):
        raise SignatureError(f"got a {_kind_of(X)}; expected {expected}")
    elif isinstance(X, (np.ndarray, Sequence)) and not isinstance(X, (str, bytes)):
        if len(X) and all(isinstance(r, Mapping) for r in X):
            frame = pd.DataFrame.from_records(list(X))
        else:
            # rows without names: positional, in the signature's column order
            arr = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
            if arr.ndim != 2 or arr.shape[1] != len(names):
                raise SignatureError(
                    f"rows without column names must have {len(names)} values each, in the "
                    f"order {names}; got shape {list(arr.shape)}; expected {expected}"
                )
            frame = pd.DataFrame(arr, columns=names)
    else:
        raise SignatureError(f"got a {_kind_of(X)}; expected {expected}")

    by_name = {str(c): c for c in frame.columns}
    missing = [n for n in names if n not in by_name]
    if missing:
        extra = [n for n in by_name if n not in set(names)]
        also = f" (unexpected columns: {_shorten(extra)})" if extra else ""
        raise SignatureError(f"missing columns: {missing}{also}; expected {expected}")
    problems: list[str] = []
    out = {}
    for col in columns:
        values = frame[by_name[col["name"]]]
        try:
            out[col["name"]] = _cast_series(values, col["dtype"], col.get("categories"))
        except _CastError as exc:
            problems.append(f"column {col['name']!r} ({col['dtype']}): {exc}")
    if problems:
        raise SignatureError("; ".join(problems) + f"; expected {expected}")
    return pd.DataFrame(out, index=frame.index)


def _check_series(spec: dict[str, Any], X: Any) -> Any:
    import numpy as np
    import pandas as pd

    expected = _describe_spec(spec)
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise SignatureError(f"got a dataframe with {X.shape[1]} columns; expected {expected}")
        X = X.iloc[:, 0]
    elif _is_tensor(X):
        X = _tensor_to_numpy(X)
    if not isinstance(X, pd.Series):
        arr = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
        if arr.ndim != 1:
            raise SignatureError(f"got shape {list(arr.shape)}; expected {expected}")
        X = pd.Series(arr)
    name = spec.get("name")
    try:
        out = _cast_series(X, spec["dtype"], None)
    except _CastError as exc:
        raise SignatureError(f"{exc}; expected {expected}")
    out.name = None if name in (None, "None") else name
    return out


def _check_tensor(spec: dict[str, Any], X: Any) -> Any:
    import numpy as np
    import pandas as pd

    expected_shape = spec["shape"]
    dtype = spec["dtype"]
    if _is_tensor(X):
        arr = _tensor_to_numpy(X)
    elif isinstance(X, (pd.DataFrame, pd.Series)):
        arr = X.to_numpy()
    elif isinstance(X, Mapping):
        raise SignatureError(
            f"got a dict of named fields; expected {_describe_spec(spec)} (a list of rows)"
        )
    else:
        try:
            arr = np.asarray(X)
        except ValueError as exc:  # ragged nested lists
            raise SignatureError(
                f"input is not a rectangular array ({exc}); expected shape {expected_shape}"
            )
        if arr.dtype.kind in "US" and not isinstance(X, np.ndarray):
            # numpy turned mixed numbers and text into all text; keep what the client sent
            arr = np.asarray(X, dtype=object)
    got = list(arr.shape)
    if len(got) != len(expected_shape) or any(
        e != -1 and e != g for e, g in zip(expected_shape, got)
    ):
        raise SignatureError(f"expected shape {expected_shape}, got {got}")
    try:
        return _cast_array(arr, dtype)
    except _CastError as exc:
        raise SignatureError(f"{exc}; expected {_describe_spec(spec)}")


# -- casts -----------------------------------------------------------------------------------


class _CastError(Exception):
    """Values that cannot be converted without changing them; the message says which."""


def _kind_of(X: Any) -> str:
    return type(X).__name__


def _shorten(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(_plain(v)) for v in list(values)[:_MAX_SHOWN])
    more = f", ... ({len(values)} in all)" if len(values) > _MAX_SHOWN else ""
    return f"[{shown}{more}]"


def _numeric_family(dtype: str) -> str | None:
    import numpy as np

    try:
        kind = np.dtype(dtype.lower()).kind
    except TypeError:
        return None
    return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(kind)


def _cast_array(arr: Any, dtype: str) -> Any:
    """``arr`` as numpy dtype ``dtype``, refusing casts that would change values."""
    import numpy as np

    family = _numeric_family(dtype)
    if dtype == _STRING:
        bad = [v for v in arr.ravel().tolist() if not isinstance(v, str)]
        if bad:
            raise _CastError(f"expected text, got {_shorten(bad)}")
        return arr.astype(object) if arr.dtype != object else arr
    if family is None:
        try:
            return arr.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise _CastError(f"cannot convert to {dtype}: {exc}")
    target = np.dtype(dtype)
    if arr.dtype.kind in "OUS":
        arr = _numbers_from_objects(arr, family)
    src = arr.dtype.kind
    if family == "bool":
        if src != "b":
            raise _CastError(f"expected booleans, got {arr.dtype} values")
        return arr
    if family == "float":
        if src not in "biuf":
            raise _CastError(f"expected numbers, got {arr.dtype} values")
        return arr.astype(target, copy=False)
    # int target
    if src == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            raise _CastError(f"missing or infinite values cannot be {dtype}")
        fractional = arr[arr != np.round(arr)]
        if fractional.size:
            raise _CastError(f"values with a fraction cannot be {dtype}: {_shorten(fractional)}")
    elif src not in "biu":
        raise _CastError(f"expected integers, got {arr.dtype} values")
    if arr.size and src in "iuf":
        info = np.iinfo(target)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise _CastError(f"values out of range for {dtype}: {_shorten([lo, hi])}")
    return arr.astype(target)


def _numbers_from_objects(arr: Any, family: str) -> Any:
    """An object/str array of Python numbers as a numeric array; text or others refused."""
    import numpy as np

    flat = arr.ravel().tolist()
    if family == "bool":
        bad = [v for v in flat if not isinstance(v, (bool, np.bool_))]
    else:
        # bool is an int to Python, but True in a number column is almost always a mistake
        bad = [
            v
            for v in flat
            if not _is_missing(v)
            and (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)))
        ]
    if bad:
        what = "booleans" if family == "bool" else "numbers"
        raise _CastError(f"expected {what}, got {_shorten(bad)}")
    if family == "bool":
        return np.asarray(flat, dtype=bool).reshape(arr.shape)
    if any(_is_missing(v) for v in flat):
        # None / pd.NA mean missing; only a float can hold that
        flat = [math.nan if _is_missing(v) else v for v in flat]
        return np.asarray(flat, dtype=float).reshape(arr.shape)
    if all(isinstance(v, (int, np.integer)) for v in flat):
        try:
            return np.asarray(flat, dtype=np.int64).reshape(arr.shape)
        except OverflowError:
            raise _CastError("integers too large for int64")
    return np.asarray(flat, dtype=float).reshape(arr.shape)


def _cast_series(col: Any, dtype: str, categories: list[Any] | None) -> Any:
    """One column as ``dtype`` (a signature dtype name)."""
    import numpy as np
    import pandas as pd

    if dtype == _STRING:
        present = col[~col.isna()]
        bad = [v for v in present.tolist() if not isinstance(v, str)]
        if bad:
            raise _CastError(f"expected text, got {_shorten(bad)}")
        return col.astype(object)
    if dtype == "category":
        present = col[~col.isna()]
        if categories is not None:
            unknown = sorted({v for v in present.tolist() if v not in set(categories)}, key=str)
            if unknown:
                raise _CastError(
                    f"unknown categories {_shorten(unknown)}; known: {_shorten(categories)}"
                )
            return col.astype(pd.CategoricalDtype(categories))
        return col.astype("category")
    if dtype.startswith("datetime64"):
        try:
            out = pd.to_datetime(col, errors="raise")
            return out.astype(dtype) if str(out.dtype) != dtype else out
        except (ValueError, TypeError) as exc:
            raise _CastError(f"values are not dates/times: {exc}")
    if dtype in ("object",):
        return col
    family = _numeric_family(dtype)
    if family is None or dtype[0].isupper() or dtype == "boolean":
        # pandas extension dtypes (Int64, boolean, ...): let pandas decide what is exact
        try:
            return col.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise _CastError(f"cannot convert to {dtype}: {exc}")
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    values = col.to_numpy()
    if values.dtype.kind in "OUS":
        values = np.asarray(values, dtype=object)
    return pd.Series(_cast_array(values, dtype), index=col.index, name=col.name)
