"""Server-extension fixtures: a JSON client over ``jp_fetch``, tiny notebooks in the server root,
and a reader of the server-sent event stream over a raw socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.pipeline.nbbuild import code, notebook, write


@dataclass
class Answer:
    code: int
    body: bytes
    headers: Any

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Api:
    """``await api("GET", "runs", run_id)``: a request under ``mlplat/api``; errors are answers."""

    def __init__(self, fetch: Callable[..., Awaitable[Any]]) -> None:
        self.fetch = fetch

    async def __call__(self, method: str, *path: str, body: Any = None, raw: bytes | None = None,
                       params: dict[str, Any] | None = None,
                       headers: dict[str, str] | None = None, timeout: float = 60) -> Answer:
        kwargs: dict[str, Any] = {"method": method, "request_timeout": timeout}
        if raw is not None:
            kwargs["body"] = raw
        elif body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        if params:
            kwargs["params"] = params
        if headers is not None:
            kwargs["headers"] = headers
        try:
            r = await self.fetch("mlplat", "api", *path, **kwargs)
        except HTTPClientError as err:
            if err.response is None:
                raise
            return Answer(err.code, err.response.body or b"", err.response.headers)
        return Answer(r.code, r.body or b"", r.headers)

    async def ok(self, method: str, *path: str, expect: int = 200, **kwargs: Any) -> Any:
        """The JSON answer of a request that must answer ``expect``."""
        answer = await self(method, *path, **kwargs)
        assert answer.code == expect, (answer.code, answer.body[:2000])
        return answer.json

    async def error(self, method: str, *path: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        """The JSON error of a request that must fail with ``expect``; it says what was wrong."""
        answer = await self(method, *path, **kwargs)
        assert answer.code == expect, (answer.code, answer.body[:2000])
        body = answer.json
        assert body.get("message"), body
        return body

    async def wait_run(self, run_id: str, statuses: tuple[str, ...] = (
            "succeeded", "failed", "cancelled", "interrupted"), timeout: float = 120,
            step: tuple[str, str] | None = None) -> dict[str, Any]:
        """Poll ``GET runs/{id}`` until the run (or ``step`` = (name, status)) gets there."""
        deadline = time.monotonic() + timeout
        while True:
            run = await self.ok("GET", "runs", run_id)
            if step is not None:
                if any(s["name"] == step[0] and s["status"] == step[1] for s in run["steps"]):
                    return run
            elif run["status"] in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run}"
            await asyncio.sleep(0.2)


@pytest.fixture
def api(jp_fetch: Callable[..., Awaitable[Any]]) -> Api:
    return Api(jp_fetch)


@pytest.fixture(autouse=True)
def small_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers (the machine's size here) and run events checked often. The scheduler loop
    (on by default in a server) runs only in the tests that fire schedules
    (``test_schedules.py``): each server here would otherwise start one."""
    monkeypatch.setenv("MLPLAT_DASK_WORKERS", "2")
    monkeypatch.setenv("MLPLAT_EVENTS_INTERVAL", "0.5")
    monkeypatch.setenv("MLPLAT_RUN_SCHEDULER", "0")


def step(name: str, src: str, **options: Any) -> dict[str, Any]:
    return code(src, mlplat={"step": name, **options})


@pytest.fixture
def make_notebook(jp_root_dir: Path) -> Callable[..., str]:
    """Write a notebook of ``cells`` into the server root; returns its path relative to it."""

    def make(name: str, *cells: dict[str, Any], folder: str = "") -> str:
        where = jp_root_dir / folder
        where.mkdir(parents=True, exist_ok=True)
        path = write(where, name, notebook(*cells))
        return path.relative_to(jp_root_dir).as_posix()

    return make


#: Two steps: ``make`` defines ``values``; ``total`` reads them and logs a metric curve.
TWO_STEPS = (
    step("make", "values = [1, 2, 3]\nprint('made', len(values))"),
    step("total", "import jupyter_mlplat as mlp\n"
                  "total = sum(values)\n"
                  "for i in range(3):\n"
                  "    mlp.log_metric('loss', 1.0 / (i + 1), step=i)\n"
                  "mlp.log_metric('total', total)\n"
                  "print('total is', total)"),
)


class EventStream:
    """``GET events`` over a raw socket: read events as they come, close to hang up."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.port, self.path, self.headers = port, path, headers
        self.raw = b""  # received, not yet de-chunked
        self.body = b""  # de-chunked, not yet split into events
        self.status = 0

    async def __aenter__(self) -> EventStream:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"GET {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 "Accept: text/event-stream",
                 *(f"{k}: {v}" for k, v in self.headers.items()), "", ""]
        self.writer.write("\r\n".join(lines).encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        self.status = int(head.split(b" ", 2)[1])
        self.head = head.decode("latin-1")
        return self

    def _dechunk(self) -> None:
        while b"\r\n" in self.raw:
            size_line, _, after = self.raw.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if len(after) < size + 2:
                return
            self.body += after[:size]
            self.raw = after[size + 2:]

    async def events(self, until: Callable[[str, Any], bool], timeout: float = 90
                     ) -> list[tuple[str, Any]]:
        """Events (kind, JSON data) read until ``until(kind, data)`` is true."""
        seen: list[tuple[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            while b"\n\n" in self.body:
                block, _, self.body = self.body.partition(b"\n\n")
                kind, data = "message", None
                for line in block.decode().splitlines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if data is not None:
                    seen.append((kind, data))
                    if until(kind, data):
                        return seen
            left = deadline - time.monotonic()
            assert left > 0, f"no such event within {timeout}s; seen: {seen}"
            chunk = await asyncio.wait_for(self.reader.read(65536), left)
            assert chunk, f"the stream ended; seen: {seen}"
            self.raw += chunk

    async def __aexit__(self, *exc: Any) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def wait_watched(hub: Any, timeout: float = 30.0) -> None:
    """Wait until ``hub`` (the EventHub) has a subscriber and its watcher has taken its first
    look: the baseline later changes are compared with. A change made before that look becomes
    part of the baseline and is never sent, so a test must not make one earlier.

    The baselines are read only after the subscriber was seen one tick earlier: a watcher
    started by that subscription first resets what an earlier watcher left.
    """
    deadline = time.monotonic() + timeout
    subscribed = False
    while True:
        if subscribed and hub._seen_runs is not None and hub._seen_endpoints is not None \
                and (hub._schedules is None or hub._seen_schedules is not None):
            return
        subscribed = hub.subscribers > 0
        assert time.monotonic() < deadline, \
            f"the event watcher took no first look within {timeout}s " \
            f"(subscribers: {hub.subscribers})"
        await asyncio.sleep(0.05)
