"""alice's rows, and bob walking every store method the store service exposes against them.

Used twice: on the dispatcher directly (the default test run) and through a real JupyterHub
with real tokens (``-m hub``). ``store`` objects here are anything with the store's interface
scoped to one user: a ``RemoteStore``, or the dispatcher adapter of ``test_dispatch``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jupyter_mlplat.errors import NotFoundError
from jupyter_mlplat.hub.policy import EXPOSED, public_methods
from jupyter_mlplat.store.sql import Store

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class AliceData:
    """Ids and names of what alice made."""

    pipeline_id: int
    pipeline_version: str
    step_version: str
    run_id: str
    step_run_id: int
    ref: dict[str, Any]
    artifact_id: int
    model_id: int
    model_version_id: int
    endpoint: str
    schedule_id: str
    firing_id: int
    notebook: str
    project: str


def make_alice(store: Any, artifacts: Any) -> AliceData:
    """A finished run with a step, an output, params, metrics, a model version with alias,
    policy, verdict, override, slices and eval data, a deployed endpoint and a schedule."""
    notebook = "work/secret.ipynb"  # schedules name notebooks relative to the owner's root
    pid = store.pipeline_id("secret", notebook)
    pv, sv = "a" * 64, "b" * 64
    store.save_pipeline_version(pid, pv, {"name": "secret"})
    store.save_step_version(pid, "load", sv, "x = 1", {})
    run_id = store.create_run(pipeline_id=pid, pipeline_version=pv, notebook_path=notebook,
                              parameters={"p": 1}, options={}, steps=["load"])
    step_run = store.step_runs(run_id)[0]
    info = artifacts.put_bytes(b'{"alice": "secret"}', ".json")
    ref = {"name": "x", "sha256": info.sha256, "uri": info.uri, "format": "json",
           "type_name": "builtins.dict", "size": info.size, "trusted_only": False, "meta": {}}
    store.update_step_run(step_run.id, status="succeeded", step_version=sv,
                          executed_notebook=info.uri, finished_at=NOW)
    store.record_io(step_run.id, "out", {"x": ref})
    store.log_params(run_id, step_run.id, {"p": 1})
    store.log_metrics(run_id, step_run.id, [{"name": "acc", "value": 0.9}])
    mv = store.add_model_version("churn", artifact=ref, flavor="sklearn", created_by="alice",
                                 run_id=run_id, step_run_id=step_run.id)
    store.add_alias_event("churn", "production", 1, actor="alice")
    store.add_policy("churn", {"metric": "acc"}, actor="alice")
    store.add_validation(mv.id, run_id=run_id, status="blessed", policy={}, report={})
    store.add_override(mv.id, actor="alice", reason="trust me")
    store.add_slices(run_id, step_run.id, metric="acc", by="region",
                     rows=[{"slice": "eu", "value": 0.9, "count": 10}])
    store.add_eval_set(run_id, step_run.id, x=ref, y=ref, slices=None, slices_name=None,
                       count=10)
    store.ensure_endpoint("churn-ep")
    store.set_endpoint_token("churn-ep", "c" * 64)
    store.add_endpoint_revision("churn-ep", routes=[{"model": "churn", "version": 1,
                                                     "weight": 100}],
                                action="deploy", actor="alice")
    schedule = store.add_schedule(name="nightly", target="notebook", notebook_path=notebook,
                                  cron="0 3 * * *", timezone="UTC")
    firing = store.add_manual_firing(schedule.id, NOW, requested_by="alice", parameters={})
    store.finish_run(run_id, "succeeded")
    # shared with a project of hers that bob is not in: still nothing of it reaches bob
    project = store.create_project(f"team-{uuid.uuid4().hex[:8]}")["key"]  # alice/team-...
    for kind, name in (("model", "churn"), ("endpoint", "churn-ep"), ("pipeline", "secret"),
                       ("schedule", schedule.id)):
        store.share(kind, name, project)
    return AliceData(pid, pv, sv, run_id, step_run.id, ref, mv.artifact_id, mv.model_id,
                     mv.id, "churn-ep", schedule.id, firing.id, notebook, project)


#: The expected outcome of one call: "404", or a check of what bob got back.
Outcome = str | Callable[[Any], bool]


def bob_calls(a: AliceData) -> list[tuple[str, tuple[Any, ...], dict[str, Any], Outcome]]:
    """Every exposed method, called by bob with alice's ids and names, and what must happen.

    Calls that name one of alice's rows are refused with 404; listings and lookups by name see
    only bob's own (empty) world; calls that create something create it in bob's namespace.
    The order matters: bob's own rows of the same names are made last.
    """
    ref = a.ref
    alice_run_ids = {a.run_id}
    return [
        ("sweep_interrupted", (), {}, lambda r: not alice_run_ids & set(r)),
        ("heartbeat", (a.run_id,), {}, "404"),
        ("save_pipeline_version", (a.pipeline_id, "d" * 64, {}), {}, "404"),
        ("pipeline_spec", (a.pipeline_version,), {}, "404"),
        ("save_step_version", (a.pipeline_id, "load", "e" * 64, "x = 2", {}), {}, "404"),
        ("create_run", (), {"pipeline_id": a.pipeline_id, "pipeline_version": "v",
                            "notebook_path": a.notebook, "parameters": {}, "options": {},
                            "steps": ["load"]}, "404"),
        ("claim_run", (a.run_id, ["succeeded", "failed"]), {}, "404"),
        ("finish_run", (a.run_id, "failed"), {"error": "bob was here"}, "404"),
        ("request_cancel", (a.run_id,), {}, "404"),
        ("resolve_run_id", (a.run_id[:6],), {}, "404"),
        ("run_row", (a.run_id,), {}, "404"),
        ("runs", (), {}, lambda r: r == []),
        ("pipeline_names", ([a.pipeline_id],), {}, lambda r: r == {}),
        ("step_runs", (a.run_id,), {}, "404"),
        ("step_run", (a.run_id, "load"), {}, "404"),
        ("run_of_step_run", (a.step_run_id,), {}, "404"),
        ("new_attempt", (a.run_id, "load", 2), {}, "404"),
        ("update_step_run", (a.step_run_id,), {"status": "failed"}, "404"),
        ("find_cached", (a.step_version,), {}, lambda r: r is None),
        ("latest_success", (a.pipeline_id, "load"), {}, "404"),
        ("record_io", (a.step_run_id, "in", {"x": ref}), {}, "404"),
        ("step_io", (a.step_run_id,), {}, "404"),
        ("log_params", (a.run_id, None, {"q": 2}), {}, "404"),
        ("log_metrics", (a.run_id, None, [{"name": "acc", "value": 0.1}]), {}, "404"),
        ("params", ([a.run_id],), {}, lambda r: r == []),
        ("metrics", ([a.run_id],), {}, lambda r: r == []),
        ("models", (), {}, lambda r: r == []),
        ("model_versions", ("churn",), {}, "404"),
        ("model_version", ("churn", 1), {}, "404"),
        ("model_version_by_id", (a.model_version_id,), {}, "404"),
        ("model_name", (a.model_id,), {}, "404"),
        ("run_model_versions", (a.run_id,), {}, "404"),
        ("artifact_ref", (a.artifact_id,), {}, "404"),
        ("step_inputs", (a.step_run_id,), {}, "404"),
        ("step_version_code", (a.step_version,), {}, lambda r: r is None),
        ("add_alias_event", ("churn", "production", None), {"actor": "bob"}, "404"),
        ("alias_target", ("churn", "production"), {}, "404"),
        ("aliases", ("churn",), {}, "404"),
        ("alias_history", ("churn",), {}, "404"),
        ("policy", ("churn",), {}, lambda r: r is None),
        ("add_validation", (a.model_version_id,), {"run_id": None, "status": "rejected",
                                                   "policy": {}, "report": {}}, "404"),
        ("validations", ([a.model_version_id],), {}, lambda r: r == {}),
        ("add_override", (a.model_version_id,), {"actor": "bob", "reason": "x"}, "404"),
        ("overrides", (a.model_version_id,), {}, "404"),
        ("add_slices", (a.run_id, None), {"metric": "acc", "by": "r", "rows": []}, "404"),
        ("slice_metrics", ([a.run_id],), {}, lambda r: r == []),
        ("add_eval_set", (a.run_id, None), {"x": ref, "y": ref, "slices": None,
                                            "slices_name": None, "count": 1}, "404"),
        ("eval_sets", (a.run_id,), {}, "404"),
        ("eval_set", (a.run_id,), {}, "404"),
        ("endpoint_row", (a.endpoint,), {}, "404"),
        ("set_endpoint_token", (a.endpoint, None), {}, "404"),
        ("add_endpoint_revision", (a.endpoint,), {"routes": [], "action": "undeploy",
                                                  "actor": "bob"}, "404"),
        ("endpoint_revisions", (a.endpoint,), {}, "404"),
        ("endpoints", (), {}, lambda r: r == []),
        ("serving_states", (), {}, lambda r: r == []),
        ("schedule_row", (a.schedule_id,), {}, "404"),
        ("schedules", (), {}, lambda r: r == []),
        ("match_schedules", (a.schedule_id,), {}, lambda r: r == []),
        ("update_schedule", (a.schedule_id, NOW), {"paused": True}, "404"),
        ("delete_schedule", (a.schedule_id, NOW), {}, "404"),
        ("add_manual_firing", (a.schedule_id, NOW), {"requested_by": "bob",
                                                     "parameters": {}}, "404"),
        ("firing_row", (a.firing_id,), {}, "404"),
        ("firings", (a.schedule_id,), {}, "404"),
        ("latest_firings", ([a.schedule_id],), {}, lambda r: r == {}),
        ("run_statuses", ([a.run_id],), {}, lambda r: r == {}),
        ("projects", (), {}, lambda r: r == []),
        ("project", (a.project,), {}, "404"),
        ("add_project_member", (a.project, "bob"), {}, "404"),
        ("remove_project_member", (a.project, "alice"), {}, "404"),
        ("remove_project_member", (a.project, "bob"), {}, "404"),
        ("delete_project", (a.project,), {}, "404"),
        ("share", ("model", "churn", a.project), {}, "404"),
        ("shared_with_me", (), {}, lambda r: r == []),
        ("shares", (), {}, lambda r: r == []),
        ("shared_model", ("alice", "churn"), {}, "404"),
        ("shared_endpoint", ("alice", a.endpoint), {}, "404"),
        ("shared_pipeline", ("alice", "secret"), {}, "404"),
        ("shared_schedule", ("alice", a.schedule_id), {}, "404"),
        # bob's own rows of the same names: his, never alice's
        ("serving_generation", (), {}, lambda r: isinstance(r, str)),
        ("pipeline_id", ("secret", a.notebook), {}, lambda r: r != a.pipeline_id),
        ("ensure_model", ("churn",), {}, lambda r: r != a.model_id),
        ("add_model_version", ("churn",), {"artifact": ref, "flavor": "sklearn",
                                           "created_by": "bob"}, "404"),
        ("add_policy", ("churn", {"metric": "bob"}), {"actor": "bob"}, lambda r: r is None),
        ("ensure_endpoint", (a.endpoint,), {}, lambda r: r[0].owner == "bob" and r[1]),
        # project names are per owner: the same name is bob's own project, nothing of alice's
        ("create_project", (a.project.split("/")[1],), {"members": ["carol"]},
         lambda r: r["key"] == "bob/" + a.project.split("/")[1] and r["members"] == ["carol"]),
        ("add_schedule", (), {"name": "nightly", "target": "notebook",
                              "notebook_path": a.notebook, "cron": "0 3 * * *",
                              "timezone": "UTC"}, lambda r: r.owner == "bob"
         and r.id != a.schedule_id),
    ]


@dataclass
class BobData:
    """Ids of bob's own rows, for calls that mix his ids with alice's."""

    pipeline_id: int
    run_id: str
    step_run_id: int
    ref: dict[str, Any]
    model_version_id: int


def make_bob(store: Any, artifacts: Any) -> BobData:
    """A running run of bob's with a step, an output and a model version."""
    pid = store.pipeline_id("mine", "work/mine.ipynb")
    run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="mine",
                              parameters={}, options={}, steps=["s"])
    step_run = store.step_runs(run_id)[0]
    info = artifacts.put_bytes(b'{"bob": "own"}', ".json")
    ref = {"name": "x", "sha256": info.sha256, "uri": info.uri, "format": "json",
           "type_name": "builtins.dict", "size": info.size, "trusted_only": False, "meta": {}}
    mv = store.add_model_version("bobs", artifact=ref, flavor="sklearn", created_by="bob")
    store.finish_run(run_id, "succeeded")
    return BobData(pid, run_id, step_run.id, ref, mv.id)


