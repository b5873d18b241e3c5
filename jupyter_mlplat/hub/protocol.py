"""What crosses the wire between ``RemoteStore`` and ``jupyter mlplat service``.

A store call is ``POST <service>/api/store/<method>`` with the JSON body
``{"args": [...], "kwargs": {...}, "process": {"host", "pid", "started"}}`` and answers
``{"result": ...}``; a refused call answers ``{"error": message, "kind": "NotFoundError"}`` with
400 (bad input), 404 (not found: another owner's rows read as not found), 409 (conflict),
401/403 (no or wrong hub token), 413 (too large), 429 (too many uploads at once) and 501
(``UnknownMethodError``: the service has no such method, e.g. a client newer than the service;
``api/whoami`` lists the methods it has).

Values are JSON with a few tagged objects, so both sides get back what the store returns:

=========================================  ==============================================
``{"$dt": "2026-01-02T03:04:05+00:00"}``   a ``datetime`` (timezone kept)
``{"$td": 1.5}``                           a ``timedelta`` in seconds
``{"$tuple": [...]}``                      a tuple
``{"$map": [[key, value], ...]}``          a dict whose keys are not all plain strings
                                           (int keys, or a key starting with ``$``)
``{"$row": "Run", "columns": {...}}``      an ORM row, rebuilt detached from its columns
=========================================  ==============================================

Only rows of the store's own tables decode, and only in answers: the service decodes requests
with ``rows=False`` (no store method takes a row, and no client builds rows on the service). Any
other tag, or a row naming an unknown column, is refused.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, KeysView, ValuesView
from datetime import datetime, timedelta
from typing import Any

from ..errors import (
    ConflictError,
    InvalidSpecError,
    MLPlatError,
    NotBlessedError,
    NotFoundError,
    SerializationError,
    SignatureError,
    UnsafeArtifactError,
)

#: URL schemes of a store / artifact store reached through ``jupyter mlplat service``.
SERVICE_SCHEMES = ("mlplat+http://", "mlplat+https://")

#: Errors re-raised on the client as the class the service raised.
ERROR_KINDS: dict[str, type[MLPlatError]] = {
    cls.__name__: cls
    for cls in (MLPlatError, InvalidSpecError, NotFoundError, ConflictError, NotBlessedError,
                SignatureError, SerializationError, UnsafeArtifactError)
}

#: Header carrying the sha256 of an uploaded artifact (checked by the service).
SHA256_HEADER = "X-MLPlat-SHA256"


class ProtocolError(InvalidSpecError):
    """A value that the wire format cannot carry, or a malformed tagged object."""


class UnknownMethodError(MLPlatError):
    """The store service has no such method (answered with 501, never as "not found": a client
    newer than the service must not read it as a missing row)."""


ERROR_KINDS[UnknownMethodError.__name__] = UnknownMethodError


def is_service_url(url: str | None) -> bool:
    """Whether ``url`` names a store reached through ``jupyter mlplat service``."""
    return bool(url) and str(url).startswith(SERVICE_SCHEMES)


def http_base(url: str) -> str:
    """``mlplat+http://host/services/mlplat`` -> ``http://host/services/mlplat/``."""
    if not is_service_url(url):
        raise InvalidSpecError(
            f"{url!r} is not a store service URL; expected mlplat+http://HOST[:PORT]/PREFIX "
            "or mlplat+https://..., e.g. mlplat+http://127.0.0.1:8000/services/mlplat"
        )
    base = url[len("mlplat+"):]
    return base if base.endswith("/") else base + "/"


def _orm_classes() -> dict[str, type]:
    from ..store import orm

    return {m.class_.__name__: m.class_ for m in orm.Base.registry.mappers}


def encode(value: Any) -> Any:
    """``value`` as JSON-able data (see the module docstring for the tags)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, list | set | frozenset | Iterator | KeysView | ValuesView):
        return [encode(v) for v in value]  # a generator argument arrives as a list
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    table = getattr(type(value), "__table__", None)
    if table is not None and type(value).__name__ in _orm_classes():
        return {"$row": type(value).__name__,
                "columns": {c.key: encode(getattr(value, c.key)) for c in table.columns}}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return encode(item())
    raise ProtocolError(
        f"cannot send a value of type {type(value).__module__}.{type(value).__qualname__} to the "
        "store service; expected JSON values, datetimes, tuples or store rows"
    )


def decode(data: Any, *, rows: bool = True) -> Any:
    """The value :func:`encode` made ``data`` from.

    Parameters
    ----------
    data : Any
        Parsed JSON.
    rows : bool
        Whether ``$row`` tags may be rebuilt as ORM rows (answers only; the service decodes
        requests with False and refuses them).
    """
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode(v, rows=rows) for v in data]
    if not isinstance(data, dict):
        raise ProtocolError(f"unexpected JSON value of type {type(data).__name__}")
    tags = [k for k in data if k.startswith("$")]
    if not tags:
        return {k: decode(v, rows=rows) for k, v in data.items()}
    tag = tags[0]
    if tag == "$row" and not rows:
        raise ProtocolError("store rows are never sent to the store service; send their ids "
                            "or plain values")
    try:
        if tag == "$dt" and len(data) == 1:
            return datetime.fromisoformat(data["$dt"])
        if tag == "$td" and len(data) == 1:
            return timedelta(seconds=float(data["$td"]))
        if tag == "$tuple" and len(data) == 1:
            return tuple(decode(v, rows=rows) for v in data["$tuple"])
        if tag == "$map" and len(data) == 1:
            return {_hashable(decode(k, rows=rows)): decode(v, rows=rows)
                    for k, v in data["$map"]}
        if tag == "$bytes" and len(data) == 1:
            return base64.b64decode(data["$bytes"], validate=True)
        if tag == "$row" and set(data) == {"$row", "columns"} and rows:
            return _row(data["$row"], data["columns"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ProtocolError(f"malformed {tag} value: {exc}") from None
    raise ProtocolError(f"unknown tagged value {sorted(data)!r}")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


def _row(name: Any, columns: Any) -> Any:
    cls = _orm_classes().get(name) if isinstance(name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown store row type {name!r}")
    if not isinstance(columns, dict):
        raise ProtocolError(f"row {name} without a columns object")
    known = {c.key for c in cls.__table__.columns}
    unknown = sorted(set(columns) - known)
    if unknown:
        raise ProtocolError(f"row {name} has no column(s) {', '.join(unknown)}")
    # A detached (transient) instance: attributes only, no session behind it.
    return cls(**{k: decode(v) for k, v in columns.items()})
