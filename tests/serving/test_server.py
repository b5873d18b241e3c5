"""The serve process end to end: CLI start, admin token file, SIGTERM drain, exit code 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_mlplat.serving.server import admin_token_path, write_admin_token

from .conftest import ROWS

ROOT = Path(__file__).resolve().parents[2]


def test_admin_token_file_is_private(tmp_path: Path) -> None:
    path = write_admin_token("s3cret", tmp_path / "t")
    assert path.read_text().strip() == "s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_token_path().name == "serving-admin-token"


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlplat.cli.serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(ROOT))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving on "):
        proc.kill()
        raise AssertionError(f"no URL: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[-1]


async def test_sigterm_lets_the_slow_request_finish(world, toys, tmp_path: Path) -> None:
    v = world.linear("lin", 2.0)
    s = world.toy("sleepy", toys.sleepy(1.0))
    world.deploy("fast", [("lin", v, 100)])
    world.deploy("slow", [("sleepy", s, 100)])
    token_file = tmp_path / "admin"
    token_file.write_text("from-a-file\n")
    proc, url = _start(["--port", "0", "--admin-token-file", str(token_file)])
    client = AsyncHTTPClient(force_instance=True)
    try:
        r = await client.fetch(url + "/v1/models/fast:predict", method="POST",
                               body=f'{{"instances": {ROWS.tolist()}}}')
        assert r.code == 200 and r.headers["X-Model-Version"] == f"lin@{v}"
        r = await client.fetch(url + "/v2/repository/index", method="POST", body="{}",
                               headers={"Authorization": "Bearer from-a-file"})
        assert r.code == 200
        slow = asyncio.ensure_future(client.fetch(
            url + "/v1/models/slow:predict", method="POST",
            body=f'{{"instances": {ROWS.tolist()}}}', request_timeout=20))
        # wait until the server is handling the slow request (its in-flight gauge), not a guess
        deadline = time.monotonic() + 10
        while b'mlplat_serving_inflight{endpoint="slow"} 1.0' not in (
                await client.fetch(url + "/metrics")).body:
            assert time.monotonic() < deadline, "the slow request never started"
            await asyncio.sleep(0.02)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        r = await slow
        assert r.code == 200 and r.headers["X-Model-Version"] == f"sleepy@{s}"
        assert np.allclose(np.asarray(json.loads(r.body)["predictions"]), ROWS.sum(axis=1))
        code = await asyncio.to_thread(proc.wait, 15)
        assert code == 0
        assert time.monotonic() - started < 10
        with pytest.raises((HTTPClientError, ConnectionError, OSError)):
            await client.fetch(url + "/v2/health/live", request_timeout=2)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait()
    assert "from-a-file" not in err
    assert "stopping" in err, err


async def test_generated_admin_token_and_sigint(world) -> None:
    v = world.linear("lin", 2.0)
    world.deploy("only", [("lin", v, 100)])
    proc, url = _start(["--port", "0"])
    client = AsyncHTTPClient(force_instance=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("admin token written to ")
        path = Path(line.split()[-1])
        assert path == admin_token_path() and stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        r = await client.fetch(url + "/v2/repository/index", method="POST", body="{}",
                               headers={"Authorization": f"Bearer {token}"})
        assert r.code == 200
        r = await client.fetch(url + "/invocations", method="POST",
                               body='{"inputs": [[1.0, 2.0]]}')
        assert r.code == 200 and r.headers["X-Model-Version"] == f"lin@{v}"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