def mixed_calls(a: AliceData, b: BobData
                ) -> list[tuple[str, tuple[Any, ...], dict[str, Any], Outcome]]:
    """Calls on bob's own rows that name one of alice's as a second id or artifact: each one
    must be refused with 404 (no reference from bob's rows into alice's)."""
    mine = {"artifact": b.ref, "flavor": "sklearn", "created_by": "bob"}
    return [
        ("log_params", (b.run_id, a.step_run_id, {"q": 1}), {}, "404"),
        ("log_metrics", (b.run_id, a.step_run_id, [{"name": "m", "value": 1.0}]), {}, "404"),
        ("add_slices", (b.run_id, a.step_run_id), {"metric": "m", "by": "r", "rows": []},
         "404"),
        ("add_eval_set", (b.run_id, a.step_run_id), {"x": b.ref, "y": b.ref, "slices": None,
                                                     "slices_name": None, "count": 1}, "404"),
        ("add_eval_set", (b.run_id, None), {"x": b.ref, "y": a.ref, "slices": None,
                                            "slices_name": None, "count": 1}, "404"),
        ("add_validation", (b.model_version_id,), {"run_id": a.run_id, "status": "blessed",
                                                   "policy": {}, "report": {}}, "404"),
        ("update_step_run", (b.step_run_id,), {"cached_from": a.step_run_id}, "404"),
        ("update_step_run", (b.step_run_id,), {"executed_notebook": a.ref["uri"]}, "404"),
        ("record_io", (b.step_run_id, "in", {"x": a.ref}), {}, "404"),
        ("add_model_version", ("bobs",), {**mine, "run_id": a.run_id}, "404"),
        ("add_model_version", ("bobs",), {**mine, "step_run_id": a.step_run_id}, "404"),
        ("add_model_version", ("bobs",), {**mine, "sample_input": a.ref}, "404"),
        ("save_step_version", (a.pipeline_id, "s", "f" * 64, "x = 3", {}), {}, "404"),
    ]


