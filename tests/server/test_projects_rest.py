"""Projects and sharing through the REST API: the server's owner (the JupyterLab user) creates a
project, adds members, shares and unshares; a model another user shared shows up under
``shared`` and ``shared/models/{owner}/{name}``; bad input is a 400, unknown names 404."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.store import open_artifacts
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.flavors import save_model
from jupyter_mlplat.tracking.registry import ModelRegistry

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def carols_model() -> str:
    """carol's model "scorer" (skops), shared with her project "risk" where the server's owner
    is a member; returns the server's owner name."""
    config = MLPlat()
    store = Store(config.store_url, "carol")
    try:
        registry = ModelRegistry(store, open_artifacts(config.artifacts_url))
        X = np.random.default_rng(0).normal(size=(50, 2))
        model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
        saved = save_model(model, name="scorer", sample_input=X[:3], store=registry.artifacts)
        registry.register("scorer", asdict(saved), run_id=None)
        registry.set_alias("scorer", "production", 1)
        store.create_project("risk")
        store.add_project_member("risk", config.owner)
        store.share("model", "scorer", "risk")
        store.ensure_endpoint("scoring")
        store.set_endpoint_token("scoring", "e" * 64)
        store.add_endpoint_revision("scoring", action="deploy", actor="carol",
                                    routes=[{"model": "scorer", "version": 1, "weight": 100}])
        store.share("endpoint", "scoring", "risk")
        pid = store.pipeline_id("train", "train.ipynb")
        run = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="x",
                               parameters={"C": 1.0}, options={}, steps=["s"])
        store.log_metrics(run, None, [{"name": "auc", "value": 0.5},
                                      {"name": "auc", "value": 0.8}])
        store.finish_run(run, "succeeded")
        store.share("pipeline", "train", "risk")
    finally:
        store.close()
    return config.owner


async def test_a_shared_model_and_the_owners_own_projects(api, carols_model: str,
                                                          tmp_path: Path) -> None:
    me = carols_model
    shared = await api.ok("GET", "shared")
    assert [(s["kind"], s["owner"], s["name"], s["project"]) for s in shared["shared"]] == [
        ("model", "carol", "scorer", "carol/risk"), ("endpoint", "carol", "scoring", "carol/risk"),
        ("pipeline", "carol", "train", "carol/risk")]
    assert [s["kind"] for s in (await api.ok("GET", "shared", params={"kind": "endpoint"})
                                )["shared"]] == ["endpoint"]
    endpoint = await api.ok("GET", "shared", "endpoints", "carol", "scoring")
    assert endpoint["revisions"][0]["routes"] == [{"model": "scorer", "version": 1,
                                                   "weight": 100}]
    assert "e" * 64 not in str(endpoint)
    pipeline = await api.ok("GET", "shared", "pipelines", "carol", "train")
    assert [(r["status"], r["metrics"]) for r in pipeline["runs"]] == [
        ("succeeded", {"auc": 0.8})]
    await api.error("GET", "shared", "schedules", "carol", "0000", expect=404)
    model = await api.ok("GET", "shared", "models", "carol", "scorer",
                         params={"version": "production"})
    assert (model["version"], model["flavor"], model["format"], model["loadable"]) == (
        1, "sklearn", "skops", True)
    projects = await api.ok("GET", "projects")
    assert [(p["key"], p["role"]) for p in projects["projects"]] == [("carol/risk", "member")]
    risk = await api.ok("GET", "projects", "carol", "risk")
    assert {s["name"] for s in risk["shared"]} == {"scorer", "scoring", "train"}

    created = await api.ok("POST", "projects", expect=201,
                           body={"name": "mine", "description": "my team"})
    assert (created["owner"], created["role"]) == (me, "owner")
    assert created["key"] == f"{me}/mine"
    added = await api.ok("PUT", "projects", me, "mine", "members", "dave")
    assert added["members"] == ["dave"]
    error = await api.error("PUT", "projects", "carol", "risk", "members", "dave", expect=409)
    assert "only the owner" in error["message"]
    assert (await api.ok("DELETE", "projects", me, "mine", "members", "dave"))["members"] == []
    assert (await api.ok("GET", "shared", params={"mine": "true"}))["shared"] == []
    await api.error("PUT", "shares", "model", "scorer", expect=404, body={"project": "mine"})
    await api.ok("DELETE", "projects", me, "mine")
    await api.error("GET", "projects", me, "mine", expect=404)
    with_members = await api.ok("POST", "projects", expect=201,
                                body={"name": "crew", "members": ["erin", "dave"]})
    assert with_members["members"] == ["dave", "erin"]
    await api.error("POST", "projects", expect=400, body={"name": "bad", "members": ["a/b"]})
    await api.error("GET", "projects", me, "bad", expect=404)  # refused whole: no project
    # leaving carol's project: nothing of hers is visible any more
    await api.ok("DELETE", "projects", "carol", "risk", "members", me)
    assert (await api.ok("GET", "shared"))["shared"] == []
    await api.error("GET", "shared", "models", "carol", "scorer", expect=404)


async def test_bad_input_and_unknown_names(api) -> None:
    await api.error("POST", "projects", expect=400, body={"name": "Not Valid"})
    await api.error("POST", "projects", expect=400, body={"name": "ok", "extra": 1})
    await api.error("PUT", "shares", "notebook", "x", expect=400, body={"project": "p"})
    await api.error("PUT", "shares", "model", "x", expect=400, body={})
    await api.error("GET", "shared", expect=400, params={"kind": "notebook"})
    await api.error("GET", "shared", "models", "carol", "nothing", expect=404)
    await api.error("GET", "projects", "carol", "nope", expect=404)
    await api.error("GET", "projects", "carol", "Bad Name", expect=400)
    await api.ok("POST", "projects", expect=201, body={"name": "taken"})
    await api.error("POST", "projects", expect=409, body={"name": "taken"})
    error = await api.error("POST", "projects", expect=400,
                            body={"name": "grp", "hub_group": "admins"})
    assert "only a hub group you are in" in error["message"]
