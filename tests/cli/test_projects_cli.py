"""``jupyter mlplat project | share | unshare | shared`` as two users on one store: alice runs a
real pipeline that registers a model, shares it with a project bob is in, and bob finds it and
loads it in his own process (``mlp.load_model("alice/cli_model@production")``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Cli, explain
from .test_models_cli import model_notebook  # noqa: F401 - the fixture


@pytest.mark.timeout(300)
def test_alice_shares_a_model_with_bobs_project(cli: Cli, model_notebook: Path  # noqa: F811
                                               ) -> None:
    alice = Cli(cwd=cli.cwd, env={"JUPYTERHUB_USER": "alice"})
    bob = Cli(cwd=cli.cwd, env={"JUPYTERHUB_USER": "bob"})
    run = alice.json("run", model_notebook)
    assert run["status"] == "succeeded", run

    # private by default
    assert bob.json("shared")["shared"] == []
    refused = bob("shared", "alice/cli_model@production", expect=2).stderr
    assert "shared with you" in refused

    created = alice.json("project", "create", "fraud", "--description", "the fraud team")
    assert (created["owner"], created["role"], created["members"]) == ("alice", "owner", [])
    assert alice.json("project", "add", "fraud", "bob", "carol")["members"] == ["bob", "carol"]
    shared = alice.json("share", "model", "cli_model", "--project", "fraud")
    assert (shared["kind"], shared["name"], shared["project"]) == ("model", "cli_model",
                                                                   "alice/fraud")
    assert "shared pipeline models with project alice/fraud" in alice(
        "share", "pipeline", "models", "--project", "fraud").stdout

    mine = alice.json("shared", "--mine")["shared"]
    assert {(s["kind"], s["name"]) for s in mine} == {("model", "cli_model"),
                                                      ("pipeline", "models")}
    seen = bob.json("shared")["shared"]
    assert {(s["kind"], s["owner"], s["name"]) for s in seen} == {
        ("model", "alice", "cli_model"), ("pipeline", "alice", "models")}
    assert bob.json("shared", "--kind", "model")["shared"][0]["name"] == "cli_model"
    table = bob("shared").stdout
    assert "alice" in table and "cli_model" in table and "fraud" in table
    model = bob.json("shared", "alice/cli_model@production")
    assert (model["owner"], model["version"], model["flavor"], model["loadable"]) == (
        "alice", 1, "sklearn", True)
    assert "mlp.load_model('alice/cli_model@1')" in bob("shared", "alice/cli_model").stdout
    assert [p["role"] for p in bob.json("project", "list")["projects"]] == ["member"]
    pipeline = bob.json("shared", "alice/models", "--kind", "pipeline")
    assert pipeline["runs"][0]["id"] == run["id"] and "acc" in pipeline["runs"][0]["metrics"]
    assert run["id"] in bob("shared", "alice/models", "--kind", "pipeline").stdout
    bob("shared", "alice/models", "--kind", "endpoint", expect=2)
    assert "shared: model alice/cli_model" in bob("project", "show", "alice/fraud").stdout
    assert "no project 'fraud'" in bob("project", "show", "fraud", expect=2).stderr

    # bob's own process loads alice's model (skops, safe) and predicts what alice's does
    code = ("import numpy as np, jupyter_mlplat as mlp\n"
            "X = np.random.default_rng(0).normal(size=(6, 2))\n"
            "m = mlp.load_model('alice/cli_model@production')\n"
            "print(list(m.predict(X)))")
    outputs = {}
    for who, ref in (("bob", "alice/cli_model@production"), ("alice", "cli_model@production")):
        proc = subprocess.run([sys.executable, "-c", code.replace(
            "'alice/cli_model@production'", repr(ref))], cwd=cli.cwd, capture_output=True,
            text=True, timeout=120, env={**bob.environ(), "JUPYTERHUB_USER": who})
        assert proc.returncode == 0, explain(proc)
        outputs[who] = proc.stdout
    assert outputs["bob"] == outputs["alice"]

    # members read, never change; only the owner changes members
    assert "only the owner" in bob("project", "add", "alice/fraud", "mallory",
                                   expect=2).stderr
    assert "no model" in bob("share", "model", "cli_model", "--project", "alice/fraud",
                             expect=2).stderr
    assert bob.json("models")["models"] == []

    # unsharing takes it away at once; deleting the project makes the rest private
    alice("unshare", "model", "cli_model")
    assert "shared with you" in bob("shared", "alice/cli_model", expect=2).stderr
    assert alice.json("project", "delete", "fraud") == {"deleted": "fraud", "unshared": 1}
    # bob's own project of the same name is his, and tells him nothing about alice's
    assert bob.json("project", "create", "fraud")["key"] == "bob/fraud"
    assert bob.json("shared")["shared"] == []
    assert bob.json("project", "create", "crew", "carol", "alice")["members"] == ["alice", "carol"]


def test_project_commands_refuse_bad_input(cli: Cli) -> None:
    assert "needs the project's NAME" in cli.usage_error("project", "create")
    assert "needs at least one USER" in cli.usage_error("project", "add", "p")
    assert "takes no users" in cli.usage_error("project", "show", "p", "bob")
    assert "project name 'Bad Name'" in cli.usage_error("project", "create", "Bad Name")
    assert "invalid choice" in cli.usage_error("share", "notebook", "x", "--project", "p")
    assert "--project" in cli.usage_error("share", "model", "x")
    assert "no project 'nope'" in cli.usage_error("share", "model", "x", "--project", "nope")
    assert "OWNER/NAME" in cli.usage_error("shared", "churn")
