"""Store: backend settings, owner scoping, run ids, liveness, immutable rows, lineage, tracking.

Every test runs on SQLite and on PostgreSQL (``conftest.py``), except the few about one
backend's own settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psutil
import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import IntegrityError

from jupyter_mlplat.errors import InvalidSpecError, NotFoundError
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.sql import STALE_AFTER, Store

from .backends import only_postgresql, only_sqlite
from .conftest import StoreFactory


@pytest.fixture
def store(open_store: StoreFactory) -> Store:
    return open_store("alice")


def _run(store: Store, steps: tuple[str, ...] = ("a", "b"), path: str = "/p.ipynb") -> str:
    pid = store.pipeline_id("p", path)
    store.save_pipeline_version(pid, "pv1", {"name": "p", "steps": list(steps)})
    return store.create_run(
        pipeline_id=pid,
        pipeline_version="pv1",
        notebook_path=path,
        parameters={"lr": 0.1},
        options={},
        steps=steps,
    )


def _ref(sha: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "x",
        "sha256": sha,
        "uri": f"/objects/{sha}.json",
        "format": "json",
        "type_name": "builtins.dict",
        "size": 12,
        "trusted_only": False,
        "meta": {"rows": 3},
        **extra,
    }


def _set_run(store: Store, run_id: str, **values: Any) -> None:
    with store.session() as s:
        s.execute(update(orm.Run).where(orm.Run.id == run_id).values(**values))


def _dead_pid() -> tuple[int, float]:
    """The pid and create time of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()  # a zombie until wait(): still readable
    proc.wait()
    return proc.pid, started


# -- backend settings ---------------------------------------------------------------------------


