"""Store URLs and what differs between SQLite and PostgreSQL: clear errors for a bad URL or an
unreachable server, the same JSON, sizes and datetimes on both, ``jupyter mlplat db upgrade``."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.engine import json_dumps, make_engine, parse_store_url
from jupyter_mlplat.store.sql import HEAD_REVISION, Store, upgrade

from .backends import only_postgresql
from .pg import PostgresCluster, free_port


@pytest.fixture
def store(url: str) -> Any:
    s = Store(url, "alice")
    yield s
    s.close()


def _run(store: Store) -> tuple[str, int]:
    pid = store.pipeline_id("p", "/p.ipynb")
    run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/p.ipynb",
                              parameters={}, options={}, steps=["a"])
    return run_id, store.step_runs(run_id)[0].id


# -- URLs and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad, expected", [
    ("not a url", "not a SQLAlchemy URL"),
    ("mysql://u:secret@db/x", "'mysql' database is not supported"),
    ("oracle+oracledb://u:secret@db/x", "'oracle' database is not supported"),
])
def test_a_malformed_or_unsupported_url_is_a_clear_error(bad: str, expected: str) -> None:
    for open_it in (lambda: Store(bad, "alice"), lambda: upgrade(bad)):
        with pytest.raises(InvalidSpecError, match=expected) as info:
            open_it()
        assert "secret" not in str(info.value)
        assert "postgresql+psycopg://" in str(info.value)  # what was expected


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://mlplat:hunter2@127.0.0.1:{free_port()}/mlplat"
    for open_it in (lambda: Store(url, "alice"), lambda: upgrade(url)):
        started = time.monotonic()
        with pytest.raises(InvalidSpecError) as info:
            open_it()
        message = str(info.value)
        assert time.monotonic() - started < 10
        assert "hunter2" not in message
        assert "mlplat:***@127.0.0.1" in message and "refused" in message.lower()
        assert "expected a reachable database" in message


@only_postgresql
def test_wrong_password_and_missing_database_are_clear_errors(
    backend: str, pg_cluster: PostgresCluster
) -> None:
    wrong = pg_cluster.url("postgres").replace(pg_cluster.password, "not-the-password")
    with pytest.raises(InvalidSpecError, match="password authentication failed") as info:
        Store(wrong, "alice")
    assert "not-the-password" not in str(info.value)
    with pytest.raises(InvalidSpecError, match='database "no_such_db" does not exist'):
        Store(pg_cluster.url("no_such_db"), "alice")


@only_postgresql
def test_a_plain_postgresql_url_uses_psycopg(url: str) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    assert parse_store_url(plain).drivername == "postgresql+psycopg"
    store = Store(plain, "alice")
    try:
        assert store.engine.dialect.driver == "psycopg"
        assert _run(store)[0]
    finally:
        store.close()


@only_postgresql
def test_a_url_with_its_own_session_zone_still_reads_utc(url: str) -> None:
    # The URL's libpq options win over the store's UTC default; the column type converts.
    store = Store(url + "?options=-c%20timezone%3DAmerica/Los_Angeles", "alice")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "America/Los_Angeles"
        run_id, step = _run(store)
        when = datetime(2024, 7, 1, 23, 30, tzinfo=UTC)
        store.update_step_run(step, started_at=when)
        read = store.step_run(run_id, "a").started_at
        assert read == when and read.utcoffset() == timedelta(0)
    finally:
        store.close()


def _backend_pid_in_child(store: Store, out: Any) -> None:
    with store.engine.connect() as conn:
        out.put(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())


@only_postgresql
def test_a_forked_child_opens_its_own_connections(store: Store) -> None:
    # A pooled connection shared by parent and child would interleave two conversations on one
    # socket; the child must leave the parent's alone and open its own.
    with store.engine.connect() as conn:
        parent = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_backend_pid_in_child, args=(store, out))
    child.start()
    pid = out.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0 and pid != parent
    with store.engine.connect() as conn:  # the parent's connection is still its own and alive
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == parent


# -- the same values on both backends ----------------------------------------------------------


def test_non_finite_floats_in_json_columns_are_stored_as_null(store: Store) -> None:
    # PostgreSQL's json type refuses NaN and Infinity: both backends store strict JSON.
    run_id, step = _run(store)
    store.log_params(run_id, step, {"alpha": float("nan"), "grid": [1.0, float("inf")],
                                    "nested": {"lo": float("-inf"), "ok": 2.5}})
    assert {p.name: p.value for p in store.params([run_id])} == {
        "alpha": None, "grid": [1.0, None], "nested": {"lo": None, "ok": 2.5}}
    assert json_dumps({"x": [float("nan")]}) == '{"x": [null]}'
    assert json_dumps({"x": 1.5}) == '{"x": 1.5}'


def test_artifact_sizes_past_two_gib_round_trip(store: Store) -> None:
    _, step = _run(store)
    size = 5 * 2**30
    store.record_io(step, "out", {"big": {"sha256": "e" * 64, "uri": "/big.parquet",
                                          "format": "parquet", "type_name": "DataFrame",
                                          "size": size}})
    assert store.step_io(step)["big"]["size"] == size


def test_long_free_text_and_unicode_round_trip(store: Store) -> None:
    run_id, step = _run(store)
    traceback = "Traceback (most recent call last):\n" + "  frame ünïcødé ✓\n" * 5000
    store.update_step_run(step, status="failed", ename="ValueError", evalue="résumé ✗",
                          traceback=traceback)
    row = store.step_run(run_id, "a")
    assert (row.evalue, row.traceback) == ("résumé ✗", traceback)


def test_too_long_or_nul_strings_are_refused_alike(store: Store) -> None:
    # PostgreSQL would refuse them with a driver error and SQLite would keep them: both refuse
    # them the same way, naming the column and its limit.
    run_id, step = _run(store)
    with pytest.raises(InvalidSpecError, match=r"slice_metrics\.slice is 2000 characters.*1024"):
        store.add_slices(run_id, step, metric="acc", by="seg",
                         rows=[{"slice": "x" * 2000, "value": 1.0, "count": 3}])
    with pytest.raises(InvalidSpecError, match=r"step_runs\.worker is 300 characters.*255"):
        store.update_step_run(step, worker="w" * 300)
    with pytest.raises(InvalidSpecError, match=r"pipelines\.name contains a NUL"):
        store.pipeline_id("bad\x00name", "/q.ipynb")
    with pytest.raises(InvalidSpecError, match=r"params\.name is 256"):
        store.log_params(run_id, step, {"p" * 256: 1})
    assert store.slice_metrics([run_id]) == [] and store.params([run_id]) == []
    assert store.step_run(run_id, "a").worker is None
    # At the limit is fine.
    store.add_slices(run_id, step, metric="acc", by="seg",
                     rows=[{"slice": "x" * 1024, "value": 1.0, "count": 3}])
    assert store.slice_metrics([run_id])[0].slice == "x" * 1024


def test_a_nul_in_free_text_is_replaced_so_a_failure_is_still_recorded(store: Store) -> None:
    run_id, step = _run(store)
    store.update_step_run(step, status="failed", evalue="bad byte \x00 here",
                          traceback="line\x00two")
    store.finish_run(run_id, "failed", "step a failed: \x00")
    row = store.step_run(run_id, "a")
    assert (row.status, row.evalue, row.traceback) == (
        "failed", "bad byte \ufffd here", "line\ufffdtwo")
    assert store.run_row(run_id).error == "step a failed: \ufffd"


def test_booleans_and_json_read_back_as_python_values(store: Store) -> None:
    run_id, _ = _run(store)
    store.request_cancel(run_id)
    with store.session() as s:
        raw = s.execute(text("SELECT cancel_requested, parameters FROM runs")).one()
    assert bool(raw[0]) is True
    row = store.run_row(run_id)
    assert row.cancel_requested is True and row.parameters == {}
    assert isinstance(row.created_at, datetime) and row.created_at.tzinfo is not None
    assert store.count(orm.Run) == 1


# -- jupyter mlplat db upgrade ------------------------------------------------------------------


def _cli(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jupyter_mlplat.cli.main", *args],
                          env={**os.environ, "MLPLAT_STORE_URL": url}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_db_upgrade_brings_an_empty_database_to_the_head(url: str, tmp_path: Path) -> None:
    proc = _cli("db", "upgrade", "--json", url=url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["revision"] == HEAD_REVISION
    assert "***" in out["store_url"] or url.startswith("sqlite")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                == HEAD_REVISION
    finally:
        engine.dispose()
    again = _cli("db", "upgrade", url=url, cwd=tmp_path)
    assert again.returncode == 0 and f"at revision {HEAD_REVISION}" in again.stdout


def test_db_upgrade_of_an_unreachable_server_exits_2_with_a_message(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://mlplat:hunter2@127.0.0.1:{free_port()}/mlplat"
    proc = _cli("db", "upgrade", url=url, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "cannot open the store" in proc.stderr and "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stderr
