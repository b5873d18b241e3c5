"""Typed save/load of step outputs, in formats that load without running code where one exists.

===========================  ===============  ===============================================
value                        format           loaded with
===========================  ===============  ===============================================
JSON-able Python (+ tuples,  ``json``         ``json.loads``; tuples, non-finite floats and
non-str dict keys)                            non-str dict keys are tagged (``_json_encode``)
``numpy.ndarray``, scalars   ``npy``          ``np.load(allow_pickle=False)``; scalars as 0-d
``pandas.DataFrame/Series``  ``parquet``      pyarrow; written only if it reads back the same
torch tensors, tensor dicts  ``torch``        ``torch.load(weights_only=True)``
``torch.nn.Module``          ``torchscript``  ``torch.jit.load`` (scripted at save)
scikit-learn objects         ``skops``        ``skops.io.load``, the project's trusted types
anything else                ``cloudpickle``  pickle; ``trusted_only``: its producer only
===========================  ===============  ===============================================

A value whose natural format cannot hold it exactly (an object column, a module TorchScript
cannot compile, a scikit-learn pipeline with a custom class) falls back to cloudpickle, and the
reason is kept in ``ArtifactRef.meta["fallback_reason"]``. numpy, pandas, torch, skops and
cloudpickle are imported only when a value needs them.

Same value, same bytes (so cached downstream steps hit), across processes: json, npy, parquet
(for one pyarrow version), torch tensors, and skops after :func:`_canonical_skops` renumbers its
object ids and fixes its zip timestamps. TorchScript writes a module's constants in set order, so
it is stable only under one ``PYTHONHASHSEED`` (step kernels should pin it). cloudpickle output
is not guaranteed to be stable.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import math
import os
import pickle
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

from jupyter_mlplat.errors import NotFoundError, SerializationError, UnsafeArtifactError
from jupyter_mlplat.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = (
    "npy",
    "parquet",
    "torch",
    "torchscript",
    "skops",
    "json",
    "cloudpickle",
)
_EXT = {
    "npy": ".npy",
    "parquet": ".parquet",
    "torch": ".pt",
    "torchscript": ".pt",
    "skops": ".skops",
    "json": ".json",
    "cloudpickle": ".pkl",
}
_SUPPORTED = (
    "Outputs must be numpy arrays, pandas DataFrames/Series, torch tensors or modules, "
    "scikit-learn estimators, JSON-able values (None, bool, int, float, str, lists, tuples, "
    "dicts), or objects cloudpickle can serialise"
)


@dataclass(frozen=True)
class ArtifactRef:
    """A saved step output: where it is, how it was written and what it was.

    ``format`` is one of :data:`FORMATS`; ``type_name`` is the value's ``module.qualname``;
    ``trusted_only`` means loading it runs code or trusts content from its producer, so only a
    loader that trusts the producer (its owner) may load it; ``meta`` holds format details.
    """

    name: str
    sha256: str
    uri: str
    format: str
    type_name: str
    size: int
    trusted_only: bool
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the form stored in the SQL store and sent over HTTP)."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "uri": self.uri,
            "format": self.format,
            "type_name": self.type_name,
            "size": self.size,
            "trusted_only": self.trusted_only,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        """The inverse of :meth:`to_dict`."""
        fmt = data["format"]
        if fmt not in FORMATS:
            raise SerializationError(f"artifact {data.get('name')!r} has unknown format {fmt!r}")
        return cls(
            name=str(data["name"]),
            sha256=str(data["sha256"]),
            uri=str(data["uri"]),
            format=fmt,
            type_name=str(data["type_name"]),
            size=int(data["size"]),
            trusted_only=bool(data["trusted_only"]),
            meta=dict(data.get("meta") or {}),
        )


def fingerprint(ref: ArtifactRef) -> str:
    """The content hash that step versions use for an input artifact."""
    return ref.sha256


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def _short_type_name(value: Any) -> str:
    name = _type_name(value)
    return name.removeprefix("builtins.")


# -- save ------------------------------------------------------------------------------------


@dataclass
class _Written:
    format: str
    trusted_only: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class _Fallback(Exception):
    """The value's own format cannot hold it exactly; carries the reason."""


