"""The store's engines and the few statements that differ between its two backends.

SQLite (a file, the single-user default) and PostgreSQL (a server, for teams and JupyterHub)
behave alike behind :func:`make_engine`: timezone-aware UTC datetimes, strict JSON, the same
``ON CONFLICT DO NOTHING`` for rows that must exist once. Nothing here knows about owners or
tables; ``sql.py`` and its query mixins do.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Table, Text, create_engine, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from ..errors import InvalidSpecError


def redact_url(url: str) -> str:
    """``url`` without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


#: The backends a store runs on (SQLAlchemy dialect names).
BACKENDS = ("sqlite", "postgresql")
#: Seconds to wait for a PostgreSQL server to answer before the store reports it unreachable.
PG_CONNECT_TIMEOUT = 10


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity (nested in lists and dicts too) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """Strict JSON for JSON columns: PostgreSQL's ``json`` type refuses ``NaN`` and
    ``Infinity``, so non-finite floats are stored as null on every backend alike."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def parse_store_url(url: str) -> URL:
    """``url`` parsed, checked to name a supported backend; a plain ``postgresql://`` uses
    psycopg (3) when psycopg2, SQLAlchemy's default driver for it, is not installed."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidSpecError(
            f"cannot open the store {redact_url(url)}: it is not a SQLAlchemy URL; expected "
            "sqlite:////path/to/mlplat.db or postgresql+psycopg://user:password@host:5432/db "
            "(MLPLAT_STORE_URL / c.MLPlat.store_url)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in BACKENDS:
        raise InvalidSpecError(
            f"cannot open the store {redact_url(url)}: the {backend!r} database is not "
            "supported; expected sqlite:///... or postgresql+psycopg://... "
            "(MLPLAT_STORE_URL / c.MLPlat.store_url)"
        )
    if (parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


#: Every engine this process made, so that a forked child can drop their pooled connections.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    """In a forked child: the parent's pooled connections (its sockets and SQLite handles)
    belong to the parent; the child opens its own on first use and leaves those alone."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_connections)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    SQLite files get their folder, WAL, a busy timeout and foreign keys on every connection.
    PostgreSQL connections run their sessions in UTC, give up after ``PG_CONNECT_TIMEOUT``
    seconds on an unreachable server, and are checked before reuse. JSON columns are written as
    strict JSON on both (see :func:`json_dumps`), and a forked child never reuses a pooled
    connection of its parent.
    """
    parsed = parse_store_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, json_serializer=json_dumps,
                               connect_args={"timeout": 30, "check_same_thread": False})
        _ENGINES.add(engine)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() in ("psycopg", "psycopg2"):  # libpq keywords
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
        if "options" not in parsed.query:
            connect_args["options"] = "-c timezone=UTC"
    engine = create_engine(parsed, json_serializer=json_dumps, pool_pre_ping=True,
                           connect_args=connect_args)
    _ENGINES.add(engine)
    return engine


def dialect_insert(engine_or_session: Any, model: Any) -> Any:
    """An ``INSERT`` for ``model`` that can take ``ON CONFLICT DO NOTHING`` on this backend."""
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) \
        else engine_or_session
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def insert_or_skip(s: Session, model: Any, values: dict[str, Any]) -> Any | None:
    """Insert a row unless it would break a unique constraint (another writer got there first,
    races included); return the new row's id, or None when nothing was inserted.

    ``ON CONFLICT DO NOTHING`` rather than catching the ``IntegrityError``: on PostgreSQL a
    failed statement aborts the whole transaction it is in.
    """
    values = checked_values(model.__table__, values)
    result = s.execute(dialect_insert(s, model).values(**values).on_conflict_do_nothing())
    if s.get_bind().dialect.name == "postgresql":
        key = result.inserted_primary_key  # read through RETURNING: None when skipped
    else:  # SQLite's key comes from lastrowid, stale when skipped: ask how many rows changed
        key = result.inserted_primary_key if result.rowcount == 1 else None
    return None if key is None else key[0]


def column_values(row: Any) -> dict[str, Any]:
    """The column values set on a new ORM object (unset ones keep their column defaults)."""
    state = sa_inspect(row)
    return {attr.key: state.dict[attr.key] for attr in sa_inspect(type(row)).column_attrs
            if attr.key in state.dict}


def checked_values(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` for ``table``'s columns, made to fit the same way on both backends.

    PostgreSQL refuses a string longer than its ``VARCHAR(n)`` and any NUL character, where
    SQLite would keep either: a name, path or label too long (or with a NUL) is an
    ``InvalidSpecError`` on both; in free text (tracebacks, messages, code) a NUL becomes
    U+FFFD, so that recording a failure never fails.
    """
    out = dict(values)
    for name, value in values.items():
        column = table.c.get(name)
        if column is None or not isinstance(value, str):
            continue
        if isinstance(column.type, Text):
            if "\x00" in value:
                out[name] = value.replace("\x00", "\ufffd")
            continue
        length = getattr(column.type, "length", None)
        if length is not None and len(value) > length:
            raise InvalidSpecError(
                f"{table.name}.{name} is {len(value)} characters long ({value[:40]!r}...); "
                f"at most {length} are stored"
            )
        if "\x00" in value:
            raise InvalidSpecError(
                f"{table.name}.{name} contains a NUL character ({value[:40]!r}); expected text "
                "without one"
            )
    return out


def check_flushed_rows(session: Session, _context: Any, _instances: Any) -> None:
    """``before_flush`` hook: every new or changed ORM row passes :func:`checked_values`."""
    for row in (*session.new, *session.dirty):
        table = getattr(type(row), "__table__", None)
        if table is None:
            continue
        state = sa_inspect(row)
        values = {attr.key: state.dict[attr.key]
                  for attr in sa_inspect(type(row)).column_attrs if attr.key in state.dict}
        for key, value in checked_values(table, values).items():
            if value is not values[key]:
                setattr(row, key, value)
