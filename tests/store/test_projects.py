"""Projects and sharing on both backends: private by default, members (added or through a hub
group) read what is shared with their project and change nothing, a shared model loads in
another user's process in safe formats only, and anything else reads as never existing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jupyter_mlplat.errors import (
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    UnsafeArtifactError,
)
from jupyter_mlplat.store.artifacts import ArtifactStore
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.flavors import save_model
from jupyter_mlplat.tracking.registry import ModelRegistry


class Doubler:
    """A model only its owner may load (pickled: the pyfunc flavour)."""

    def predict(self, X: Any) -> Any:
        return np.asarray(X)[:, 0] * 2


@pytest.fixture
def people(url: str, tmp_path: Path) -> Iterator[dict[str, ModelRegistry]]:
    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    out = {name: ModelRegistry(Store(url, name), artifacts) for name in ("alice", "bob", "eve")}
    yield out
    for registry in out.values():
        registry.store.close()


def _register(reg: ModelRegistry, name: str, model: Any) -> Any:
    X = np.random.default_rng(0).normal(size=(40, 2))
    saved = save_model(model, name=name, sample_input=X[:5], store=reg.artifacts)
    return reg.register(name, asdict(saved), run_id=None)


def _fitted() -> LogisticRegression:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def test_a_shared_model_is_visible_and_loadable_by_members_only(people) -> None:
    alice, bob, eve = people["alice"], people["bob"], people["eve"]
    _register(alice, "churn", _fitted())
    alice.set_alias("churn", "production", 1)
    alice.store.ensure_endpoint("churn-ep")

    # private by default: nobody else sees anything
    with pytest.raises(NotFoundError):
        bob.load("alice/churn@production")
    assert bob.store.shared_with_me() == []

    alice.store.create_project("fraud", description="the fraud team")
    alice.store.add_project_member("fraud", "bob")
    shared = alice.store.share("model", "churn", "fraud")
    assert shared == {"kind": "model", "name": "churn", "id": shared["id"], "owner": "alice",
                      "project": "alice/fraud"}

    assert [(r["kind"], r["owner"], r["name"]) for r in bob.store.shared_with_me()] == [
        ("model", "alice", "churn")]
    loaded = bob.load("alice/churn@production")
    X = np.random.default_rng(0).normal(size=(5, 2))
    assert (loaded.predict(X) == alice.load("churn@1").predict(X)).all()
    info = bob.shared("alice", "churn@production")
    assert info["version"]["version"] == 1 and info["aliases"] == {"production": 1}
    # how to load it travels, not where it came from (runs, notebooks, cells, input data)
    assert set(info["version"]) == {"version", "flavor", "signature", "meta", "created_at"}

    # eve is in no project of alice's: the same answer as for a model that never existed
    for ref in ("alice/churn@production", "alice/never@1"):
        with pytest.raises(NotFoundError) as caught:
            eve.load(ref)
        assert "shared with you" in str(caught.value)
    assert eve.store.shared_with_me() == []
    # the endpoint was not shared: only the model
    with pytest.raises(NotFoundError):
        bob.store.shared_endpoint("alice", "churn-ep")

    # members read, never change: bob's own queries still see only his rows
    assert bob.store.models() == []
    with pytest.raises(NotFoundError):
        bob.store.share("model", "churn", "alice/fraud")
    with pytest.raises(ConflictError, match="only the owner"):
        bob.store.add_project_member("alice/fraud", "eve")
    # a member may share something of their own with it, and leave it
    bob.store.ensure_endpoint("bobs-ep")
    assert bob.store.share("endpoint", "bobs-ep", "alice/fraud")["project"] == "alice/fraud"
    assert {r["owner"] for r in alice.store.shared_with_me()} == {"bob"}

    # unsharing (or leaving the project) takes it away at once
    bob.store.remove_project_member("alice/fraud", "bob")  # bob leaves
    with pytest.raises(NotFoundError):
        bob.load("alice/churn")
    with pytest.raises(NotFoundError):
        bob.store.project("alice/fraud")
    # the owner removes members; a project of the same name of bob's is another project
    alice.store.add_project_member("fraud", "bob")
    alice.store.remove_project_member("fraud", "bob")
    assert bob.store.create_project("fraud")["key"] == "bob/fraud"
    with pytest.raises(NotFoundError):
        bob.load("alice/churn")


def test_a_pickled_model_of_another_user_is_never_loaded(people) -> None:
    alice, bob = people["alice"], people["bob"]
    _register(alice, "doubler", Doubler())
    alice.store.create_project("team")
    alice.store.add_project_member("team", "bob")
    alice.store.share("model", "doubler", "team")
    assert bob.store.shared_model("alice", "doubler")["artifact"]["trusted_only"] is True
    with pytest.raises(UnsafeArtifactError):
        bob.load("alice/doubler")
    uri = bob.store.shared_model("alice", "doubler")["artifact"]["uri"]
    assert bob.store.shared_object_owner(uri) is None  # the service would not hand it out
    assert alice.load("doubler").predict(np.ones((2, 2))).tolist() == [2.0, 2.0]


def test_a_project_can_follow_a_hub_group(people) -> None:
    alice, bob, eve = people["alice"], people["bob"], people["eve"]
    _register(alice, "churn", _fitted())
    with pytest.raises(InvalidSpecError, match="only a hub group you are in"):
        eve.store.create_project("ml", hub_group="ml-team")
    alice.store.groups = frozenset({"ml-team"})
    alice.store.create_project("ml", hub_group="ml-team")
    alice.store.share("model", "churn", "ml")
    assert bob.store.shared_with_me() == []
    bob.store.groups = frozenset({"ml-team"})
    assert [r["name"] for r in bob.store.shared_with_me("model")] == ["churn"]
    assert bob.store.projects()[0]["role"] == "hub group"
    uri = bob.store.shared_model("alice", "churn")["artifact"]["uri"]
    assert bob.store.shared_object_owner(uri) == "alice"
    assert eve.store.shared_object_owner(uri) is None
    assert bob.store.shared_object_owner(uri + ".gz") is None


def test_endpoints_pipelines_and_schedules_share_without_their_secrets(people) -> None:
    from datetime import UTC, datetime

    alice, bob = people["alice"].store, people["bob"].store
    alice.ensure_endpoint("ep")
    alice.set_endpoint_token("ep", "f" * 64)
    alice.add_endpoint_revision("ep", routes=[{"model": "churn", "version": 1, "weight": 100}],
                                action="deploy", actor="alice")
    pid = alice.pipeline_id("train", "work/train.ipynb")
    run_id = alice.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="x",
                              parameters={"lr": 0.1}, options={}, steps=["s"])
    alice.log_params(run_id, None, {"lr": 0.1})
    alice.log_metrics(run_id, None, [{"name": "acc", "value": 0.75}])
    schedule = alice.add_schedule(name="nightly", target="notebook",
                                  notebook_path="work/train.ipynb", cron="0 3 * * *",
                                  timezone="UTC",
                                  notify={"webhook": "https://hooks.example.org/SECRET"})
    alice.add_manual_firing(schedule.id, datetime.now(UTC), requested_by="alice", parameters={})
    alice.create_project("team")
    alice.add_project_member("team", "bob")
    for kind, name in (("endpoint", "ep"), ("pipeline", "train"), ("schedule", "nightly")):
        alice.share(kind, name, "team")

    endpoint = bob.shared_endpoint("alice", "ep")
    assert endpoint["revisions"][0]["routes"][0]["model"] == "churn"
    assert "f" * 64 not in repr(endpoint) and "token" not in repr(endpoint)
    pipeline = bob.shared_pipeline("alice", "train")
    (run,) = pipeline["runs"]
    assert (run["id"], run["params"], run["metrics"]) == (run_id, {"lr": 0.1}, {"acc": 0.75})
    assert pipeline["path"] == "work/train.ipynb"
    shown = bob.shared_schedule("alice", schedule.id)
    assert shown["cron"] == "0 3 * * *" and shown["firings"][0]["kind"] == "manual"
    assert bob.shared_schedule("alice", "nightly")["id"] == schedule.id  # by name too
    assert "SECRET" not in repr(shown)
    # runs of another, unshared pipeline of alice's do not come along
    alice.create_run(pipeline_id=alice.pipeline_id("private", "p.ipynb"), pipeline_version="v",
                     notebook_path="p", parameters={}, options={}, steps=["s"])
    assert len(bob.shared_pipeline("alice", "train")["runs"]) == 1
    with pytest.raises(NotFoundError):
        bob.shared_pipeline("alice", "private")
    assert {r["kind"] for r in alice.project("team")["shared"]} == {
        "endpoint", "pipeline", "schedule"}
    # deleting the project makes everything private again
    assert alice.delete_project("team") == 3
    assert bob.shared_with_me() == [] and alice.shares() == []


def test_bad_names_and_duplicates_get_clear_errors(people) -> None:
    alice, bob = people["alice"].store, people["bob"].store
    alice.create_project("p1")
    with pytest.raises(ConflictError, match="already"):
        alice.create_project("p1")
    assert bob.create_project("p1")["key"] == "bob/p1"  # names are per owner: nothing leaks
    with pytest.raises(InvalidSpecError, match="control characters"):
        alice.create_project("p2", description="\x1b]0;title\x07")
    for bad in ("", "Upper", "a/b", "x" * 65, "-lead"):
        with pytest.raises(InvalidSpecError, match="project name"):
            alice.create_project(bad)
    with pytest.raises(InvalidSpecError, match="cannot share"):
        alice.share("notebook", "x", "p1")
    with pytest.raises(NotFoundError, match="no model"):
        alice.share("model", "missing", "p1")
    with pytest.raises(NotFoundError, match="no project"):
        alice.share("model", "missing", "nope")
    for bad in ("a/b", "\x9bx", " x"):
        with pytest.raises(InvalidSpecError, match="user name"):
            alice.add_project_member("p1", bad)
    alice.add_project_member("p1", "bob")
    alice.add_project_member("p1", "bob")  # twice: no change
    assert alice.project("p1")["members"] == ["bob"]
    with pytest.raises(NotFoundError, match="not a member"):
        alice.remove_project_member("p1", "eve")


def test_a_project_and_its_first_members_are_created_together_or_not_at_all(people) -> None:
    alice = people["alice"].store
    with pytest.raises(InvalidSpecError, match="user name"):
        alice.create_project("team", members=["bob", "a/b"])
    with pytest.raises(NotFoundError):
        alice.project("team")  # the bad name left no project behind, not even a memberless one
    with pytest.raises(InvalidSpecError, match="a list of user names"):
        alice.create_project("team", members="bob")  # not the users "b" and "o"
    with pytest.raises(InvalidSpecError, match="at most"):
        alice.create_project("team", members=[f"u{i}" for i in range(501)])
    made = alice.create_project("team", members=["carol", "bob", "carol"])
    assert made["members"] == ["bob", "carol"] and made["role"] == "owner"
    assert [p["key"] for p in people["bob"].store.projects()] == ["alice/team"]