def assert_bob_untouched(store: Any, bob: BobData) -> None:
    """None of the refused mixed calls left anything on bob's rows."""
    (step,) = store.step_runs(bob.run_id)
    assert (step.cached_from, step.executed_notebook) == (None, None)
    assert store.params([bob.run_id]) == [] and store.metrics([bob.run_id]) == []
    assert store.slice_metrics([bob.run_id]) == [] and store.eval_sets(bob.run_id) == []
    assert store.validations([bob.model_version_id]) == {}
    assert [v.version for v in store.model_versions("bobs")] == [1]


def walk_as(bob: Any, alice: AliceData,
            calls: list[tuple[str, tuple[Any, ...], dict[str, Any], Outcome]] | None = None
            ) -> dict[str, str]:
    """Run every call of :func:`bob_calls` (or ``calls``); method -> what went wrong (empty:
    all as expected)."""
    wrong: dict[str, str] = {}
    for method, args, kwargs, expected in (bob_calls(alice) if calls is None else calls):
        try:
            result = getattr(bob, method)(*args, **kwargs)
        except NotFoundError:
            if expected != "404":
                wrong[method] = "404, expected an answer"
            continue
        except Exception as exc:  # noqa: BLE001 - reported below
            wrong[f"{method}{sorted(kwargs)}"] = f"{type(exc).__name__}: {exc}"
            continue
        if expected == "404":
            wrong[f"{method}{sorted(kwargs)}"] = f"answered {result!r}, expected 404"
        elif not expected(result):  # type: ignore[operator]
            wrong[method] = f"answered {result!r}"
    return wrong


