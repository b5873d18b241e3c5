"""Serving fixtures: a real store and registry, real registered models, a real HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.serving.app import make_app
from jupyter_mlplat.serving.server import build_service
from jupyter_mlplat.serving.service import ServeSettings, ServingService
from jupyter_mlplat.store.artifacts import ArtifactStore
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.flavors import save_model
from jupyter_mlplat.tracking.registry import ModelRegistry

ADMIN = "admin-secret-token"

#: Rows every test sends; the models below answer them differently per version.
ROWS = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]])


class Boom:
    """A pyfunc model that raises on any negative value (its sample input has none)."""

    def predict(self, X: Any) -> Any:
        arr = np.asarray(X, dtype=float)
        if (arr < 0).any():
            raise ValueError("boom: negative input")
        return arr.sum(axis=1)


class Sleepy:
    """A pyfunc model that sleeps ``delay`` seconds on input with a negative value."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def predict(self, X: Any) -> Any:
        arr = np.asarray(X, dtype=float)
        if (arr < 0).any():
            time.sleep(self.delay)
        return arr.sum(axis=1)


class Recorder:
    """A pyfunc model that sums rows and sleeps a little per call (so requests pile up)."""

    def predict(self, X: Any) -> Any:
        time.sleep(0.005)
        return np.asarray(X, dtype=float).sum(axis=1)


@dataclass
class World:
    """The owner's store and registry (from MLPlat(): the root conftest isolates them)."""

    config: MLPlat
    store: Store
    registry: ModelRegistry
    models: dict[tuple[str, int], Any] = field(default_factory=dict)

    def register(self, name: str, model: Any, sample: Any) -> int:
        saved = save_model(model, name=name, sample_input=sample, store=self.registry.artifacts)
        mv = self.registry.register(name, asdict(saved), run_id=None)
        self.models[(name, mv.version)] = model
        return mv.version

    def linear(self, name: str, coef: float) -> int:
        """A LinearRegression on 2 numbers (tensor signature): y = coef * a + b."""
        X = np.random.default_rng(0).normal(size=(50, 2))
        model = LinearRegression().fit(X, coef * X[:, 0] + X[:, 1])
        return self.register(name, model, X[:5])

    def frame(self, name: str, coef: float = 1.0) -> int:
        """A LinearRegression on a DataFrame of columns a (float) and n (int)."""
        rng = np.random.default_rng(1)
        X = pd.DataFrame({"a": rng.normal(size=50), "n": rng.integers(0, 10, 50)})
        model = LinearRegression().fit(X, coef * X.a + 2 * X.n)
        return self.register(name, model, X[:5])

    def toy(self, name: str, model: Any) -> int:
        return self.register(name, model, np.abs(ROWS))

    def expected(self, name: str, version: int, X: Any = ROWS) -> Any:
        """What version ``version`` of ``name`` predicts on ``X`` (the native model)."""
        return np.asarray(self.models[(name, version)].predict(X))

    def deploy(self, endpoint: str, routes: list[tuple[str, int, int]], *,
               shadow: tuple[str, int, float] | None = None, public: bool = True,
               token: str | None = None, sticky_header: str | None = None) -> int:
        self.store.ensure_endpoint(endpoint)
        row = self.store.add_endpoint_revision(
            endpoint, routes=[{"model": m, "version": v, "weight": w} for m, v, w in routes],
            shadow=None if shadow is None else
            {"model": shadow[0], "version": shadow[1], "share": shadow[2]},
            sticky_header=sticky_header, public=public, action="deploy", actor="me")
        if token is not None:
            self.store.set_endpoint_token(endpoint, hashlib.sha256(token.encode()).hexdigest())
        return row.revision


@pytest.fixture
def world(mlplat_isolated_env: Any) -> Any:
    config = MLPlat()
    store = Store(config.store_url, config.owner)
    w = World(config, store, ModelRegistry(store, ArtifactStore(config.artifacts_url)))
    yield w
    store.close()


@dataclass
class Response:
    code: int
    body: bytes
    headers: Any

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def version(self) -> str | None:
        return self.headers.get("X-Model-Version")


class Harness:
    """A ServingService behind a real tornado HTTPServer on 127.0.0.1, and a client."""

    def __init__(self, world: World, settings: ServeSettings) -> None:
        self.world = world
        self.settings = settings

    async def __aenter__(self) -> Harness:
        self.service: ServingService = build_service(self.world.registry, self.settings,
                                                     admin_token=ADMIN)
        self.app = make_app(self.service, self.settings)
        self.server = HTTPServer(self.app, max_body_size=4 * self.settings.max_body_size)
        sockets = bind_sockets(0, "127.0.0.1")
        self.server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.client = AsyncHTTPClient(force_instance=True, max_clients=64)
        return self

    async def apply(self, **kw: Any) -> dict[str, str]:
        states = await asyncio.to_thread(self.world.store.serving_states)
        return await self.service.apply(states, **kw)

    async def fetch(self, path: str, body: Any = None, *, method: str | None = None,
                    token: str | None = None, headers: dict[str, str] | None = None,
                    raw: bytes | None = None) -> Response:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        method = method or ("GET" if data is None else "POST")
        if method == "POST" and data is None:
            data = b""
        request = HTTPRequest(self.url + path, method=method, body=data, headers=h,
                              request_timeout=30)
        r = await self.client.fetch(request, raise_error=False)
        return Response(r.code, r.body or b"", r.headers)

    async def __aexit__(self, *exc: Any) -> None:
        self.client.close()
        self.server.stop()
        await self.server.close_all_connections()
        await self.service.close()


@pytest.fixture
def harness(world: World) -> Callable[..., Harness]:
    """``async with harness(**settings) as h``: a served app over ``world``."""

    def make(**settings: Any) -> Harness:
        return Harness(world, ServeSettings(**settings))

    return make


@pytest.fixture
def toys() -> Any:
    """The toy model classes (pyfunc)."""

    class Toys:
        boom = Boom
        sleepy = Sleepy
        recorder = Recorder

    return Toys


class Faulty:
    """A pyfunc model that raises MemoryError (a server-side fault) on any negative value."""

    def predict(self, X: Any) -> Any:
        arr = np.asarray(X, dtype=float)
        if (arr < 0).any():
            raise MemoryError("cannot allocate 8 GiB in /srv/secret/internals")
        return arr.sum(axis=1)
