"""RemoteStore's client side over real HTTP: timeouts, retries, and a service older than the
client. The server here is a small tornado app on loopback that misbehaves on purpose (drops
connections, stalls, answers 503, lacks methods), which the real service only does when it
restarts or is overloaded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jupyter_mlplat.errors import MLPlatError, NotFoundError
from jupyter_mlplat.hub.protocol import UnknownMethodError, encode
from jupyter_mlplat.store import remote
from jupyter_mlplat.store.remote import RemoteStore, ServiceClient
from jupyter_mlplat.store.sql import STALE_AFTER


@dataclass
class Plan:
    """What the fake service does: per method, a list of behaviours used one per request."""

    methods: list[str] = field(default_factory=lambda: ["heartbeat", "run_row", "log_params"])
    behaviour: dict[str, list[str]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


class WhoAmI(tornado.web.RequestHandler):
    def initialize(self, plan: Plan) -> None:
        self.plan = plan

    def get(self) -> None:
        self.finish({"owner": "bob", "version": "0.1-old", "artifacts_prefix": "/x/users/bob/",
                     "methods": self.plan.methods})


class Call(tornado.web.RequestHandler):
    def initialize(self, plan: Plan) -> None:
        self.plan = plan

    async def post(self, method: str) -> None:
        self.plan.calls[method] = self.plan.calls.get(method, 0) + 1
        todo = self.plan.behaviour.get(method) or ["ok"]
        what = todo.pop(0) if len(todo) > 1 else todo[0]
        if what == "drop":  # a restarting service: the connection closes, no answer
            self.request.connection.stream.close()
            return
        if what == "stall":  # far past the client's timeout; nobody waits for its end
            await asyncio.sleep(10)
        if what == "503":
            self.set_status(503)
            self.finish({"error": "restarting", "kind": ""})
            return
        if what == "501":
            self.set_status(501)
            self.finish({"error": f"no method {method!r}", "kind": "UnknownMethodError"})
            return
        if what == "404":
            self.set_status(404)
            self.finish({"error": "no run 'x'", "kind": "NotFoundError"})
            return
        self.finish(json.dumps({"result": encode(False if method == "heartbeat" else None)}))


@pytest.fixture
def service() -> Iterator[tuple[str, Plan]]:
    plan = Plan()
    ready = threading.Event()
    state: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = tornado.web.Application([(r"/api/whoami", WhoAmI, {"plan": plan}),
                                       (r"/api/store/(\w+)", Call, {"plan": plan})])
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        state.update(loop=loop, server=server, port=sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.stop()
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"mlplat+http://127.0.0.1:{state['port']}", plan
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)


def test_the_heartbeat_never_outlasts_the_time_a_run_counts_as_alive() -> None:
    worst = remote.RETRY_FOR + sum(remote.HEARTBEAT_TIMEOUT)
    assert worst < STALE_AFTER.total_seconds()
    assert sum(remote.CALL_TIMEOUT) < remote.TRANSFER_TIMEOUT[1]


def test_idempotent_calls_survive_a_restarting_service(service, monkeypatch) -> None:
    url, plan = service
    monkeypatch.setattr(remote, "RETRY_FOR", 5.0)
    store = RemoteStore(url, token="t", sweep=False)
    plan.behaviour["heartbeat"] = ["drop", "503", "ok"]
    assert store.heartbeat("r1") is False
    assert plan.calls["heartbeat"] == 3
    # a call that adds rows is not sent twice once it may have arrived
    plan.behaviour["log_params"] = ["drop", "ok"]
    with pytest.raises(MLPlatError, match="cannot reach the store service"):
        store.log_params("r1", None, {"p": 1})
    assert plan.calls["log_params"] == 1


def test_a_stalled_service_gives_up_within_the_calls_timeout(service, monkeypatch) -> None:
    url, plan = service
    monkeypatch.setattr(remote, "CALL_TIMEOUT", (1.0, 1.0))
    monkeypatch.setattr(remote, "RETRY_FOR", 0.0)
    plan.behaviour["run_row"] = ["stall"]
    client = ServiceClient(url, token="t")
    started = time.monotonic()
    with pytest.raises(MLPlatError, match="timed out"):
        client.call("run_row", ("r1",), {})
    assert time.monotonic() - started < 5.0  # its 1 s timeout, not the 10 s stall


def test_a_method_the_service_lacks_is_not_a_missing_row(service) -> None:
    url, plan = service
    store = RemoteStore(url, token="t", sweep=False)
    with pytest.raises(UnknownMethodError, match="0.1-old.*has no method 'runs'.*upgrade"):
        store.runs()
    assert "runs" not in plan.calls  # not even asked
    plan.behaviour["run_row"] = ["501"]  # and the service's own answer says the same
    with pytest.raises(UnknownMethodError) as err:
        store.run_row("r1")
    assert not isinstance(err.value, NotFoundError)
    plan.behaviour["run_row"] = ["404"]
    with pytest.raises(NotFoundError, match="no run"):
        store.run_row("r1")
