"""Sharing through a real JupyterHub (``-m hub``): carol shares a model with a project dave is
in; dave finds it and loads it in his own process through the store service, in a safe format
only; erin, in no project of carol's, gets exactly what a model that never existed gets; a
project that follows a hub group takes in that group's members.

(Users of their own, so the alice-and-bob isolation walks of the other modules still find
nothing shared with bob.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import requests

from .pipelines import run_cli, write_pipeline

pytestmark = pytest.mark.hub

LOAD = ("import sys, numpy as np, jupyter_mlplat as mlp\n"
        "m = mlp.load_model(sys.argv[1])\n"
        "print([int(v) for v in m.predict(np.array([[0.0], [1.0], [2.0], [3.0]]))])")


def _python(hub, user, tmp_path, code, *args):
    data = tmp_path / f"{user}-data"
    data.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path,
                          env=hub.user_env(user, data), capture_output=True, text=True,
                          timeout=180)


def _object(hub, user, uri):
    return requests.get(f"{hub.service_url}/api/artifacts/object", params={"uri": uri},
                        headers={"Authorization": f"token {hub.user(user)}"}, timeout=30)


def test_a_shared_model_loads_for_members_in_safe_formats_only(hub, tmp_path):
    project = f"risk-{uuid.uuid4().hex[:6]}"
    notebook = tmp_path / "pipeline.ipynb"
    write_pipeline(notebook, pickled=True)
    run = json.loads(run_cli(hub, "carol", tmp_path, "run", str(notebook), "--json").stdout)
    assert run["status"] == "succeeded", run

    # private by default
    refused = run_cli(hub, "dave", tmp_path, "shared", "carol/tiny", expect=2).stderr
    assert "shared with you" in refused

    run_cli(hub, "carol", tmp_path, "project", "create", project)
    run_cli(hub, "carol", tmp_path, "project", "add", project, "dave")
    run_cli(hub, "carol", tmp_path, "share", "model", "tiny", "--project", project)
    run_cli(hub, "carol", tmp_path, "share", "model", "pickled", "--project", project)

    seen = json.loads(run_cli(hub, "dave", tmp_path, "shared", "--json").stdout)["shared"]
    assert {(s["owner"], s["name"]) for s in seen} == {("carol", "tiny"), ("carol", "pickled")}
    tiny = json.loads(run_cli(hub, "dave", tmp_path, "shared", "carol/tiny", "--json").stdout)
    assert (tiny["flavor"], tiny["format"], tiny["loadable"]) == ("sklearn", "skops", True)

    # dave's own process loads carol's skops model through the service and predicts with it
    loaded = _python(hub, "dave", tmp_path, LOAD, "carol/tiny")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "[0, 0, 1, 1]"
    # a pickled model of carol's is never deserialised in dave's process ...
    pickled = _python(hub, "dave", tmp_path, LOAD, "carol/pickled")
    assert pickled.returncode != 0 and "UnsafeArtifactError" in pickled.stderr, pickled.stderr
    # ... and the service does not even hand its bytes out: only carol gets them
    carol = hub.store("carol")
    uris = {}
    for name in ("tiny", "pickled"):
        version = carol.model_versions(name)[-1]
        uris[name] = carol.artifact_ref(version.artifact_id)["uri"]
    missing = uris["pickled"][:-20] + "0" * 20
    nothing = _object(hub, "dave", missing)
    assert nothing.status_code == 404
    refused = _object(hub, "dave", uris["pickled"])
    assert refused.status_code == 404
    assert refused.json()["error"].replace(uris["pickled"], "U") == \
        nothing.json()["error"].replace(missing, "U")
    assert _object(hub, "carol", uris["pickled"]).status_code == 200
    assert _object(hub, "dave", uris["tiny"]).status_code == 200
    # erin is in no project of carol's: the same answers as for things that never existed
    assert _object(hub, "erin", uris["tiny"]).status_code == 404
    erin = run_cli(hub, "erin", tmp_path, "shared", "carol/tiny", expect=2).stderr
    never = run_cli(hub, "erin", tmp_path, "shared", "carol/never", expect=2).stderr
    assert erin.replace("tiny", "X") == never.replace("never", "X")
    assert json.loads(run_cli(hub, "erin", tmp_path, "shared", "--json").stdout)["shared"] == []

    # members read, never change
    run_cli(hub, "dave", tmp_path, "alias", "set", "tiny", "production", "1", expect=2)
    assert "only the owner" in run_cli(hub, "dave", tmp_path, "project", "add",
                                       f"carol/{project}", "erin", expect=2).stderr
    # removing dave takes it away at once (the service asks the store on every call)
    run_cli(hub, "carol", tmp_path, "project", "remove", project, "dave")
    run_cli(hub, "dave", tmp_path, "shared", "carol/tiny", expect=2)
    assert _object(hub, "dave", uris["tiny"]).status_code == 404


def test_a_project_can_follow_a_hub_group(hub, tmp_path):
    group, project = f"ml-{uuid.uuid4().hex[:6]}", f"ml-{uuid.uuid4().hex[:6]}"
    notebook = tmp_path / "pipeline.ipynb"
    write_pipeline(notebook)
    run_cli(hub, "carol", tmp_path, "run", str(notebook))
    hub.user("frank")
    hub.api("POST", f"groups/{group}", json={"users": ["frank", "carol"]})
    # only a member of a hub group may make a project follow it (erin is not in it)
    refused = run_cli(hub, "erin", tmp_path, "project", "create", project, "--hub-group", group,
                      expect=2).stderr
    assert "only a hub group you are in" in refused
    # carol's groups come from the hub with her token: a fresh one, nothing cached
    fresh = {"JUPYTERHUB_API_TOKEN": hub.token("carol", ["access:services!service=mlplat"])}
    run_cli(hub, "carol", tmp_path, "project", "create", project, "--hub-group", group,
            env=fresh)
    run_cli(hub, "carol", tmp_path, "share", "model", "tiny", "--project", project)
    # frank's groups come from the hub with his token: a fresh token, nothing cached
    frank = hub.token("frank", ["access:services!service=mlplat"])
    listing = requests.post(f"{hub.service_url}/api/store/shared_with_me",
                            headers={"Authorization": f"token {frank}"}, json={}, timeout=30)
    assert listing.status_code == 200, listing.text
    assert [(s["owner"], s["name"], s["project"]) for s in listing.json()["result"]] == [
        ("carol", "tiny", f"carol/{project}")]
    projects = requests.post(f"{hub.service_url}/api/store/projects", json={}, timeout=30,
                             headers={"Authorization": f"token {frank}"}).json()["result"]
    assert [(p["key"], p["role"]) for p in projects] == [(f"carol/{project}", "hub group")]
    # someone outside the group sees nothing of it
    erin = requests.post(f"{hub.service_url}/api/store/shared_with_me", json={}, timeout=30,
                         headers={"Authorization": f"token {hub.user('erin')}"})
    assert erin.json()["result"] == []