def save_value(value: Any, *, name: str, step: str, store: ArtifactStore) -> ArtifactRef:
    """Save one step output into the artifact store.

    Parameters
    ----------
    value : Any
        The output.
    name : str
        The variable name (recorded on the ref and used in error messages).
    step : str
        The producing step's name (for error messages).
    store : ArtifactStore
        Where the object goes.

    Returns
    -------
    ArtifactRef

    Raises
    ------
    SerializationError
        The value cannot be saved in any format; the message names the variable, its type and
        the step, and says what is supported.
    """
    if isinstance(value, types.ModuleType):
        raise SerializationError(
            f"step {step!r}: cannot save output {name!r} of type module: modules are not step "
            "outputs; import it in the consuming step (or in an `imports` cell)"
        )
    # Stage next to a local store rather than in /tmp, which is often small (containers, pods).
    staging = os.path.join(store.root, ".staging") if store.is_local else None
    if staging:
        os.makedirs(staging, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlplat-save-", dir=staging) as tmp:
        path = os.path.join(tmp, "value")
        written = _write(value, path, name=name, step=step)
        info = store.put_file(path, _EXT[written.format])
    return ArtifactRef(
        name=name,
        sha256=info.sha256,
        uri=info.uri,
        format=written.format,
        type_name=_type_name(value),
        size=info.size,
        trusted_only=written.trusted_only,
        meta=written.meta,
    )


def save_values(
    values: dict[str, Any], *, step: str, store: ArtifactStore
) -> dict[str, ArtifactRef]:
    """Save every output of a step; see :func:`save_value`."""
    return {name: save_value(v, name=name, step=step, store=store) for name, v in values.items()}


def _write(value: Any, path: str, *, name: str, step: str) -> _Written:
    reason = None
    try:
        for writer in (_try_json, _try_numpy, _try_pandas, _try_torch, _try_skops):
            written = writer(value, path)
            if written is not None:
                return written
    except _Fallback as exc:
        reason = str(exc)
        log.info(
            "step %r: output %r (%s) saved with cloudpickle: %s",
            step,
            name,
            _type_name(value),
            reason,
        )
    try:
        _write_cloudpickle(value, path)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means "cannot save"
        raise SerializationError(
            f"step {step!r}: cannot save output {name!r} of type {_short_type_name(value)}: "
            f"cloudpickle failed ({type(exc).__name__}: {exc}). {_SUPPORTED}; {_hint(value)}"
        ) from exc
    meta = {"fallback_reason": reason} if reason else {}
    return _Written("cloudpickle", trusted_only=True, meta=meta)


def _hint(value: Any) -> str:
    if isinstance(value, io.IOBase):
        return "save its content or its path instead, and reopen it in the consuming step"
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)) or (
        hasattr(value, "__next__") and hasattr(value, "__iter__")
    ):
        return "make it a list or recompute it in the consuming step"
    return "convert it to one of these types, or create it in the consuming step"


def _write_cloudpickle(value: Any, path: str) -> None:
    import cloudpickle

    with open(path, "wb") as f:
        cloudpickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)


# json ----------------------------------------------------------------------------------------

_TAG_TUPLE, _TAG_FLOAT, _TAG_DICT = "__tuple__", "__float__", "__dict__"
_TAGS = frozenset({_TAG_TUPLE, _TAG_FLOAT, _TAG_DICT})


class _NotJSON(Exception):
    pass


def _json_encode(v: Any) -> Any:
    """Plain JSON where possible; tuples, nan/inf and dicts with non-str keys (or a key that
    looks like a tag) become one-key tagged objects, so every value decodes to its exact type."""
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        return v if math.isfinite(v) else {_TAG_FLOAT: repr(v)}
    if t is list:
        return [_json_encode(x) for x in v]
    if t is tuple:
        return {_TAG_TUPLE: [_json_encode(x) for x in v]}
    if t is dict:
        if all(type(k) is str for k in v) and not (len(v) == 1 and next(iter(v)) in _TAGS):
            return {k: _json_encode(x) for k, x in v.items()}
        return {_TAG_DICT: [[_json_key(k), _json_encode(x)] for k, x in v.items()]}
    raise _NotJSON(t)


