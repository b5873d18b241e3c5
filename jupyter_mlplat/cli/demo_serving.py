"""The demo's last act: deploy the blessed churn model, serve it, call it over HTTP."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import MLPlatError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MLPlatError(f"the serving process exited with {proc.returncode} before it was "
                              "ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise MLPlatError(f"the serving process was not ready within {timeout:.0f}s ({url})")


def serve_and_call(config: Any, work: Path, model: str = "churn") -> dict[str, Any]:
    """Deploy ``model@production`` on endpoint ``model``, start ``jupyter mlplat serve`` on a
    free port, and make one prediction with the version's stored sample input.

    Returns the endpoint, version, token, URL, request body, answer and the running process
    (the caller stops it, see :func:`stop`).
    """
    from ..serving.deploy import DeployService
    from ..tracking.registry import ModelRegistry

    service = DeployService(config)
    try:
        result = service.deploy(f"{model}@production", endpoint=model)
        registry = ModelRegistry(service.store, service.registry.artifacts)
        _, mv = registry.resolve(f"{model}@production")
        sample, _ = registry.sample(mv)
    finally:
        service.store.close()
    row = sample.head(1)
    body = {"dataframe_split": {"columns": list(row.columns),
                                "data": json.loads(row.to_json(orient="values"))}}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **config.env(), "MLPLAT_SERVING_URL": base}
    log = open(work / "serve.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlplat.cli.main", "serve", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"{base}/v2/models/{model}/ready", proc)
        url = f"{base}/endpoints/{model}/invocations"
        headers = {"Content-Type": "application/json"}
        if result.token:
            headers["Authorization"] = f"Bearer {result.token}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            answered_by = response.headers.get("X-Model-Version")
    except BaseException:
        stop(proc)
        raise
    auth = f" -H {shlex.quote('Authorization: Bearer ' + result.token)}" if result.token else ""
    curl = (f"curl -s {url} -H 'Content-Type: application/json'{auth} "
            f"-d {shlex.quote(json.dumps(body))}")
    return {"endpoint": model, "version": mv.version, "url": url, "body": body,
            "answer": answer, "answered_by": answered_by, "curl": curl, "process": proc,
            "token": result.token, "log": str(work / "serve.log")}


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM the serving process (it drains), then wait; kill it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
