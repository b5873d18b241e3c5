"""Request and response bodies: V2 (Open Inference Protocol), V1 and MLflow scoring.

Decoders turn a parsed JSON body into what :func:`~jupyter_mlplat.tracking.signature.check_input`
accepts (a DataFrame, a dict of columns, records, rows or an array); the model's signature then
checks and converts it. Encoders turn predictions into JSON. Every client mistake raises
:class:`~jupyter_mlplat.errors.InvalidSpecError` (or its subclass ``SignatureError``) with a
message that says what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidSpecError, SignatureError

#: V2 datatypes and the Python values each takes.
V2_DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES"}
_NUMPY_TO_V2 = {"b": "BOOL", "i": "INT", "u": "UINT", "f": "FP"}

V2_EXAMPLE = ('{"inputs": [{"name": "age", "shape": [2, 1], "datatype": "INT64", '
              '"data": [31, 45]}]}')
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_json(body: bytes) -> Any:
    """The body as JSON; InvalidSpecError (400) when it is not."""
    if not body:
        raise InvalidSpecError("the request body is empty; expected a JSON document")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidSpecError(f"the request body is not valid JSON: {exc}")
    except RecursionError:
        raise InvalidSpecError("JSON nested too deeply") from None


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidSpecError(f"expected a JSON object as the {what} body, got "
                               f"{type(body).__name__}")
    return dict(body)


# -- V2 --------------------------------------------------------------------------------------


def decode_v2(body: Any, signature: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    """A V2 inference request -> (model input, request id).

    With a dataframe signature, inputs named after columns form a table (one input per column,
    shape ``[n]`` or ``[n, 1]``); a single other input of shape ``[n, k]`` is ``n`` rows of the
    ``k`` columns in signature order. Otherwise a single input is an array of its ``shape``, and
    several inputs a dict of columns.

    Raises
    ------
    InvalidSpecError
        The body is not a V2 request, or an input's data does not fit its shape or datatype.
    """
    body = _object(body, "V2 inference request")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidSpecError(f"a V2 request needs a non-empty 'inputs' list, e.g. {V2_EXAMPLE}")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidSpecError("'id' must be a string")
    tensors = [_v2_tensor(i, t) for i, t in enumerate(inputs)]
    names = [n for n, _ in tensors]
    if len(set(names)) != len(names):
        raise InvalidSpecError(f"input names must be unique; got {names}")
    spec = (signature or {}).get("inputs") or {}
    columns = [c["name"] for c in spec.get("columns", [])] if spec.get("type") == "dataframe" \
        else []
    if len(tensors) == 1 and not (columns and names[0] in columns):
        return tensors[0][1], request_id
    out = {}
    for name, arr in tensors:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise SignatureError(f"input {name!r} has shape {list(arr.shape)}; one input per "
                                 "column must have shape [n] or [n, 1]")
        out[name] = arr
    lengths = {len(a) for a in out.values()}
    if len(lengths) > 1:
        raise SignatureError("column inputs have different lengths: "
                             + ", ".join(f"{n}: {len(a)}" for n, a in out.items()))
    return out, request_id


def _v2_tensor(i: int, tensor: Any) -> tuple[str, Any]:
    import numpy as np

    if not isinstance(tensor, Mapping):
        raise InvalidSpecError(f"inputs[{i}] must be an object with name, shape, datatype and "
                               f"data, e.g. {V2_EXAMPLE}")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
    if missing:
        raise InvalidSpecError(f"inputs[{i}] lacks {missing}; expected name, shape, datatype "
                               f"and data, e.g. {V2_EXAMPLE}")
    name, shape, datatype, data = (tensor["name"], tensor["shape"], tensor["datatype"],
                                   tensor["data"])
    if not isinstance(name, str) or not name:
        raise InvalidSpecError(f"inputs[{i}].name must be a non-empty string")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidSpecError(f"input {name!r}: shape must be a list of non-negative integers, "
                               f"got {shape!r}")
    if datatype not in V2_DATATYPES:
        raise InvalidSpecError(f"input {name!r}: datatype {datatype!r} is not one of "
                               f"{sorted(V2_DATATYPES)}")
    flat = _flatten(data, name)
    size = math.prod(shape)
    if len(flat) != size:
        raise SignatureError(f"input {name!r}: shape {shape} needs {size} values, got "
                             f"{len(flat)}")
    _check_values(name, datatype, flat)
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return name, _narrow(arr.reshape(shape))


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if isinstance(item, Mapping):
                raise InvalidSpecError(f"input {name!r}: data must hold values, not objects")
            out.append(item)
        else:
            stack.pop()
    return out


def _check_values(name: str, datatype: str, flat: list[Any]) -> None:
    if datatype == "BYTES":
        return
    if datatype == "BOOL":
        bad = [v for v in flat if not isinstance(v, bool)]
        what = "booleans"
    else:
        bad = [v for v in flat if v is not None and (isinstance(v, bool) or
                                                      not isinstance(v, (int, float)))]
        if datatype[0] in "IU" and not bad:
            bad = [v for v in flat if isinstance(v, float) and not v.is_integer()]
        what = "integers" if datatype[0] in "IU" else "numbers"
    if bad:
        shown = ", ".join(repr(v) for v in bad[:5])
        raise SignatureError(f"input {name!r} is declared {datatype} (expected {what}) but "
                             f"holds {shown}")


def _narrow(arr: Any) -> Any:
    """An object array of plain numbers as a numeric one (text stays object)."""
    import numpy as np

    flat = arr.ravel().tolist()
    if flat and all(isinstance(v, bool) for v in flat):
        return arr.astype(bool)
    if flat and all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        try:
            return arr.astype(np.int64)
        except OverflowError:
            return arr
    if flat and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                    for v in flat):
        return np.asarray([math.nan if v is None else v for v in flat],
                          dtype=float).reshape(arr.shape)
    return arr


def encode_v2(outputs: Any, *, model_name: str, model_version: str, request_id: str | None,
              signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predictions as a V2 inference response.

    A DataFrame gives one output per column; anything else one output named after the
    signature's output (``output-0`` by default), with its shape and datatype.
    """
    import pandas as pd

    if isinstance(outputs, pd.DataFrame):
        tensors = [_v2_output(str(c), outputs[c].to_numpy()) for c in outputs.columns]
    else:
        from ..tracking.signature import to_v2_metadata

        meta = to_v2_metadata(signature or {}).get("outputs") or []
        name = meta[0]["name"] if len(meta) == 1 else "output-0"
        tensors = [_v2_output(name, _array(outputs))]
    out: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:  # no id asked, none answered
        out["id"] = request_id
    out["outputs"] = tensors
    return out