@only_sqlite
def test_sqlite_runs_in_wal_with_busy_timeout_and_foreign_keys(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@only_postgresql
def test_postgresql_sessions_run_in_utc_with_a_connect_timeout(store: Store) -> None:
    # The test server's own zone is Asia/Kolkata: the store must not inherit it.
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
        assert conn.exec_driver_sql("SELECT current_setting('TimeZone', true)").scalar() == "UTC"
        assert conn.connection.dbapi_connection.info.get_parameters()["connect_timeout"] == "10"
    assert store.engine.dialect.name == "postgresql"


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(orm.StepRun(owner="alice", run_id="no-such-run", step_name="a"))


def test_store_needs_an_owner(url: str) -> None:
    with pytest.raises(InvalidSpecError):
        Store(url, "")


# -- owner scoping ------------------------------------------------------------------------------


@pytest.fixture
def alice_data(store: Store) -> dict[str, Any]:
    """A run of alice with a cached-worthy step, io, params and metrics."""
    run_id = _run(store)
    rows = store.step_runs(run_id)
    a = rows[0]
    store.save_step_version(store.pipeline_id("p", "/p.ipynb"), "a", "sv-a", "x = 1", {})
    store.update_step_run(a.id, status="succeeded", step_version="sv-a")
    store.record_io(a.id, "out", {"x": _ref("1" * 64)})
    store.log_params(run_id, a.id, {"lr": 0.1})
    store.log_metrics(run_id, a.id, [{"name": "acc", "value": 0.9, "step": 1}])
    return {
        "run": run_id,
        "step": a.id,
        "other_step": rows[1].id,
        "pipeline": store.pipeline_id("p", "/p.ipynb"),
    }


def test_another_owner_reads_none_of_alices_rows(
    store: Store, open_store: StoreFactory, alice_data: dict[str, Any]
) -> None:
    bob = open_store("bob")
    run_id, step_id = alice_data["run"], alice_data["step"]

    assert bob.runs() == []
    assert bob.runs(pipeline="p") == []
    for read in (
        lambda: bob.run_row(run_id),
        lambda: bob.resolve_run_id(run_id),
        lambda: bob.resolve_run_id(run_id[:4]),
        lambda: bob.step_run(run_id, "a"),
        lambda: bob.pipeline_spec("pv1"),
    ):
        with pytest.raises(NotFoundError):
            read()
    assert bob.step_runs(run_id) == []
    assert bob.step_runs(run_id, latest=False) == []
    assert bob.find_cached("sv-a") is None
    assert bob.latest_success(alice_data["pipeline"], "a") is None
    assert bob.step_io(step_id, "out") == {}
    assert bob.params([run_id]) == []
    assert bob.metrics([run_id]) == []
    assert bob.pipeline_names([alice_data["pipeline"]]) == {}
    for model in (
        orm.Pipeline,
        orm.PipelineVersion,
        orm.StepVersion,
        orm.Run,
        orm.StepRun,
        orm.Artifact,
        orm.StepIO,
        orm.Param,
        orm.Metric,
    ):
        assert bob.count(model) == 0, model.__tablename__

    # The same reads as alice do see them: the data is there, bob is just not its owner.
    assert store.resolve_run_id(run_id[:4]) == run_id
    assert store.find_cached("sv-a").id == step_id
    assert store.latest_success(alice_data["pipeline"], "a").id == step_id
    assert set(store.step_io(step_id, "out")) == {"x"}
    assert [p.name for p in store.params([run_id])] == ["lr"]
    assert [m.name for m in store.metrics([run_id])] == ["acc"]
    assert store.pipeline_spec("pv1")["name"] == "p"
    assert store.count(orm.Run) == 1


def test_another_owner_changes_none_of_alices_rows(
    store: Store, open_store: StoreFactory, alice_data: dict[str, Any]
) -> None:
    bob = open_store("bob")
    run_id, step_id = alice_data["run"], alice_data["step"]
    run_before = store.run_row(run_id)
    steps_before = [(r.id, r.status, r.message) for r in store.step_runs(run_id)]

    bob.update_step_run(step_id, status="failed", message="bob was here")
    bob.update_step_run(alice_data["other_step"], status="failed")
    with pytest.raises(NotFoundError):
        bob.request_cancel(run_id)
    with pytest.raises(NotFoundError):
        bob.finish_run(run_id, "failed", "bob was here")
    assert bob.claim_run(run_id, ("running", "failed")) is False
    old_beat = run_before.heartbeat_at
    bob.heartbeat(run_id)

    run_after = store.run_row(run_id)
    assert run_after.status == "running"
    assert run_after.cancel_requested is False
    assert run_after.error is None and run_after.finished_at is None
    assert run_after.heartbeat_at == old_beat
    assert [(r.id, r.status, r.message) for r in store.step_runs(run_id)] == steps_before


def test_another_owners_sweep_leaves_alices_dead_run_alone(
    store: Store, open_store: StoreFactory
) -> None:
    run_id = _run(store)
    pid, started = _dead_pid()
    _set_run(store, run_id, pid=pid, pid_started=started)
    bob = open_store("bob")
    assert bob.sweep_interrupted() == []
    assert store.run_row(run_id).status == "running"


def test_heartbeat_does_not_leak_another_owners_cancel_flag(
    store: Store, open_store: StoreFactory
) -> None:
    run_id = _run(store)
    store.request_cancel(run_id)
    assert open_store("bob").heartbeat(run_id) is False


# -- run ids ------------------------------------------------------------------------------------


def _run_with_id(store: Store, run_id: str) -> None:
    """A step-less run of the store's owner whose id is ``run_id`` (ids are random)."""
    created = _run(store, steps=())
    with store.session() as s:
        s.execute(update(orm.Run).where(orm.Run.id == created).values(id=run_id))


def test_resolve_run_id(store: Store) -> None:
    a = "abc123000000"
    b = "abd456000000"
    c = "x_y%00000000"
    for rid in (a, b, c):
        _run_with_id(store, rid)

    assert store.resolve_run_id(a) == a
    assert store.resolve_run_id("abc") == a
    assert store.resolve_run_id(f"  {b[:4]} ") == b
    with pytest.raises(InvalidSpecError, match="ambiguous"):
        store.resolve_run_id("ab")
    with pytest.raises(NotFoundError):
        store.resolve_run_id("zzz")
    with pytest.raises(NotFoundError):
        store.resolve_run_id(a + "0")
    for empty in ("", "   "):
        with pytest.raises(InvalidSpecError):
            store.resolve_run_id(empty)
    # LIKE wildcards are literal characters, not "anything".
    for wildcard in ("%", "_", "a%", "a_c", "%c1"):
        with pytest.raises(NotFoundError):
            store.resolve_run_id(wildcard)
    assert store.resolve_run_id("x_") == c
    assert store.resolve_run_id("x_y%") == c
    # Case does not matter, on either backend (SQLite's LIKE ignores it, PostgreSQL's does not).
    assert store.resolve_run_id("ABC") == a
    assert store.resolve_run_id(b.upper()) == b


def test_run_ids_are_unique_hex(store: Store) -> None:
    ids = {_run(store, steps=()) for _ in range(5)}
    assert len(ids) == 5
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


# -- liveness -----------------------------------------------------------------------------------


def test_a_run_of_a_live_process_stays_running(store: Store, open_store: StoreFactory) -> None:
    run_id = _run(store)
    row = store.run_row(run_id)
    assert (row.status, row.pid, row.host) == ("running", os.getpid(), store.host)
    assert row.pid_started == pytest.approx(psutil.Process().create_time())

    assert store.sweep_interrupted() == []
    open_store("alice")  # opening sweeps too
    assert store.run_row(run_id).status == "running"
    assert {r.status for r in store.step_runs(run_id)} == {"pending"}


def test_a_run_whose_process_exited_is_interrupted(store: Store, open_store: StoreFactory) -> None:
    run_id = _run(store, steps=("a", "b", "c"))
    a, b, c = store.step_runs(run_id)
    store.update_step_run(a.id, status="succeeded")
    store.update_step_run(b.id, status="running")
    pid, started = _dead_pid()
    _set_run(store, run_id, pid=pid, pid_started=started)

    open_store("alice")  # the next process to open the store sweeps it

    row = store.run_row(run_id)
    assert row.status == "interrupted"
    assert row.finished_at is not None
    assert "resume" in row.error and str(pid) in row.error
    assert [r.status for r in store.step_runs(run_id)] == [
        "succeeded",
        "interrupted",
        "interrupted",
    ]
    assert store.sweep_interrupted() == []  # once interrupted, a run is no longer swept


def test_sweep_returns_the_interrupted_ids_and_keeps_an_existing_error(store: Store) -> None:
    run_id = _run(store)
    pid, started = _dead_pid()
    _set_run(store, run_id, pid=pid, pid_started=started, error="step b failed", status="pending")
    assert store.sweep_interrupted() == [run_id]
    row = store.run_row(run_id)
    assert (row.status, row.error) == ("interrupted", "step b failed")


def test_a_run_whose_pid_was_reused_is_interrupted(store: Store) -> None:
    run_id = _run(store)
    # Our own pid is alive, but it belongs to a process started well after the run's.
    _set_run(store, run_id, pid_started=psutil.Process().create_time() - 100.0)
    assert store.sweep_interrupted() == [run_id]
    assert store.run_row(run_id).status == "interrupted"
    assert {r.status for r in store.step_runs(run_id)} == {"interrupted"}


def test_a_run_on_another_host_is_judged_by_its_heartbeat(store: Store) -> None:
    fresh = _run(store)
    stale = _run(store)
    pid, started = _dead_pid()  # a pid that is dead here must not matter for another host
    now = datetime.now(UTC)
    _set_run(store, fresh, host="elsewhere", pid=pid, pid_started=started, heartbeat_at=now)
    _set_run(
        store,
        stale,
        host="elsewhere",
        pid=os.getpid(),
        heartbeat_at=now - STALE_AFTER - timedelta(seconds=5),
    )

    assert store.sweep_interrupted() == [stale]
    assert store.run_row(fresh).status == "running"
    assert store.run_row(stale).status == "interrupted"
    assert {r.status for r in store.step_runs(fresh)} == {"pending"}
    assert {r.status for r in store.step_runs(stale)} == {"interrupted"}


def test_finished_runs_are_never_swept(store: Store) -> None:
    pid, started = _dead_pid()
    ids = {}
    for status in ("succeeded", "failed", "cancelled"):
        run_id = _run(store)
        store.finish_run(run_id, status, "boom" if status == "failed" else None)
        _set_run(store, run_id, pid=pid, pid_started=started)
        ids[run_id] = store.run_row(run_id)

    assert store.sweep_interrupted() == []
    for run_id, before in ids.items():
        after = store.run_row(run_id)
        assert (after.status, after.error, after.finished_at) == (
            before.status,
            before.error,
            before.finished_at,
        )
        assert {r.status for r in store.step_runs(run_id)} == {"pending"}


def test_sweep_can_be_turned_off_on_open(store: Store, open_store: StoreFactory) -> None:
    run_id = _run(store)
    pid, started = _dead_pid()
    _set_run(store, run_id, pid=pid, pid_started=started)
    open_store("alice", sweep=False)
    assert store.run_row(run_id).status == "running"


def test_heartbeat_refreshes_and_reports_cancel(store: Store) -> None:
    run_id = _run(store)
    old = datetime.now(UTC) - timedelta(minutes=5)
    _set_run(store, run_id, heartbeat_at=old)

    assert store.heartbeat(run_id) is False
    beat = store.run_row(run_id).heartbeat_at
    assert beat > old + timedelta(minutes=4)

    cancelled = store.request_cancel(run_id)
    assert cancelled.cancel_requested is True and cancelled.id == run_id
    assert store.heartbeat(run_id) is True
    assert store.run_row(run_id).heartbeat_at >= beat


# -- immutable rows -----------------------------------------------------------------------------


def test_versions_are_inserted_once(store: Store) -> None:
    pid = store.pipeline_id("p", "/p.ipynb")
    assert store.pipeline_id("renamed", "/p.ipynb") == pid
    assert store.pipeline_id("q", "/q.ipynb") != pid
    for _ in range(2):
        store.save_pipeline_version(pid, "pv1", {"steps": ["a"]})
        store.save_step_version(pid, "a", "sv1", "x = 1", {"params": {"n": 1}})
    # A second save never edits the first row.
    store.save_pipeline_version(pid, "pv1", {"steps": ["changed"]})
    store.save_step_version(pid, "a", "sv1", "x = 2", {})

    assert store.count(orm.PipelineVersion) == 1
    assert store.count(orm.StepVersion) == 1
    assert store.pipeline_spec("pv1") == {"steps": ["a"]}
    with store.session() as s:
        row = s.scalar(select(orm.StepVersion))
        assert (row.code, row.inputs, row.name) == ("x = 1", {"params": {"n": 1}}, "a")
    with pytest.raises(NotFoundError):
        store.pipeline_spec("pv-unknown")


def test_concurrent_inserts_of_one_version_do_not_raise(open_store: StoreFactory) -> None:
    first, second = open_store("alice"), open_store("alice")
    pid = first.pipeline_id("p", "/p.ipynb")
    # Both threads pass the "already there?" check before either inserts: the loser of the
    # race hits the unique constraint, which the store must swallow.
    barrier = threading.Barrier(2, timeout=10)

    def hold_inserts(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if (
            statement.lstrip()
            .upper()
            .startswith(("INSERT INTO STEP_VERSIONS", "INSERT INTO PIPELINE_VERSIONS"))
        ):
            barrier.wait()

    for s in (first, second):
        event.listen(s.engine, "before_cursor_execute", hold_inserts)
    errors: list[BaseException] = []

    def save(store: Store) -> None:
        try:
            store.save_step_version(pid, "a", "sv-race", "x = 1", {})
            store.save_pipeline_version(pid, "pv-race", {"steps": ["a"]})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in (first, second):
        event.remove(s.engine, "before_cursor_execute", hold_inserts)

    assert errors == []
    assert not barrier.broken
    assert first.count(orm.StepVersion) == 1
    assert first.count(orm.PipelineVersion) == 1


# -- step runs, artifacts, cache ----------------------------------------------------------------


def test_record_io_round_trips_and_dedups_artifacts(store: Store) -> None:
    run_id = _run(store)
    a, b = store.step_runs(run_id)
    sha, other = "a" * 64, "b" * 64
    store.record_io(a.id, "out", {"df": _ref(sha, trusted_only=True), "n": _ref(other)})
    store.record_io(b.id, "in", {"df": _ref(sha, uri="/elsewhere")})
    store.record_io(b.id, "out", {})  # nothing to record is fine

    out = store.step_io(a.id, "out")
    assert out["df"] == {
        "name": "df",
        "sha256": sha,
        "uri": f"/objects/{sha}.json",
        "format": "json",
        "type_name": "builtins.dict",
        "size": 12,
        "trusted_only": True,
        "meta": {"rows": 3},
    }
    assert set(out) == {"df", "n"}
    assert store.step_io(a.id) == out  # "out" is the default direction
    assert store.step_io(a.id, "in") == {}
    # One artifacts row per content hash: the second record reuses the first row.
    assert store.step_io(b.id, "in")["df"]["uri"] == f"/objects/{sha}.json"
    assert store.step_io(b.id, "out") == {}
    assert store.count(orm.Artifact) == 2
    assert store.count(orm.StepIO) == 3


def test_find_cached_returns_the_newest_success_of_a_version(store: Store) -> None:
    first, second = _run(store), _run(store)
    old = store.step_runs(first)[0]
    new = store.step_runs(second)[0]
    failed = store.new_attempt(second, "a", 2)
    other = store.step_runs(second)[1]
    store.update_step_run(old.id, status="succeeded", step_version="v1")
    store.update_step_run(new.id, status="succeeded", step_version="v1")
    store.update_step_run(failed, status="failed", step_version="v1")
    store.update_step_run(other.id, status="succeeded", step_version="v2")

    assert store.find_cached("v1").id == new.id
    assert store.find_cached("v2").id == other.id
    assert store.find_cached("v3") is None
    store.update_step_run(new.id, status="failed")
    assert store.find_cached("v1").id == old.id


def test_latest_success_includes_cached_step_runs(store: Store) -> None:
    first, second = _run(store), _run(store)
    pid = store.pipeline_id("p", "/p.ipynb")
    ran = store.step_runs(first)[0]
    cached = store.step_runs(second)[0]
    store.update_step_run(ran.id, status="succeeded")
    assert store.latest_success(pid, "a").id == ran.id
    store.update_step_run(cached.id, status="cached", cached_from=ran.id)
    assert store.latest_success(pid, "a").id == cached.id
    assert store.latest_success(pid, "b") is None
    store.update_step_run(store.step_runs(second)[1].id, status="failed")
    assert store.latest_success(pid, "b") is None
    # Another pipeline's runs do not count.
    other = _run(store, path="/other.ipynb")
    store.update_step_run(store.step_runs(other)[0].id, status="succeeded")
    assert store.latest_success(pid, "a").id == cached.id


def test_new_attempts_and_latest_view(store: Store) -> None:
    run_id = _run(store, steps=("a", "b", "c"))
    a1, b1, c1 = store.step_runs(run_id)
    assert (a1.attempt, a1.status) == (1, "pending")
    a2 = store.new_attempt(run_id, "a", 2)
    a3 = store.new_attempt(run_id, "a", 3)
    b2 = store.new_attempt(run_id, "b", 2)
    assert len({a1.id, a2, a3, b2}) == 4

    latest = store.step_runs(run_id)
    assert [(r.step_name, r.id, r.attempt) for r in latest] == [
        ("a", a3, 3),
        ("b", b2, 2),
        ("c", c1.id, 1),
    ]
    everything = store.step_runs(run_id, latest=False)
    assert [r.id for r in everything] == [a1.id, b1.id, c1.id, a2, a3, b2]
    assert store.step_run(run_id, "a").id == a3
    with pytest.raises(NotFoundError, match="a, b, c"):
        store.step_run(run_id, "zzz")


def test_update_step_run_writes_structured_fields(store: Store) -> None:
    run_id = _run(store)
    a = store.step_runs(run_id)[0]
    store.update_step_run(
        a.id,
        status="failed",
        error_cell_index=3,
        ename="ValueError",
        evalue="bad",
        traceback="Traceback...",
        duration=1.5,
    )
    row = store.step_run(run_id, "a")
    assert (row.status, row.error_cell_index, row.ename, row.evalue, row.duration) == (
        "failed",
        3,
        "ValueError",
        "bad",
        1.5,
    )


def test_claim_run_makes_this_process_the_owner_again(store: Store) -> None:
    run_id = _run(store)
    store.request_cancel(run_id)
    store.finish_run(run_id, "interrupted", "gone")
    _set_run(store, run_id, host="elsewhere", pid=1, pid_started=1.0)

    assert store.claim_run(run_id, ("failed",)) is False  # only from the statuses given
    assert store.claim_run(run_id, ("interrupted",)) is True
    assert store.claim_run(run_id, ("interrupted",)) is False  # a second resumer loses
    row = store.run_row(run_id)
    assert row.status == "running"
    assert (row.host, row.pid) == (store.host, os.getpid())
    assert row.pid_started == pytest.approx(psutil.Process().create_time())
    assert row.cancel_requested is False
    assert row.finished_at is None and row.error is None
    assert store.sweep_interrupted() == []  # the claimed run is seen as alive
    assert store.claim_run("nope", ("interrupted",)) is False


def test_finish_run_and_runs_listing(store: Store) -> None:
    first = _run(store)
    second = _run(store, path="/q.ipynb")
    store.finish_run(first, "failed", "boom")
    row = store.run_row(first)
    assert (row.status, row.error) == ("failed", "boom")
    assert row.finished_at is not None
    assert [r.id for r in store.runs()] == [second, first]  # newest first
    assert [r.id for r in store.runs(limit=1)] == [second]
    assert [r.id for r in store.runs(status="failed")] == [first]
    assert [r.id for r in store.runs(pipeline="/q.ipynb")] == [second]
    assert {r.id for r in store.runs(pipeline="p")} == {first, second}
    assert store.runs(pipeline="nope") == []
    assert row.parameters == {"lr": 0.1}


# -- params and metrics -------------------------------------------------------------------------


def test_params_round_trip_json_values(store: Store) -> None:
    run_id = _run(store)
    step = store.step_runs(run_id)[0].id
    values = {
        "config": {"layers": [64, 32], "act": "relu", "dropout": None},
        "seeds": [1, 2, 3],
        "name": "résumé",
        "lr": 0.001,
        "epochs": 10,
        "flag": True,
    }
    store.log_params(run_id, step, values)
    store.log_params(run_id, None, {"run_level": "x"})
    rows = store.params([run_id])
    assert {p.name: p.value for p in rows} == {**values, "run_level": "x"}
    assert {p.name: p.step_run_id for p in rows}["run_level"] is None
    assert {p.step_run_id for p in rows if p.name != "run_level"} == {step}
    assert store.params([]) == []


def test_metrics_round_trip_step_and_timestamp(store: Store) -> None:
    run_id = _run(store)
    step = store.step_runs(run_id)[0].id
    ts = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC).timestamp()
    before = datetime.now(UTC)
    store.log_metrics(
        run_id,
        step,
        [
            {"name": "loss", "value": 0.5, "step": 1, "timestamp": ts},
            {"name": "loss", "value": 0.25, "step": 2, "timestamp": ts + 1},
            {"name": "acc", "value": 1},  # int becomes float; no step; stamped now
        ],
    )
    rows = store.metrics([run_id])
    assert [(m.name, m.value, m.step) for m in rows] == [
        ("loss", 0.5, 1),
        ("loss", 0.25, 2),
        ("acc", 1.0, None),
    ]
    assert isinstance(rows[2].value, float)
    assert rows[0].timestamp == datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    assert rows[1].timestamp.timestamp() == pytest.approx(ts + 1)
    assert before - timedelta(seconds=1) <= rows[2].timestamp <= datetime.now(UTC)
    assert {m.step_run_id for m in rows} == {step}


# -- datetimes ----------------------------------------------------------------------------------


def _is_utc(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


def test_datetimes_read_back_timezone_aware_utc(store: Store, open_store: StoreFactory) -> None:
    run_id = _run(store)
    step = store.step_runs(run_id)[0]
    store.update_step_run(step.id, started_at=datetime(2024, 1, 1, 12, 0))  # naive means UTC
    store.log_metrics(run_id, step.id, [{"name": "m", "value": 1.0}])
    store.finish_run(run_id, "succeeded")

    reader = open_store("alice")  # fresh engine: values come from the file, not a cache
    run = reader.run_row(run_id)
    for value in (run.created_at, run.started_at, run.finished_at, run.heartbeat_at):
        assert _is_utc(value), value
    row = reader.step_run(run_id, "a")
    assert _is_utc(row.created_at)
    assert row.started_at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert _is_utc(row.started_at)
    assert _is_utc(reader.metrics([run_id])[0].timestamp)
    with reader.session() as s:
        raw = s.execute(text("SELECT created_at FROM runs")).scalar()
    if reader.engine.dialect.name == "sqlite":
        assert isinstance(raw, str)  # SQLite keeps text; the column type puts the zone back
    else:  # timestamptz: an aware value, an instant equal to what the ORM reads
        assert isinstance(raw, datetime) and raw.tzinfo is not None and raw == run.created_at
    assert run.finished_at >= run.created_at


def test_an_aware_non_utc_datetime_keeps_its_instant(store: Store) -> None:
    run_id = _run(store)
    step = store.step_runs(run_id)[0]
    when = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    store.update_step_run(step.id, started_at=when)
    assert store.step_run(run_id, "a").started_at == when


def test_writes_onto_another_owners_rows_are_refused(store: Store, open_store: StoreFactory) -> None:
    run_id = _run(store)
    step = store.step_runs(run_id)[0]
    bob = open_store("bob")
    with pytest.raises(NotFoundError):
        bob.new_attempt(run_id, step.step_name, 2)
    with pytest.raises(NotFoundError):
        bob.log_params(run_id, None, {"p": 1})
    with pytest.raises(NotFoundError):
        bob.log_metrics(run_id, None, [{"name": "m", "value": 1.0}])
    ref = {"sha256": "f" * 64, "uri": "/x", "format": "json", "type_name": "int", "size": 1}
    with pytest.raises(NotFoundError):
        bob.record_io(step.id, "out", {"x": ref})
    assert store.params([run_id]) == [] and store.metrics([run_id]) == []
    assert len(store.step_runs(run_id, latest=False)) == len(store.step_runs(run_id))


def test_metric_timestamp_zero_is_kept(store: Store) -> None:
    run_id = _run(store)
    store.log_metrics(run_id, None, [{"name": "m", "value": 1.0, "timestamp": 0}])
    assert store.metrics([run_id])[0].timestamp.timestamp() == 0