def _json_key(k: Any) -> Any:
    if k is None or type(k) in (bool, int, float, str, tuple):
        return _json_encode(k)
    raise _NotJSON(type(k))


def _json_decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, payload),) = obj.items()
        if tag == _TAG_TUPLE:
            return tuple(payload)
        if tag == _TAG_FLOAT:
            if payload not in ("nan", "inf", "-inf"):
                raise ValueError(f"bad float tag {payload!r}")
            return float(payload)
        if tag == _TAG_DICT:
            return {k: v for k, v in payload}
    return obj


def _json_dumps(value: Any) -> str:
    return json.dumps(
        _json_encode(value), ensure_ascii=True, allow_nan=False, separators=(",", ":")
    )


def _json_loads(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_json_decode_hook)


def _try_json(value: Any, path: str) -> _Written | None:
    try:
        text = _json_dumps(value)
    except (_NotJSON, RecursionError, ValueError):
        return None
    with open(path, "w", encoding="ascii") as f:
        f.write(text)
    return _Written("json")


# numpy ---------------------------------------------------------------------------------------


def _try_numpy(value: Any, path: str) -> _Written | None:
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
        raise _Fallback(f"numpy dtype {arr.dtype} holds Python objects")
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return _Written("npy", meta=meta)


# pandas --------------------------------------------------------------------------------------

_SERIES_COLUMN = "__series__"
# Object columns whose values pyarrow reads back as the same Python objects.
_PARQUET_OBJECT_KINDS = frozenset({"bytes", "date", "decimal", "empty"})


def _try_pandas(value: Any, path: str) -> _Written | None:
    pd = sys.modules.get("pandas")
    if pd is None or type(value) not in (pd.DataFrame, pd.Series):
        return None
    meta: dict[str, Any] = {}
    if type(value) is pd.Series:
        try:
            encoded_name = _json_encode(value.name)
        except _NotJSON:
            raise _Fallback(f"series name of type {type(value.name).__name__}") from None
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
        raise _Fallback(f"parquet: {type(exc).__name__}: {exc}") from None
    problem = _parquet_reads_back_differently(frame, path, pd)
    if problem:
        raise _Fallback(f"parquet does not round-trip it exactly: {problem}")
    freq = getattr(frame.index, "freq", None)
    if freq is not None and isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        meta["index_freq"] = freq.freqstr
    return _Written("parquet", meta=meta)


def _check_object_columns(frame: Any, pd: Any) -> None:
    # Checked before writing: pyarrow reads some object values back as other types
    # (dicts as structs with every key, lists as arrays, NaN as None).
    levels = [frame.index.get_level_values(i) for i in range(frame.index.nlevels)]
    columns = [frame.iloc[:, i] for i in range(frame.shape[1])]
    for col in levels + columns:
        if col.dtype == object:
            kind = pd.api.types.infer_dtype(col, skipna=False)
            if kind not in _PARQUET_OBJECT_KINDS:
                raise _Fallback(f"object column {col.name!r} holds {kind} values")


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


def _read_parquet(path: str, meta: dict[str, Any]) -> Any:
    import pandas as pd

    frame = pd.read_parquet(path, engine="pyarrow")
    freq = meta.get("index_freq")
    if freq and isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        frame.index = type(frame.index)(frame.index, freq=freq)
    if meta.get("kind") == "series":
        series = frame.iloc[:, 0]
        series.name = _json_decode_value(meta.get("name"))
        return series
    return frame


def _json_decode_value(encoded: Any) -> Any:
    # meta values were encoded with _json_encode; round-trip them through the decoder
    return _json_loads(json.dumps(encoded))


# torch ---------------------------------------------------------------------------------------