def _v2_output(name: str, arr: Any) -> dict[str, Any]:
    kind = arr.dtype.kind
    if kind in _NUMPY_TO_V2:
        datatype = "BOOL" if kind == "b" else f"{_NUMPY_TO_V2[kind]}{arr.dtype.itemsize * 8}"
    else:
        datatype = "BYTES"
    return {"name": name, "shape": list(arr.shape), "datatype": datatype,
            "data": _jsonable(arr.ravel())}


# -- V1 and MLflow ---------------------------------------------------------------------------


def decode_v1(body: Any) -> Any:
    """A V1 request ``{"instances": [...]}`` -> model input (rows, records or values)."""
    body = _object(body, "V1 predict")
    instances = body.get("instances", body.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise InvalidSpecError('a V1 request needs a non-empty "instances" list, e.g. '
                               '{"instances": [[1.0, 2.0], [3.0, 4.0]]} or '
                               '{"instances": [{"age": 31, "plan": "a"}]}')
    return _rows(instances)


def decode_mlflow(body: Any) -> Any:
    """An MLflow scoring body -> model input.

    Exactly one of ``dataframe_split`` (``{"columns": [...], "data": [[...]]}``),
    ``dataframe_records`` (``[{col: value}, ...]``), ``instances`` or ``inputs`` (rows,
    records, or a dict of columns).
    """
    import pandas as pd

    body = _object(body, "MLflow scoring")
    keys = [k for k in MLFLOW_KEYS if k in body]
    if len(keys) != 1:
        got = f"got {sorted(body)}" if body else "got an empty object"
        raise InvalidSpecError(f"an MLflow scoring body needs exactly one of {list(MLFLOW_KEYS)}"
                               f"; {got}")
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, Mapping) or not isinstance(value.get("data"), list):
            raise InvalidSpecError('dataframe_split must be {"columns": [...], "data": '
                                   '[[...], ...]}')
        columns = value.get("columns")
        if columns is not None and (not isinstance(columns, list) or
                                    not all(isinstance(c, str) for c in columns)):
            raise InvalidSpecError("dataframe_split.columns must be a list of column names")
        data = value["data"]
        if not all(isinstance(r, list) for r in data):
            raise InvalidSpecError("dataframe_split.data must be a list of rows (lists)")
        if columns is not None and any(len(r) != len(columns) for r in data):
            raise SignatureError(f"every row of dataframe_split.data must have {len(columns)} "
                                 f"values (columns {columns})")
        if columns is None:
            return _rows(data)
        return pd.DataFrame(data, columns=columns)
    if key == "dataframe_records":
        if not isinstance(value, list) or not value or not all(isinstance(r, Mapping)
                                                               for r in value):
            raise InvalidSpecError("dataframe_records must be a non-empty list of objects "
                                   '({"column": value})')
        return pd.DataFrame.from_records(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if not isinstance(value, list) or not value:
        raise InvalidSpecError(f"{key} must be a non-empty list of rows or records, or an "
                               "object of columns")
    return _rows(value)


def parse_csv(body: bytes) -> Any:
    """A ``text/csv`` scoring body (a header row, then one row per line) -> a DataFrame, as
    ``mlflow models serve`` accepts it."""
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidSpecError(f"the body is not valid CSV ({str(exc).splitlines()[0][:200]}); "
                               "expected a header row of column names, then one row per "
                               "line") from None
    if frame.empty:
        raise InvalidSpecError("the CSV body has no rows; expected a header row, then rows")
    return frame


def _rows(values: list[Any]) -> Any:
    """Records stay records; rows of numbers become an array; mixed rows stay lists."""
    import numpy as np

    if all(isinstance(v, Mapping) for v in values):
        return [dict(v) for v in values]
    if any(isinstance(v, Mapping) for v in values):
        raise InvalidSpecError("instances mix objects and rows; send all records "
                               '({"column": value}) or all rows ([value, ...])')
    try:
        arr = np.asarray(values)
    except ValueError as exc:
        raise SignatureError(f"instances are not a rectangular array: {exc}")
    if arr.dtype.kind in "biuf":
        return arr
    return values


def encode_predictions(outputs: Any) -> dict[str, Any]:
    """``{"predictions": [...]}``: a list per row (a DataFrame: one record per row)."""
    import pandas as pd

    if isinstance(outputs, pd.DataFrame):
        records = outputs.astype(object).where(outputs.notna(), None).to_dict("records")
        return {"predictions": [{k: _scalar(v) for k, v in r.items()} for r in records]}
    return {"predictions": _jsonable(_array(outputs))}


# -- JSON helpers ----------------------------------------------------------------------------


def _array(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _jsonable(arr: Any) -> list[Any]:
    """Nested lists of plain values; NaN/inf become null, datetimes ISO text."""
    if arr.dtype.kind == "f":
        import numpy as np

        if not np.isfinite(arr).all():
            obj = arr.astype(object)
            obj[~np.isfinite(arr)] = None
            return obj.tolist()
        return arr.tolist()
    if arr.dtype.kind in "biu":
        return arr.tolist()
    if arr.dtype.kind in "Mm":
        return arr.astype(str).tolist()
    return _plain_nested(arr.tolist())


def _plain_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain_nested(v) for v in value]
    return _scalar(value)


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "item"):
        return _scalar(v.item())
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)
