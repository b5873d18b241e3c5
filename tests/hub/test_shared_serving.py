"""The shared serve process without a hub: what it loads, and what it tells a caller without
credentials (the parts that need hub tokens run through a real hub in ``test_hub_serving``).

The process is real (``SharedServing`` behind a tornado server on a free loopback port, a SQLite
store, the per-owner artifact store); bob's model is written to the store as his server would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jupyter_mlplat.errors import UnsafeArtifactError
from jupyter_mlplat.hub.artifacts import OwnerArtifacts
from jupyter_mlplat.hub.auth import HubIdentity
from jupyter_mlplat.hub.serving import SharedServing
from jupyter_mlplat.serving.service import ServeSettings
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.flavors import get_flavor, load_model_artifact, save_model
from jupyter_mlplat.tracking.registry import ModelRegistry

SECRET = b"alice's cookie secret: 0123456789"
TOKEN = "bobs-endpoint-token"


class FileReader(torch.nn.Module):
    """A model whose forward returns the bytes of a file of the process that runs it."""

    def __init__(self, path: str, size: int) -> None:
        super().__init__()
        self.path = path
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=False, size=self.size, dtype=torch.uint8)
        return data.to(torch.float32).unsqueeze(0).repeat(x.shape[0], 1)


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "jupyterhub_cookie_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SECRET)
    return path


def _hub_identity() -> HubIdentity:
    from jupyterhub.services.auth import HubAuth

    # never asked here: no request below carries a hub token
    return HubIdentity(HubAuth(api_token="unused", api_url="http://127.0.0.1:9/hub/api"),
                       service_name="mlplat-serve")


def test_torchscript_is_trusted_only(tmp_path: Path) -> None:
    from jupyter_mlplat.store.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "artifacts")
    secret = _secret_file(tmp_path)
    saved = save_model(FileReader(str(secret), len(SECRET)), name="reader",
                       sample_input=np.zeros((1, 2), dtype=np.float32), store=store)
    assert saved.artifact["format"] == "torchscript" and saved.artifact["trusted_only"] is True
    # the attack is real: loaded, the module reads the file of whoever runs it ...
    loaded = load_model_artifact(saved.artifact, "torch", store=store, trusted=True)
    assert bytes(loaded(torch.zeros(1, 2)).to(torch.uint8)[0].tolist()) == SECRET
    # ... so a loader that does not trust the producer refuses it, also for an artifact
    # recorded before TorchScript became trusted-only
    for artifact in (saved.artifact, {**saved.artifact, "trusted_only": False,
                                      "meta": {**saved.artifact["meta"], "trusted_only": False}}):
        with pytest.raises(UnsafeArtifactError, match="trusted-only"):
            load_model_artifact(artifact, "torch", store=store, trusted=False)
    # the flavour itself refuses, whatever the record says, before torch opens the file
    path = store.local_path(saved.artifact["uri"])
    with pytest.raises(UnsafeArtifactError, match="trusted-only.*torch.from_file"):
        get_flavor("torch").load(path, {"format": "torchscript"}, trusted=False)


class Shared:
    """A shared serve process on a free port (``async with``), over a SQLite store."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'shared.db'}"
        self.artifacts = OwnerArtifacts(str(tmp_path / "artifacts"),
                                        cache_dir=str(tmp_path / "cache"))

    async def __aenter__(self) -> Shared:
        self.store = Store(self.url, "mlplat-service", sweep=False)
        self.router = SharedServing(self.store, self.artifacts, ServeSettings(poll_interval=0.2),
                                    _hub_identity())
        sockets = bind_sockets(0, "127.0.0.1")
        self.server = HTTPServer(self.router)
        self.server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.client = AsyncHTTPClient(force_instance=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.client.close()
        self.server.stop()
        await self.server.close_all_connections()
        await self.router.close()
        self.store.close()

    async def fetch(self, method: str, path: str, token: str | None = None,
                    body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if body is None else json.dumps(body)
        if method == "POST" and data is None:
            data = ""
        request = HTTPRequest(f"http://127.0.0.1:{self.port}/users/{path}", method=method,
                              headers=headers, body=data, request_timeout=30)
        return await self.client.fetch(request, raise_error=False)

    async def state(self, owner: str, endpoint: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            served = self.router.owners.get(owner)
            found = {e["name"]: e for e in served.service.index()} if served else {}
            if found.get(endpoint, {}).get("state") in ("READY", "UNAVAILABLE"):
                return found[endpoint]
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.1)

    async def deploy(self, owner: str, name: str, model: Any, sample: Any) -> None:
        await asyncio.to_thread(_deploy, self.url, self.artifacts, owner, name, model, sample)
        await self.router.refresh()


def _deploy(url: str, artifacts: OwnerArtifacts, owner: str, name: str, model: Any,
            sample: Any) -> None:
    """What the owner's server does: register a version and write a revision (token set)."""
    store = Store(url, owner, sweep=False)
    try:
        registry = ModelRegistry(store, artifacts.store(owner))
        saved = save_model(model, name=name, sample_input=sample, store=registry.artifacts)
        mv = registry.register(name, asdict(saved), run_id=None)
        store.ensure_endpoint(name)
        store.set_endpoint_token(name, hashlib.sha256(TOKEN.encode()).hexdigest())
        store.add_endpoint_revision(name, routes=[{"model": name, "version": mv.version,
                                                   "weight": 100}],
                                    public=False, action="deploy", actor=owner)
    finally:
        store.close()


async def test_the_shared_process_never_runs_a_torch_model(tmp_path: Path) -> None:
    secret = _secret_file(tmp_path)  # a file the serve process can read, bob cannot
    sample = np.zeros((2, 3), dtype=np.float32)
    async with Shared(tmp_path) as served:
        await served.deploy("bob", "reader", FileReader(str(secret), len(SECRET)), sample)
        await _refused(served, sample)


async def _refused(served: Shared, sample: Any) -> None:
    state = await served.state("bob", "reader")
    assert state["state"] == "UNAVAILABLE" and "trusted-only" in state["reason"], state
    answer = await served.fetch("POST", "bob/v1/models/reader:predict", TOKEN,
                                {"instances": sample.tolist()})
    assert answer.code == 503, answer.body
    assert b"84, 79" not in answer.body and str(list(SECRET[:4])) not in answer.body.decode()


async def test_without_credentials_nothing_says_whether_an_endpoint_exists(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    async with Shared(tmp_path) as served:
        await served.deploy("bob", "churn", LinearRegression().fit(X, X.sum(axis=1)), X[:2])
        assert (await served.state("bob", "churn"))["state"] == "READY"
        await _anonymous_walk(served, X)


async def _anonymous_walk(served: Shared, X: Any) -> None:
    rows = {"instances": X.tolist()}
    ok = await served.fetch("POST", "bob/v1/models/churn:predict", TOKEN, rows)
    assert ok.code == 200, ok.body

    def answer(r: Any) -> tuple[int, str, str | None]:
        return r.code, r.body.decode(), r.headers.get("WWW-Authenticate")

    routes = [("POST", "v1/models/{m}:predict", rows), ("POST", "v2/models/{m}/infer",
                                                         {"inputs": []}),
              ("GET", "v2/models/{m}", None), ("GET", "v2/models/{m}/ready", None),
              ("GET", "v2/models/{m}/versions/1", None),
              ("GET", "v2/models/{m}/versions/1/ready", None),
              ("POST", "endpoints/{m}/invocations", rows)]
    for token in (None,):  # wrong tokens (a hub is asked about them): test_hub_serving
        for method, route, body in routes:
            # bob's endpoint, without its token, reads exactly like a name nobody deployed,
            # on bob's path and on the path of a user who never deployed anything
            theirs = answer(await served.fetch(method, "bob/" + route.format(m="churn"),
                                               token, body))
            for path in ("bob/" + route.format(m="nosuch"),
                         "carol/" + route.format(m="churn")):
                missing = answer(await served.fetch(method, path, token, body))
                assert theirs[0] == 404 and theirs == (missing[0],
                                                       missing[1].replace("nosuch", "churn"),
                                                       missing[2]), (route, token, theirs,
                                                                     missing)
        # plain /invocations: the same answer whether bob has one endpoint or none
        for path in ("bob/invocations", "carol/invocations"):
            got = answer(await served.fetch("POST", path, token, rows))
            assert got[0] == 404 and "no default endpoint" in got[1], got
    # what tells about every endpoint of a path needs the owner's hub token, on every path
    for path in ("bob/metrics", "bob/v2/health/ready", "carol/metrics",
                 "carol/v2/health/ready"):
        got = await served.fetch("GET", path)
        assert got.code == 401 and b"churn" not in got.body, (path, got.code, got.body)
    # what says nothing about anyone stays open
    assert (await served.fetch("GET", "bob/v2/health/live")).code == 200
    assert (await served.fetch("GET", "carol/v2/health/live")).code == 200