def walked_methods(alice: AliceData) -> set[str]:
    return {method for method, *_ in bob_calls(alice)}


def exposed_methods() -> set[str]:
    """The methods a client can call: exposed and present on the store."""
    return set(EXPOSED) & public_methods(Store)


def assert_alice_untouched(store: Any, alice: AliceData) -> None:
    """alice's rows are as she left them after bob's walk."""
    run = store.run_row(alice.run_id)
    assert (run.status, run.error, run.cancel_requested) == ("succeeded", None, False)
    assert [r.status for r in store.step_runs(alice.run_id, latest=False)] == ["succeeded"]
    assert {p.name: p.value for p in store.params([alice.run_id])} == {"p": 1}
    assert [m.value for m in store.metrics([alice.run_id])] == [0.9]
    assert store.aliases("churn") == {"production": 1}
    assert store.policy("churn").policy == {"metric": "acc"}
    assert [r.action for r in store.endpoint_revisions(alice.endpoint)] == ["deploy"]
    assert store.endpoint_row(alice.endpoint).token_hash == "c" * 64
    schedule = store.schedule_row(alice.schedule_id)
    assert (schedule.paused, schedule.deleted_at) == (False, None)
    assert [f.id for f in store.firings(alice.schedule_id)] == [alice.firing_id]
    project = store.project(alice.project)
    assert (project["owner"], project["members"], len(project["shared"])) == ("alice", [], 4)


def check_walk(bob: Any, alice_store: Any, alice: AliceData, bob_artifacts: Any) -> None:
    """Walk as bob, then mix bob's ids with alice's in every call that takes a second id;
    check the walk covered every exposed method and that alice's rows (read through
    ``alice_store``) and bob's are untouched."""
    assert walked_methods(alice) == exposed_methods(), (
        "every exposed store method must be walked as bob: add the missing ones to bob_calls")
    wrong = walk_as(bob, alice)
    assert not wrong, wrong
    mine = make_bob(bob, bob_artifacts)
    wrong = walk_as(bob, alice, mixed_calls(alice, mine))
    assert not wrong, wrong
    assert_alice_untouched(alice_store, alice)
    assert_bob_untouched(bob, mine)

