"""The store service's calls, run directly on a real SQLite store (no hub, no HTTP).

Each call goes through the wire codec both ways, as it does over HTTP. The same walk runs
through a real JupyterHub in ``test_hub.py``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_mlplat.errors import InvalidSpecError, NotFoundError
from jupyter_mlplat.hub import policy
from jupyter_mlplat.hub.artifacts import OwnerArtifacts, owner_folder
from jupyter_mlplat.hub.dispatch import CallerProcess, StoreDispatcher
from jupyter_mlplat.hub.protocol import UnknownMethodError, decode, encode
from jupyter_mlplat.store.sql import Store

from .walk import NOW, check_walk, make_alice, make_bob, mixed_calls, walk_as

#: What RemoteStore sends with every call: this process.
ME = CallerProcess(socket.gethostname(), os.getpid(), psutil.Process().create_time())


class Dispatched:
    """A store-like object for ``owner`` whose every call goes through the dispatcher (and the
    wire codec, as over HTTP: requests decode without rows)."""

    def __init__(self, dispatcher: StoreDispatcher, owner: str,
                 process: CallerProcess | None = ME) -> None:
        self.dispatcher, self.owner, self.process = dispatcher, owner, process

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            wire = json.loads(json.dumps({"args": encode(list(args)), "kwargs": encode(kwargs)}))
            result = self.dispatcher.call(self.owner, name, decode(wire["args"], rows=False),
                                          decode(wire["kwargs"], rows=False), self.process)
            return decode(json.loads(json.dumps(encode(result))))
        return call


@pytest.fixture
def service(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'shared.db'}", "mlplat-service", sweep=False)
    artifacts = OwnerArtifacts(str(tmp_path / "artifacts"), cache_dir=str(tmp_path / "cache"))
    yield StoreDispatcher(store, artifacts), artifacts
    store.close()


@pytest.fixture
def alice(service):
    dispatcher, artifacts = service
    store = Dispatched(dispatcher, "alice")
    return store, make_alice(store, artifacts.store("alice"))


def test_bob_walks_every_exposed_method_and_reaches_nothing_of_alice(service, alice):
    dispatcher, artifacts = service
    alice_store, data = alice
    check_walk(Dispatched(dispatcher, "bob"), alice_store, data, artifacts.store("bob"))


@pytest.mark.parametrize("key", ["cached_from", "run_id", "step_run_id"])
def test_the_mixed_walk_catches_an_id_the_policy_stops_checking(service, alice, monkeypatch,
                                                                key):
    # The store itself does not check these ids against the caller; the policy must. Without
    # the check, the walk that mixes bob's ids with alice's fails.
    dispatcher, artifacts = service
    _, data = alice
    bob = Dispatched(dispatcher, "bob")
    mine = make_bob(bob, artifacts.store("bob"))
    monkeypatch.delitem(policy.ID_ARGS, key)
    wrong = walk_as(bob, data, mixed_calls(data, mine))
    assert any("expected 404" in why for why in wrong.values()), wrong


def test_fields_never_set_owner_ids_or_numbers(service, alice):
    alice_store, data = alice
    with pytest.raises(InvalidSpecError, match="cannot set owner"):
        alice_store.update_step_run(data.step_run_id, owner="bob")
    with pytest.raises(InvalidSpecError, match="cannot set run_id"):
        alice_store.update_step_run(data.step_run_id, run_id="x")
    with pytest.raises(InvalidSpecError, match="cannot set version"):
        alice_store.add_model_version("churn", artifact=data.ref, flavor="sklearn",
                                      created_by="alice", version=7)
    with pytest.raises(InvalidSpecError, match="cannot set lease_holder"):
        alice_store.update_schedule(data.schedule_id, NOW, lease_holder="me")
    with pytest.raises(InvalidSpecError, match="field 'status'"):
        alice_store.update_step_run(data.step_run_id, status=["not", "a", "string"])


def test_actor_is_always_the_caller(alice):
    alice_store, data = alice
    with pytest.raises(InvalidSpecError, match="actor must be the authenticated user 'alice'"):
        alice_store.add_alias_event("churn", "staging", 1, actor="bob")
    with pytest.raises(InvalidSpecError, match="created_by must be"):
        alice_store.add_model_version("churn", artifact=data.ref, flavor="sklearn",
                                      created_by="root")
    with pytest.raises(InvalidSpecError, match="promote.actor"):
        alice_store.add_validation(data.model_version_id, run_id=None, status="blessed",
                                   policy={}, report={}, promote={
                                       "alias": "x", "expected": None, "actor": "bob"})


def test_recorded_artifacts_must_be_the_callers_own(service, alice):
    dispatcher, artifacts = service
    _, data = alice
    bob = Dispatched(dispatcher, "bob")
    pid = bob.pipeline_id("mine", "/home/bob/mine.ipynb")
    run_id = bob.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/n",
                            parameters={}, options={}, steps=["s"])
    step_run = bob.step_runs(run_id)[0].id
    # alice's object, referenced from bob's own step run: refused, and never readable by bob
    with pytest.raises(NotFoundError, match="no artifact"):
        bob.record_io(step_run, "out", {"x": data.ref})
    with pytest.raises(NotFoundError):
        bob.update_step_run(step_run, executed_notebook=data.ref["uri"])
    with pytest.raises(NotFoundError):
        artifacts.store("bob").local_path(data.ref["uri"])
    assert artifacts.store("bob").exists(data.ref["uri"]) is False
    # bob's own object is fine; a wrong content address for it is not
    mine = artifacts.store("bob").put_bytes(b"bob's", ".json")
    ref = {**data.ref, "sha256": mine.sha256, "uri": mine.uri}
    bob.record_io(step_run, "out", {"x": ref})
    assert bob.step_io(step_run)["x"]["uri"] == mine.uri
    with pytest.raises(InvalidSpecError, match="holds content"):
        bob.record_io(step_run, "in", {"x": {**ref, "sha256": "0" * 64}})


def test_runs_record_the_calling_process_not_the_service(service):
    dispatcher, _ = service
    mine = CallerProcess("laptop", 4242, 123.0)
    other = CallerProcess("laptop", 4343, 456.0)
    bob = Dispatched(dispatcher, "bob", mine)
    pid = bob.pipeline_id("p", "/p.ipynb")
    # no process, no run: a run recorded as the service's would look alive forever
    for method, args, kwargs in [
        ("create_run", (), {"pipeline_id": pid, "pipeline_version": "v", "notebook_path": "/p",
                            "parameters": {}, "options": {}, "steps": ["s"]}),
        ("claim_run", ("abc", ["failed"]), {}),
        ("finish_run", ("abc", "failed"), {"only_if_ours": True}),
    ]:
        with pytest.raises(InvalidSpecError, match="send \"process\""):
            getattr(Dispatched(dispatcher, "bob", None), method)(*args, **kwargs)
    assert bob.runs() == []
    run_id = bob.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/p",
                            parameters={}, options={}, steps=["s"])
    row = bob.run_row(run_id)
    assert (row.host, row.pid, row.pid_started) == ("laptop", 4242, 123.0)
    # the service's own process is never recorded, not even for a moment: the rows are
    # written as the caller's in the transaction that creates them
    with dispatcher.store.session() as s:
        from sqlalchemy import select

        from jupyter_mlplat.store import orm

        assert s.scalar(select(orm.Run).where(orm.Run.pid == os.getpid())) is None
    # "finish only if ours": another process's finish changes nothing, ours does
    Dispatched(dispatcher, "bob", other).finish_run(run_id, "failed", only_if_ours=True)
    assert bob.run_row(run_id).status == "running"
    bob.finish_run(run_id, "failed", "boom", only_if_ours=True)
    assert (bob.run_row(run_id).status, bob.run_row(run_id).error) == ("failed", "boom")
    # a resume by another process makes that process the run's live owner
    assert Dispatched(dispatcher, "bob", other).claim_run(run_id, ["failed"]) is True
    assert bob.run_row(run_id).pid == 4343


def test_unknown_denied_and_malformed_calls(service):
    dispatcher, _ = service
    # not "no such row": a client newer than the service must not take it for one
    for method, match in [("drop_everything", "no method 'drop_everything'"),
                          ("due_schedules", "spans owners"), ("session", "cannot cross HTTP")]:
        with pytest.raises(UnknownMethodError, match=match) as err:
            dispatcher.call("bob", method, [NOW, "me"] if method == "due_schedules" else [], {})
        assert not isinstance(err.value, NotFoundError)
    assert "run_row" in dispatcher.methods() and "due_schedules" not in dispatcher.methods()
    with pytest.raises(InvalidSpecError, match="run_row: missing a required argument"):
        dispatcher.call("bob", "run_row", [], {})
    with pytest.raises(InvalidSpecError, match="unexpected keyword argument 'owner'"):
        dispatcher.call("bob", "runs", [], {"owner": "alice"})
    with pytest.raises(InvalidSpecError, match="argument 'limit'"):
        dispatcher.call("bob", "runs", [], {"limit": "all"})
    with pytest.raises(InvalidSpecError, match="'process' must be"):
        CallerProcess.parse({"host": "h"})


@pytest.mark.parametrize("owner, folder", [
    ("alice", "alice"), ("a.b@example.org", "a.b%40example.org"), ("../etc", "%2E.%2Fetc"),
    ("..", "%2E."), ("x/y", "x%2Fy"),
])
def test_owner_folders_are_one_safe_path_segment(owner, folder):
    assert owner_folder(owner) == folder
    assert "/" not in folder and folder not in (".", "..")


# -- a client's mistakes are 400s, never failures inside the store ---------------------------


def test_malformed_arguments_are_refused_before_the_store_sees_them(service, alice):
    dispatcher, artifacts = service
    alice_store, data = alice
    bob = Dispatched(dispatcher, "bob")
    mine = make_bob(bob, artifacts.store("bob"))
    no_uri = {k: v for k, v in mine.ref.items() if k != "uri"}
    cases = [
        (lambda: bob.record_io(mine.step_run_id, "out", {"x": no_uri}),
         r"record_io: argument 'refs': Field required \(at x.uri\)"),
        (lambda: bob.record_io(mine.step_run_id, "out", {"x": {**mine.ref, "sha256": "zz"}}),
         "argument 'refs'.*pattern"),
        (lambda: bob.log_metrics(mine.run_id, None, [{"value": 1.0}]),
         r"log_metrics: argument 'points': Field required \(at 0.name\)"),
        (lambda: bob.add_slices(mine.run_id, None, metric="m", by="r", rows=[{"slice": "a"}]),
         r"add_slices: argument 'rows': Field required \(at 0.count\)"),
        (lambda: bob.add_schedule(name="n", target="notebook"),
         "add_schedule: missing required field.*cron.*notebook_path.*timezone"),
        (lambda: bob.add_model_version("bobs", flavor="sklearn", created_by="bob"),
         "add_model_version: missing required field.*artifact"),
        (lambda: bob.add_endpoint_revision("ep", routes=[]),
         "add_endpoint_revision: missing required field.*action.*actor"),
        (lambda: bob.create_run(pipeline_id=mine.pipeline_id, pipeline_version="v",
                                notebook_path="n", parameters={"when": NOW}, options={},
                                steps=["s"]),
         "create_run: argument 'parameters' must be plain JSON"),
        (lambda: bob.update_step_run(mine.step_run_id, status=None),
         "update_step_run: field 'status'"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidSpecError, match=message):
            call()
    assert len(bob.runs()) == 1 and bob.metrics([mine.run_id]) == []
    # a store row inside a request is refused by the codec, before any method runs
    with pytest.raises(InvalidSpecError, match="store rows are never sent"):
        decode({"$row": "Run", "columns": {"id": "x"}}, rows=False)


def test_database_refusals_become_400_or_409(service, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from jupyter_mlplat.errors import ConflictError

    dispatcher, _ = service
    bob = Dispatched(dispatcher, "bob")
    for text, error in [("NOT NULL constraint failed: models.name", InvalidSpecError),
                        ("UNIQUE constraint failed: models.owner, models.name", ConflictError)]:
        def refuse(self, name, text=text):  # noqa: ANN001, ANN202
            raise IntegrityError("INSERT ...", {}, Exception(text))

        monkeypatch.setattr(Store, "ensure_model", refuse)
        with pytest.raises(error, match=text.split(":")[0]):
            bob.ensure_model("m")


def test_schedule_rows_are_checked_by_the_service(service):
    dispatcher, _ = service
    bob = Dispatched(dispatcher, "bob")
    base = {"name": "nightly", "target": "notebook", "cron": "0 3 * * *", "timezone": "UTC"}
    refused = [
        ({"notebook_path": "/home/alice/secret.ipynb"}, "is absolute"),
        ({"notebook_path": "../alice/secret.ipynb"}, "leads outside your root"),
        ({"notebook_path": "work/../../alice/x.ipynb"}, "leads outside your root"),
        ({"notebook_path": "~alice/x.ipynb"}, "is absolute"),
        ({"notebook_path": "x\x00.ipynb"}, "NUL"),
        ({"notebook_path": "notes.txt"}, "not a notebook"),
        ({"notebook_path": "a.ipynb", "kernel_name": "evil"}, "kernel 'evil' is not one"),
        ({"notebook_path": "a.ipynb", "notify": {"webhook": ["http://169.254.169.254/x"]}},
         "not a public address"),
        ({"notebook_path": "a.ipynb", "notify": {"webhook": ["file:///etc/passwd"]}},
         "not an http"),
        ({"notebook_path": "a.ipynb", "notify": {"webhook": ["http://localhost:8081/hub"]}},
         "is internal"),
        ({"notebook_path": "a.ipynb", "cron": "99 * * * *"}, "cron"),
        ({"notebook_path": "a.ipynb", "on_success": {"deploy_if_blessed": {"model": "../x"}}},
         "model name"),
    ]
    for fields, message in refused:
        with pytest.raises(InvalidSpecError, match=message):
            bob.add_schedule(**{**base, **fields})
    assert bob.schedules() == []
    row = bob.add_schedule(**base, notebook_path="./work//retrain.ipynb", kernel_name="python3",
                           notify={"webhook": ["https://8.8.8.8/hook"]})
    assert row.notebook_path == "work/retrain.ipynb" and row.kernel_name == "python3"
    assert row.notify["webhook"] == ["https://8.8.8.8/hook"] and row.notify["on"] == ["failure"]
    # changes are checked the same way
    with pytest.raises(InvalidSpecError, match="is absolute"):
        bob.update_schedule(row.id, NOW, notebook_path="/etc/x.ipynb")
    with pytest.raises(InvalidSpecError, match="not a public address"):
        bob.update_schedule(row.id, NOW, notify={"webhook": ["http://10.0.0.7/"]})
    assert bob.schedule_row(row.id).notebook_path == "work/retrain.ipynb"


def test_the_service_sets_when_a_schedule_fires_next(service):
    """Clients may not write ``next_fire_at``; the service sets it on its own clock, so a
    schedule made through it fires on cron (and a paused one does not)."""
    from datetime import UTC, datetime

    dispatcher, _ = service
    bob = Dispatched(dispatcher, "bob")
    base = {"name": "n", "target": "notebook", "notebook_path": "a.ipynb",
            "cron": "*/5 * * * *", "timezone": "UTC"}
    before = datetime.now(UTC)
    row = bob.add_schedule(**base)
    assert row.next_fire_at > before and row.next_fire_at.minute % 5 == 0
    assert bob.add_schedule(**{**base, "name": "p"}, paused=True).next_fire_at is None
    with pytest.raises(InvalidSpecError, match="next_fire_at"):
        bob.add_schedule(**{**base, "name": "q"}, next_fire_at=before)
    with pytest.raises(InvalidSpecError, match="last_slot_at"):
        bob.update_schedule(row.id, NOW, last_slot_at=before)
    assert bob.update_schedule(row.id, NOW, paused=True).next_fire_at is None
    resumed = bob.update_schedule(row.id, NOW, paused=False)
    assert resumed.next_fire_at > before and resumed.last_error is None
    hourly = bob.update_schedule(row.id, NOW, cron="0 * * * *")
    assert hourly.next_fire_at.minute == 0
    # a change that touches neither the cron nor pausing keeps the slot
    assert bob.update_schedule(row.id, NOW, parameters={"x": 1}).next_fire_at == \
        hourly.next_fire_at
    with pytest.raises(NotFoundError):
        Dispatched(dispatcher, "eve").update_schedule(row.id, NOW, paused=False)
