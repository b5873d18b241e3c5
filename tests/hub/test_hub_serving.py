"""The shared serve service through a real JupyterHub (``-m hub``): users deploy as themselves.

``jupyter mlplat serve --shared`` runs as the hub service ``mlplat-serve``
(``examples/jupyterhub_config.py``). alice and bob each run a pipeline through the store service
(their models land in the shared store), then deploy: alice through the serve service's admin
API with her hub token, bob by writing the revision through the store service as his server
does. Each is served under their own path; neither can act on the other's endpoints.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import torch

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.serving.deploy import DeployService

from .pipelines import run_cli, write_pipeline

pytestmark = pytest.mark.hub

FORCE = {"force": True, "reason": "hub test: no validation policy"}


@pytest.fixture(scope="module")
def trained(hub, tmp_path_factory):
    """alice and bob each ran the pipeline once: both have a model ``tiny``; alice also a
    cloudpickle model ``pickled``."""
    tmp = tmp_path_factory.mktemp("serving")
    for user in ("alice", "bob"):
        notebook = tmp / f"{user}.ipynb"
        write_pipeline(notebook, pickled=user == "alice")
        run = json.loads(run_cli(hub, user, tmp, "run", notebook, "--json").stdout)
        assert run["status"] == "succeeded", run
    return tmp


def call(hub, owner: str, method: str, path: str, token: str | None = None,
         **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(method, f"{hub.serve_url}/users/{owner}/{path}", headers=headers,
                            timeout=60, **kwargs)


def predict(hub, owner: str, endpoint: str, token: str) -> requests.Response:
    return requests.post(f"{hub.serve_url}/users/{owner}/v1/models/{endpoint}:predict",
                         json={"instances": [[0.0], [3.0]]}, timeout=60,
                         headers={"Authorization": f"Bearer {token}"})


def wait_served(hub, owner: str, endpoint: str, token: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        answer = predict(hub, owner, endpoint, token)
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code in (404, 503), answer.text
        assert time.monotonic() < deadline, (answer.status_code, answer.text, hub.log_tail())
        time.sleep(0.3)


def test_each_user_deploys_as_themselves_and_cannot_act_for_another(hub, trained):
    alice, bob = hub.user("alice"), hub.user("bob")
    # alice deploys through the serve service's admin API, with her own hub token
    deployed = call(hub, "alice", "POST", "admin/endpoints", alice,
                    json={"model": "tiny", **FORCE})
    assert deployed.status_code == 201, deployed.text
    alice_endpoint_token = deployed.json()["token"]
    assert wait_served(hub, "alice", "tiny", alice_endpoint_token) == {"predictions": [0, 1]}
    index = call(hub, "alice", "POST", "v2/repository/index", alice)
    assert {e["name"]: e["state"] for e in index.json()}["tiny"] == "READY"

    # bob deploys his own "tiny" the way his server does: the revision through the store service
    config = MLPlat(owner="bob", serving_url=f"{hub.serve_url}/users/bob")
    bobs = DeployService(config, store=hub.store("bob"), artifacts=hub.artifacts("bob", trained))
    bob_endpoint_token = bobs.deploy("tiny", **FORCE).token
    assert wait_served(hub, "bob", "tiny", bob_endpoint_token) == {"predictions": [0, 1]}
    # one endpoint name, two users: each token opens its own endpoint only, and another's
    # endpoint reads as one that does not exist
    missing = predict(hub, "alice", "nosuch", bob_endpoint_token)
    for owner, token in (("bob", alice_endpoint_token), ("alice", bob_endpoint_token)):
        refused = predict(hub, owner, "tiny", token)
        assert (refused.status_code, refused.text) == (
            404, missing.text.replace("nosuch", "tiny")), refused.text

    # every admin route of alice's path refuses bob's token with 404
    traffic = {"traffic": {"tiny@1": 100}, **FORCE}
    for method, path, body in [
        ("GET", "admin/endpoints", None),
        ("POST", "admin/endpoints", {"model": "tiny", **FORCE}),
        ("GET", "admin/endpoints/tiny", None),
        ("DELETE", "admin/endpoints/tiny", None),
        ("PUT", "admin/endpoints/tiny/traffic", traffic),
        ("POST", "admin/endpoints/tiny/rollback", None),
        ("POST", "admin/endpoints/tiny/token", None),
        ("POST", "v2/repository/index", None),
        ("POST", "v2/repository/models/tiny/load", None),
        ("POST", "v2/repository/models/tiny/unload", None),
    ]:
        answer = call(hub, "alice", method, path, bob, json=body)
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
        # the answer any path gets: nothing about alice's endpoints
        assert answer.json() == {"error": f"no route {method} /{path}"}, answer.text
        # no token: 401; alice's token without the deploy scope: 403
        assert call(hub, "alice", method, path, json=body).status_code == 401
        limited = hub.token("alice", ["access:services!service=mlplat-serve"])
        assert call(hub, "alice", method, path, limited, json=body).status_code == 403
    # a path of nobody who deployed anything answers like one whose endpoints are gone
    assert call(hub, "carol", "POST", "v2/repository/index", alice).status_code == 404
    assert predict(hub, "carol", "tiny", alice_endpoint_token).status_code == 404

    # alice's endpoint is untouched; her own traffic change goes through
    assert predict(hub, "alice", "tiny", alice_endpoint_token).json() == {"predictions": [0, 1]}
    changed = call(hub, "alice", "PUT", "admin/endpoints/tiny/traffic", alice, json=traffic)
    assert changed.status_code == 200, changed.text
    revisions = hub.store("alice").endpoint_revisions("tiny")
    assert [(r.action, r.actor) for r in revisions] == [("deploy", "alice"), ("traffic", "alice")]


def test_bob_learns_nothing_about_alices_endpoints(hub, trained):
    alice, bob = hub.user("alice"), hub.user("bob")
    deployed = call(hub, "alice", "POST", "admin/endpoints", alice,
                    json={"model": "tiny", "endpoint": "secret-ep", **FORCE})
    assert deployed.status_code == 201, deployed.text
    endpoint_token = deployed.json()["token"]
    wait_served(hub, "alice", "secret-ep", endpoint_token)
    rows = {"instances": [[0.0], [3.0]]}
    routes = [("POST", "v1/models/{m}:predict", rows), ("POST", "v2/models/{m}/infer",
                                                         {"inputs": []}),
              ("POST", "endpoints/{m}/invocations", rows), ("GET", "v2/models/{m}", None),
              ("GET", "v2/models/{m}/ready", None), ("GET", "v2/models/{m}/versions/1", None),
              ("GET", "v2/models/{m}/versions/1/ready", None)]
    strangers = {"bob's hub token": bob, "a made-up token": "0" * 40,
                 "bob's endpoint token": None}
    bobs = call(hub, "bob", "POST", "admin/endpoints", bob,
                json={"model": "tiny", "endpoint": "bob-ep", **FORCE})
    strangers["bob's endpoint token"] = bobs.json()["token"]
    for who, token in strangers.items():
        for method, route, body in routes:
            theirs = call(hub, "alice", method, route.format(m="secret-ep"), token, json=body)
            missing = call(hub, "alice", method, route.format(m="nosuch"), token, json=body)
            assert theirs.status_code == 404, (who, route, theirs.status_code, theirs.text)
            assert theirs.text == missing.text.replace("nosuch", "secret-ep"), (who, route)
        for path in ("metrics", "v2/health/ready"):  # these tell about every endpoint
            theirs = call(hub, "alice", "GET", path, token)
            assert theirs.status_code in (401, 404) and "secret-ep" not in theirs.text
            assert theirs.status_code == call(hub, "carol", "GET", path, token).status_code
    # alice herself reads all of it, with her hub token or the endpoint's token
    assert "secret-ep" in call(hub, "alice", "GET", "metrics", alice).text
    assert call(hub, "alice", "GET", "v2/health/ready", alice).status_code == 200
    assert call(hub, "alice", "GET", "v2/models/secret-ep", alice).json()["name"] == "secret-ep"
    assert call(hub, "alice", "GET", "v2/models/secret-ep/ready", endpoint_token).status_code \
        == 200


def test_the_shared_service_never_loads_a_pickled_model(hub, trained):
    alice = hub.user("alice")
    deployed = call(hub, "alice", "POST", "admin/endpoints", alice,
                    json={"model": "pickled", **FORCE})
    assert deployed.status_code == 201, deployed.text  # the revision is written ...
    token = deployed.json()["token"]
    deadline = time.monotonic() + 60
    while True:  # ... but the shared process refuses to load it
        state = {e["name"]: e for e in call(hub, "alice", "POST", "v2/repository/index",
                                            alice).json()}.get("pickled", {})
        if state.get("state") == "UNAVAILABLE":
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert "trusted-only" in state["reason"]
    assert predict(hub, "alice", "pickled", token).status_code == 503


class FileReader(torch.nn.Module):
    """A model whose forward returns the bytes of a file of the process that runs it."""

    def __init__(self, path: str, size: int) -> None:
        super().__init__()
        self.path = path
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=False, size=self.size, dtype=torch.uint8)
        return data.to(torch.float32).unsqueeze(0).repeat(x.shape[0], 1)


def test_the_shared_service_never_runs_bobs_torchscript(hub, trained):
    from dataclasses import asdict

    import numpy as np

    from jupyter_mlplat.tracking.flavors import save_model
    from jupyter_mlplat.tracking.registry import ModelRegistry

    # the hub's cookie secret: the shared serve process can read it, bob must not
    secret = hub.state / "jupyterhub_cookie_secret"
    size = secret.stat().st_size
    store, files = hub.store("bob"), hub.artifacts("bob", trained)
    sample = np.zeros((2, 3), dtype=np.float32)
    saved = save_model(FileReader(str(secret), size), name="reader", sample_input=sample,
                       store=files)
    ModelRegistry(store, files).register("reader", asdict(saved), run_id=None)
    bob = hub.user("bob")
    deployed = call(hub, "bob", "POST", "admin/endpoints", bob, json={"model": "reader", **FORCE})
    assert deployed.status_code == 201, deployed.text
    deadline = time.monotonic() + 60
    while True:
        state = {e["name"]: e for e in call(hub, "bob", "POST", "v2/repository/index",
                                            bob).json()}.get("reader", {})
        if state.get("state") in ("UNAVAILABLE", "READY"):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state["state"] == "UNAVAILABLE" and "trusted-only" in state["reason"], state
    answer = requests.post(f"{hub.serve_url}/users/bob/v1/models/reader:predict",
                           json={"instances": sample.tolist()}, timeout=60,
                           headers={"Authorization": f"Bearer {deployed.json()['token']}"})
    assert answer.status_code == 503
    leaked = bytes(secret.read_bytes()[:8])
    assert str(list(leaked)[:4])[1:-1] not in answer.text
