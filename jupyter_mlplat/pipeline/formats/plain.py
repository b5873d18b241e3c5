"""JSON with exact-type tags, and cloudpickle, the format of last resort."""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

from jupyter_mlplat.pipeline.formats import Written

_TAG_TUPLE, _TAG_FLOAT, _TAG_DICT = "__tuple__", "__float__", "__dict__"
_TAGS = frozenset({_TAG_TUPLE, _TAG_FLOAT, _TAG_DICT})


class NotJSON(Exception):
    """The value (or a key in it) has no exact JSON form."""


def json_encode(v: Any) -> Any:
    """Plain JSON where possible; tuples, nan/inf and dicts with non-str keys (or a key that
    looks like a tag) become one-key tagged objects, so every value decodes to its exact type."""
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        return v if math.isfinite(v) else {_TAG_FLOAT: repr(v)}
    if t is list:
        return [json_encode(x) for x in v]
    if t is tuple:
        return {_TAG_TUPLE: [json_encode(x) for x in v]}
    if t is dict:
        if all(type(k) is str for k in v) and not (len(v) == 1 and next(iter(v)) in _TAGS):
            return {k: json_encode(x) for k, x in v.items()}
        return {_TAG_DICT: [[_json_key(k), json_encode(x)] for k, x in v.items()]}
    raise NotJSON(t)


def _json_key(k: Any) -> Any:
    if k is None or type(k) in (bool, int, float, str, tuple):
        return json_encode(k)
    raise NotJSON(type(k))


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


def json_dumps(value: Any) -> str:
    """``value`` as compact, ASCII, tagged JSON; raises :class:`NotJSON` if it has no form."""
    return json.dumps(json_encode(value), ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def json_loads(text: str | bytes) -> Any:
    """The inverse of :func:`json_dumps`."""
    return json.loads(text, object_hook=_json_decode_hook)


def json_decode_value(encoded: Any) -> Any:
    """Decode a value already encoded with :func:`json_encode` (e.g. kept in a ref's meta)."""
    return json_loads(json.dumps(encoded))


def try_json(value: Any, path: str) -> Written | None:
    """Write ``value`` as tagged JSON if it has an exact JSON form."""
    try:
        text = json_dumps(value)
    except (NotJSON, RecursionError, ValueError):
        return None
    with open(path, "w", encoding="ascii") as f:
        f.write(text)
    return Written("json")


def read_json(path: str) -> Any:
    """Read a file written by :func:`try_json`."""
    with open(path, "rb") as f:
        return json_loads(f.read())


def write_cloudpickle(value: Any, path: str) -> None:
    """Pickle ``value`` with cloudpickle; raises whatever pickling raises."""
    import cloudpickle

    with open(path, "wb") as f:
        cloudpickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)


def read_cloudpickle(path: str) -> Any:
    """Unpickle a trusted-only file; the caller must have checked that it trusts the producer."""
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - trusted-only, checked by the caller
