"""Alembic migrations: the head, the schema they build against the ORM, and Store auto-upgrade,
on SQLite and on PostgreSQL (the ``url`` fixture of ``conftest.py``)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from jupyter_mlplat.store import orm, sql
from jupyter_mlplat.store.sql import HEAD_REVISION, Store


@pytest.fixture
def stores() -> Iterator[list[Store]]:
    """Stores opened by a test, closed at its end."""
    opened: list[Store] = []
    yield opened
    for store in opened:
        store.close()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def test_head_revision_is_the_scripts_head(url: str) -> None:
    script = ScriptDirectory.from_config(sql.alembic_config(url))
    assert script.get_heads() == [HEAD_REVISION]
    assert script.get_current_head() == HEAD_REVISION


def test_upgrade_of_an_empty_database_creates_every_orm_table(url: str) -> None:
    assert _tables(url) == set()
    assert sql.upgrade(url) == HEAD_REVISION
    tables = _tables(url)
    assert set(orm.Base.metadata.tables) <= tables
    assert tables - set(orm.Base.metadata.tables) == {"alembic_version"}
    assert _revision(url) == HEAD_REVISION


def test_migrated_schema_matches_the_orm(url: str) -> None:
    sql.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(ctx, orm.Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_data(url: str) -> None:
    sql.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pipelines (owner, name, path, created_at) "
                    "VALUES ('alice', 'p', '/p.ipynb', '2024-01-01 00:00:00')"
                )
            )
    finally:
        engine.dispose()
    assert sql.upgrade(url) == HEAD_REVISION
    assert sql.upgrade(url) == HEAD_REVISION
    assert _revision(url) == HEAD_REVISION
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM pipelines")).scalars().all() == ["p"]
    finally:
        engine.dispose()


def test_downgrade_to_base_drops_every_table(url: str) -> None:
    sql.upgrade(url)
    command.downgrade(sql.alembic_config(url), "base")
    assert _tables(url) == {"alembic_version"}
    assert _revision(url) is None


def test_opening_a_store_on_a_fresh_url_migrates_it(tmp_path: Path, stores: list[Store]) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'fresh.db'}"
    store = Store(url, "alice")
    stores.append(store)
    assert (tmp_path / "nested" / "dir" / "fresh.db").is_file()
    assert set(orm.Base.metadata.tables) <= _tables(url)
    assert _revision(url) == HEAD_REVISION
    assert store.count(orm.Run) == 0


def test_second_open_does_not_rerun_migrations(
    url: str, stores: list[Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores.append(Store(url, "alice"))

    def no_upgrade(_url: str) -> str:
        raise AssertionError("a store at the head revision ran the migrations again")

    monkeypatch.setattr(sql, "upgrade", no_upgrade)
    started = time.perf_counter()
    store = Store(url, "alice")
    elapsed = time.perf_counter() - started
    stores.append(store)
    assert elapsed < 3.0  # loose for a busy machine; running the migrations fails above
    assert store.count(orm.Run) == 0


def test_store_upgrades_a_database_at_an_older_revision(url: str, stores: list[Store]) -> None:
    sql.upgrade(url)
    command.downgrade(sql.alembic_config(url), "base")
    assert _revision(url) is None

    store = Store(url, "alice")
    stores.append(store)
    assert _revision(url) == HEAD_REVISION
    assert set(orm.Base.metadata.tables) <= _tables(url)
    pid = store.pipeline_id("p", "/p.ipynb")
    run_id = store.create_run(
        pipeline_id=pid,
        pipeline_version="v1",
        notebook_path="/p.ipynb",
        parameters={},
        options={},
        steps=["a"],
    )
    assert [r.step_name for r in store.step_runs(run_id)] == ["a"]


def test_store_on_a_database_without_alembic_table_upgrades(url: str, stores: list[Store]) -> None:
    # An existing, unrelated SQLite file: the store adds its tables beside what is there.
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    finally:
        engine.dispose()
    stores.append(Store(url, "alice"))
    assert _revision(url) == HEAD_REVISION
    assert {"unrelated", "runs", "step_runs"} <= _tables(url)


def _open_and_count(url: str, owner: str, ready: Any, go: Any) -> None:
    """In a fresh process: say ready, wait for the start signal, open the store, write a row."""
    ready.set()
    go.wait(30)
    store = Store(url, owner)
    try:
        store.pipeline_id("p", f"/{owner}.ipynb")
    finally:
        store.close()


def test_processes_opening_a_fresh_store_at_once_migrate_it_once(
    url: str, stores: list[Store]
) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_open_and_count, args=(url, f"user{i}", readies[i], go))
             for i in range(3)]
    for p in procs:
        p.start()
    for ready in readies:
        assert ready.wait(60)
    go.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert _revision(url) == HEAD_REVISION
    for i in range(3):
        store = Store(url, f"user{i}")
        stores.append(store)
        assert store.count(orm.Pipeline) == 1