def _is_tensor_tree(value: Any, torch: Any, depth: int = 0) -> tuple[bool, bool]:
    """(only tensors / primitives / containers, at least one tensor)."""
    if depth > 50:
        return False, False
    t = type(value)
    if t in (torch.Tensor, torch.nn.Parameter):
        return True, True
    if value is None or t in (bool, int, float, str):
        return True, False
    if t in (list, tuple):
        items: Any = value
    elif t in (dict, collections.OrderedDict):
        if not all(k is None or type(k) in (bool, int, float, str) for k in value):
            return False, False
        items = value.values()
    else:
        return False, False
    any_tensor = False
    for item in items:
        ok, has = _is_tensor_tree(item, torch, depth + 1)
        if not ok:
            return False, False
        any_tensor = any_tensor or has
    return True, any_tensor


def _try_torch(value: Any, path: str) -> _Written | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(value, torch.nn.Module):
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated upstream, but torch.export needs a sample input,
                # which a step output does not come with.
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = torch.jit.script(value)
                torch.jit.save(scripted, path)
        except Exception as exc:  # noqa: BLE001 - scripting fails in many ways
            raise _Fallback(
                f"torch.jit.script failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from None
        return _Written("torchscript", meta={"training": bool(value.training)})
    ok, has_tensor = _is_tensor_tree(value, torch)
    if not (ok and has_tensor):
        return None
    try:
        torch.save(value, path)
    except Exception as exc:  # noqa: BLE001
        raise _Fallback(f"torch.save failed: {type(exc).__name__}: {exc}") from None
    return _Written("torch")


def _torch_map_location() -> Any:
    import torch

    return None if torch.cuda.is_available() else "cpu"


# scikit-learn (skops) ------------------------------------------------------------------------


def _try_skops(value: Any, path: str) -> _Written | None:
    if not type(value).__module__.startswith("sklearn."):
        return None
    import skops.io as sio

    from jupyter_mlplat.tracking.trust import SKOPS_UNCHECKED_CONTENT_TYPES, skops_trusted_types

    try:
        data = sio.dumps(value)
    except Exception as exc:  # noqa: BLE001
        raise _Fallback(f"skops cannot persist it: {type(exc).__name__}: {exc}") from None
    data = _canonical_skops(data)
    needed = set(sio.get_untrusted_types(data=data))
    outside = sorted(needed - set(skops_trusted_types(include_unchecked_content=True)))
    if outside:
        raise _Fallback(
            f"skops file would need types outside the project's trusted list: {outside}"
        )
    with open(path, "wb") as f:
        f.write(data)
    unchecked = sorted(needed & set(SKOPS_UNCHECKED_CONTENT_TYPES))
    return _Written("skops", trusted_only=bool(unchecked), meta={"unchecked_types": unchecked})


def _canonical_skops(data: bytes) -> bytes:
    """skops names its entries after ``id()`` of the saved objects and stamps the zip with the
    current time; renumber the ids in schema order (dropping them from immutable JSON leaves),
    and fix the timestamps, so that equal models give equal bytes. Returns ``data`` unchanged
    if the file is not laid out as expected."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    if "schema.json" not in names:
        return data
    schema = json.loads(src.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "__loader__" in node:
                if node["__loader__"] == "JsonNode":
                    # an immutable primitive: whether two of them were one object is noise
                    node.pop("__id__", None)
                elif type(node.get("__id__")) is int:
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
                f = node.get("file")
                if isinstance(f, str) and f in names:
                    ext = os.path.splitext(f)[1]
                    node["file"] = files.setdefault(f, f"{len(files) + 1}{ext}")
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(schema)
    if set(files) != set(names) - {"schema.json"}:
        return data
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for old, new in files.items():
            dst.writestr(zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)), src.read(old))
        dst.writestr(
            zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
            json.dumps(schema, indent=2),
        )
    return out.getvalue()


def _load_skops(ref: ArtifactRef, path: str, allow_trusted_only: bool) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from jupyter_mlplat.tracking.trust import skops_trusted_types

    trusted = skops_trusted_types(include_unchecked_content=allow_trusted_only)
    try:
        found = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # noqa: BLE001 - a malformed file must not get further
        raise SerializationError(
            f"artifact {ref.name!r} is not a readable skops file: {exc}"
        ) from exc
    untrusted = sorted(found - set(trusted))
    if untrusted:
        raise _unsafe_skops(ref, untrusted, allow_trusted_only)
    try:
        return sio.load(path, trusted=trusted)
    except UntrustedTypesFoundException as exc:
        raise _unsafe_skops(ref, [str(exc)], allow_trusted_only) from exc


def _unsafe_skops(
    ref: ArtifactRef, types_: list[str], allow_trusted_only: bool
) -> UnsafeArtifactError:
    why = (
        ""
        if allow_trusted_only
        else " (tree and neighbour structures are trusted only from a producer you trust)"
    )
    return UnsafeArtifactError(
        f"artifact {ref.name!r} ({ref.uri}) contains types outside the project's trusted list"
        f"{why}: {', '.join(types_)}; nothing was loaded"
    )


# -- load ------------------------------------------------------------------------------------


def load_value(ref: ArtifactRef, *, store: ArtifactStore, allow_trusted_only: bool = True) -> Any:
    """Load one saved output.

    Parameters
    ----------
    ref : ArtifactRef
        What :func:`save_value` returned.
    store : ArtifactStore
        The store holding the object.
    allow_trusted_only : bool, default True
        Whether the caller trusts the producer of ``ref`` (it is the caller's own output).
        When False, cloudpickle artifacts and skops files that need content-unchecked types
        are refused with :class:`UnsafeArtifactError` before any of their bytes are decoded.

    Returns
    -------
    Any
        The value (a torch module comes back as a TorchScript module).

    Raises
    ------
    UnsafeArtifactError
        Loading would run or trust code the caller does not trust.
    NotFoundError
        The object is not in the store.
    SerializationError
        The object cannot be read as its recorded format.
    """
    fmt = ref.format
    if fmt not in FORMATS:
        raise SerializationError(f"artifact {ref.name!r} has unknown format {fmt!r}")
    if not allow_trusted_only and (fmt == "cloudpickle" or ref.trusted_only):
        raise UnsafeArtifactError(
            f"artifact {ref.name!r} ({ref.type_name}, {fmt}) is trusted-only: loading it would "
            "run or trust code from its producer, which is not allowed here; nothing was loaded"
        )
    try:
        # Located by content, not by ref.uri: the ref may come from another mount of the store.
        uri = store.uri_for(ref.sha256, _EXT[fmt])
    except ValueError as exc:
        raise SerializationError(f"artifact {ref.name!r} has a malformed sha256") from exc
    path = store.local_path(uri)
    try:
        return _read(ref, path, allow_trusted_only)
    except (UnsafeArtifactError, NotFoundError, SerializationError):
        raise
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler refuses anything but tensors and containers
        raise UnsafeArtifactError(
            f"artifact {ref.name!r} ({ref.uri}) holds objects that its format ({fmt}) does not "
            f"allow; nothing was run: {str(exc)[:300]}"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise SerializationError(
            f"cannot load artifact {ref.name!r} ({ref.uri}) as {fmt}: {type(exc).__name__}: {exc}"
        ) from exc


def load_values(
    refs: dict[str, ArtifactRef], *, store: ArtifactStore, allow_trusted_only: bool = True
) -> dict[str, Any]:
    """Load several outputs; see :func:`load_value`."""
    return {
        name: load_value(ref, store=store, allow_trusted_only=allow_trusted_only)
        for name, ref in refs.items()
    }


def _read(ref: ArtifactRef, path: str, allow_trusted_only: bool) -> Any:
    fmt = ref.format
    if fmt == "json":
        with open(path, "rb") as f:
            return _json_loads(f.read())
    if fmt == "npy":
        import numpy as np

        arr = np.load(path, allow_pickle=False)
        return arr[()] if ref.meta.get("scalar") else arr
    if fmt == "parquet":
        return _read_parquet(path, ref.meta)
    if fmt == "torch":
        import torch

        return torch.load(path, weights_only=True, map_location=_torch_map_location())
    if fmt == "torchscript":
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(path, map_location=_torch_map_location())
    if fmt == "skops":
        return _load_skops(ref, path, allow_trusted_only)
    assert fmt == "cloudpickle" and allow_trusted_only
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - trusted-only, checked by the caller
