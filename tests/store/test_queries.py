"""The store's registry and serving queries on both backends: owner scoping, numbers that stay
distinct and gap-free under concurrent writers, rows that exist once however many race for them.

The registry's own concurrent-registration tests (``tests/tracking/test_registry.py``, which
run on SQLite there) run here on PostgreSQL too.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from jupyter_mlplat.errors import NotFoundError
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.artifacts import ArtifactStore
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.registry import ModelRegistry
from tests.tracking import test_registry as registry_tests

from .backends import only_postgresql
from .conftest import StoreFactory
from .workers import add_versions, artifact_ref


@pytest.fixture
def registry(open_store: StoreFactory, tmp_path: Path) -> ModelRegistry:
    """What ``tests/tracking/test_registry.py``'s tests expect, on this test's backend."""
    return ModelRegistry(open_store("alice"), ArtifactStore(str(tmp_path / "artifacts")))


def _version(store: Store, name: str = "churn", sha: str = "a" * 64) -> orm.ModelVersion:
    return store.add_model_version(name, artifact=artifact_ref(sha), flavor="sklearn",
                                   created_by=store.owner)


def _revision(store: Store, name: str = "ep") -> orm.EndpointRevision:
    return store.add_endpoint_revision(
        name, routes=[{"model": "churn", "version": 1, "weight": 100}], action="deploy",
        actor=store.owner)


def _in_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads at once; return the results, raise the first error."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def _hold_inserts(stores: list[Store], *tables: str) -> Callable[[], bool]:
    """Make each store's first INSERT into each of ``tables`` wait until every store reached
    its own, so each has already looked for the row and found nothing: the race is certain,
    not likely. Returns a check that every store did reach every barrier."""
    barriers = {t: threading.Barrier(len(stores), timeout=20) for t in tables}
    held: set[tuple[int, str]] = set()

    def make(store: Store) -> Callable[..., None]:
        def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            words = statement.split(None, 3)
            if words[:2] != ["INSERT", "INTO"] or len(words) < 3:
                return
            table = words[2].strip('"').lower()
            if table in barriers and (id(store), table) not in held:
                held.add((id(store), table))
                barriers[table].wait()
        return hold

    for store in stores:
        event.listen(store.engine, "before_cursor_execute", make(store))
    return lambda: (len(held) == len(stores) * len(tables)
                    and not any(b.broken for b in barriers.values()))


@only_postgresql
def test_registry_threads_get_distinct_versions_on_postgresql(registry: ModelRegistry) -> None:
    registry_tests.test_concurrent_registrations_get_distinct_versions(registry)


@only_postgresql
def test_registry_processes_get_distinct_versions_on_postgresql(registry: ModelRegistry) -> None:
    registry_tests.test_concurrent_registrations_from_processes(registry)


# -- owner scoping ------------------------------------------------------------------------------


def test_another_owner_sees_none_of_alices_models_or_endpoints(open_store: StoreFactory) -> None:
    alice, bob = open_store("alice"), open_store("bob")
    mv = _version(alice)
    alice.add_alias_event("churn", "production", 1, actor="alice")
    alice.add_policy("churn", {"metric": "accuracy"}, actor="alice")
    alice.add_validation(mv.id, run_id=None, status="blessed", policy={}, report={})
    alice.add_override(mv.id, actor="alice", reason="test")
    alice.ensure_endpoint("ep")
    _revision(alice)

    assert bob.models() == [] and bob.endpoints() == [] and bob.serving_states() == []
    for read in (lambda: bob.model_versions("churn"), lambda: bob.model_version("churn", 1),
                 lambda: bob.model_version_by_id(mv.id), lambda: bob.model_name(mv.model_id),
                 lambda: bob.alias_history("churn"), lambda: bob.endpoint_row("ep"),
                 lambda: bob.endpoint_revisions("ep"), lambda: bob.artifact_ref(mv.artifact_id),
                 lambda: bob.add_alias_event("churn", "production", 1, actor="bob"),
                 lambda: _revision(bob)):
        with pytest.raises(NotFoundError):
            read()
    assert bob.policy("churn") is None
    assert bob.validations([mv.id]) == {} and bob.overrides(mv.id) == []
    for model in (orm.Model, orm.ModelVersion, orm.AliasEvent, orm.PolicyEvent, orm.Validation,
                  orm.DeployOverride, orm.Endpoint, orm.EndpointRevision, orm.Artifact):
        assert bob.count(model) == 0, model.__tablename__

    # bob's own model of the same name is his own row, numbered from 1.
    assert _version(bob).version == 1
    assert [v.version for v in alice.model_versions("churn")] == [1]
    assert alice.aliases("churn") == {"production": 1}


# -- numbering under concurrency ----------------------------------------------------------------


def test_threads_with_their_own_stores_number_versions_without_gaps(
    open_store: StoreFactory,
) -> None:
    stores = [open_store("alice", sweep=False) for _ in range(4)]
    numbers = _in_threads(4, lambda i: [_version(stores[i]).version for _ in range(5)])
    assert sorted(n for chunk in numbers for n in chunk) == list(range(1, 21))
    rows = stores[0].model_versions("churn")
    assert [v.version for v in rows] == list(range(1, 21))
    assert stores[0].count(orm.Model) == 1 and stores[0].count(orm.Artifact) == 1


def test_endpoint_revisions_stay_distinct_under_concurrent_deploys(
    open_store: StoreFactory,
) -> None:
    stores = [open_store("alice", sweep=False) for _ in range(4)]
    stores[0].ensure_endpoint("ep")
    numbers = _in_threads(4, lambda i: [_revision(stores[i]).revision for _ in range(5)])
    assert sorted(n for chunk in numbers for n in chunk) == list(range(1, 21))
    assert [r.revision for r in stores[0].endpoint_revisions("ep")] == list(range(1, 21))


def test_two_owners_registering_from_processes_at_once(
    url: str, open_store: StoreFactory
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=add_versions, args=(url, owner, 8))
             for owner in ("alice", "bob", "alice", "bob")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    for owner in ("alice", "bob"):
        store = open_store(owner)
        assert [v.version for v in store.model_versions("churn")] == list(range(1, 17))
        assert {v.owner for v in store.model_versions("churn")} == {owner}
        assert store.count(orm.Model) == 1
        assert store.count(orm.Artifact) == 8  # two processes, the same 8 contents: one row each


# -- rows that exist once -----------------------------------------------------------------------


def test_racing_creators_make_one_model_endpoint_and_pipeline(open_store: StoreFactory) -> None:
    stores = [open_store("alice", sweep=False) for _ in range(2)]
    reached = _hold_inserts(stores, "models", "endpoints", "pipelines")

    def create(i: int) -> tuple[int, bool, int, int]:
        model_id = stores[i].ensure_model("churn")
        endpoint, created = stores[i].ensure_endpoint("ep")
        return model_id, created, stores[i].pipeline_id("p", "/p.ipynb"), endpoint.id

    results = _in_threads(2, create)
    assert reached()
    assert len({r[0] for r in results}) == 1  # one model id for both
    assert sorted(r[1] for r in results) == [False, True]  # exactly one of them created it
    assert len({r[2] for r in results}) == 1 and len({r[3] for r in results}) == 1
    for model in (orm.Model, orm.Endpoint, orm.Pipeline):
        assert stores[0].count(model) == 1, model.__tablename__


def test_racing_steps_recording_the_same_content_share_one_artifact(
    open_store: StoreFactory,
) -> None:
    first = open_store("alice", sweep=False)
    pid = first.pipeline_id("p", "/p.ipynb")
    run_id = first.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/p.ipynb",
                              parameters={}, options={}, steps=["a", "b"])
    steps = first.step_runs(run_id)
    stores = [first, open_store("alice", sweep=False)]
    reached = _hold_inserts(stores, "artifacts")
    sha = "c" * 64
    ref = {**artifact_ref(sha), "format": "json", "type_name": "builtins.int"}
    _in_threads(2, lambda i: stores[i].record_io(steps[i].id, "out", {"n": ref}))
    assert reached()
    assert first.count(orm.Artifact) == 1
    assert first.step_io(steps[0].id)["n"]["sha256"] == first.step_io(steps[1].id)["n"]["sha256"]


def test_steps_recording_the_same_contents_in_opposite_orders_do_not_deadlock(
    open_store: StoreFactory,
) -> None:
    first = open_store("alice", sweep=False)
    pid = first.pipeline_id("p", "/p.ipynb")
    run_id = first.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/p.ipynb",
                              parameters={}, options={}, steps=["a", "b"])
    steps = first.step_runs(run_id)
    stores = [first, open_store("alice", sweep=False)]
    # Each store pauses before its second artifacts INSERT until the other got there too (or
    # a second passed): inserting in the order given, each would then wait for the other's
    # first row, a cycle that PostgreSQL breaks by failing one of them.
    barrier = threading.Barrier(2, timeout=1)
    seen: dict[int, int] = {}

    def make(store: Store) -> Callable[..., None]:
        def pause(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO ARTIFACTS"):
                seen[id(store)] = seen.get(id(store), 0) + 1
                if seen[id(store)] == 2:
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        pass  # the other is waiting for our first row: go on
        return pause

    for store in stores:
        event.listen(store.engine, "before_cursor_execute", make(store))
    x = {**artifact_ref("1" * 64), "format": "json", "type_name": "builtins.int"}
    y = {**artifact_ref("2" * 64), "format": "json", "type_name": "builtins.int"}
    orders = [{"x": x, "y": y}, {"y": y, "x": x}]
    _in_threads(2, lambda i: stores[i].record_io(steps[i].id, "out", orders[i]))
    assert first.count(orm.Artifact) == 2
    for step in steps:
        assert {k: v["sha256"] for k, v in first.step_io(step.id).items()} == {
            "x": "1" * 64, "y": "2" * 64}
