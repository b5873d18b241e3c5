"""Endpoints as the server extension offers them: the deploy service, the user's own
``jupyter mlplat serve`` child process, endpoint URLs with a copyable ``curl``, and "try it".

When no ``serving_url`` is configured, the first deploy or "try it" starts ``jupyter mlplat
serve`` on a free port of 127.0.0.1 (this user's endpoints only, loaded trusted: they are the
user's own models); reading endpoints never starts it (their URLs appear once it runs). The
server stops it when it stops, and the child stops by itself when the server is gone without
stopping it (killed, out of memory): it watches its parent (``serve_child``). Its output goes
to ``serve.log``, never into the server's memory. Tokens of endpoints deployed through this
server are kept in memory (never written, never logged) so "try it" works without asking for
them again; the store only ever has their hashes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..config import MLPlat
from ..errors import ConflictError, InvalidSpecError, MLPlatError
from ..schemas import (
    CreateDeployment,
    DeployResult,
    DescribeEndpoint,
    ListEndpointsResponse,
    TryEndpoint,
    TryEndpointResponse,
    UpdateTraffic,
)
from ..serving.probe import ServingUnavailableError

log = logging.getLogger(__name__)


class _StdoutPump:
    """Reads the child's stdout to the end (so the pipe never fills up): lines go to ``lines``
    until the one that says where it listens, then to ``serve.log``, never kept in memory."""

    READY = "serving on "

    def __init__(self, stream: IO[bytes], log_path: Path) -> None:
        self.stream = stream
        self.log_path = log_path
        self.lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> None:
        threading.Thread(target=self._run, name="mlplat-serve-stdout", daemon=True).start()

    def _run(self) -> None:
        ready, broken = False, False
        output: IO[bytes] | None = None
        try:
            with self.stream:
                for raw in self.stream:
                    if not ready:
                        line = raw.decode("utf-8", "replace").strip()
                        ready = line.startswith(self.READY)
                        self.lines.put(line)
                    elif not broken:  # a log that cannot be written: drop lines, keep reading
                        try:
                            if output is None:
                                output = open(self.log_path, "ab")  # noqa: SIM115 - to the end
                            output.write(raw)
                            output.flush()
                        except OSError:
                            broken = True
                            log.exception("writing the serve process's output to %s failed",
                                          self.log_path)
        finally:
            if output is not None:
                with contextlib.suppress(OSError):
                    output.close()
            self.lines.put(None)


class ServeChild:
    """A ``jupyter mlplat serve`` child process on 127.0.0.1, started on first use.

    The child is given this process's pid and exits when it is gone (see ``serve_child``).
    Once :meth:`stop` was called nothing starts it again.

    Parameters
    ----------
    config : MLPlat
        Its store, artifacts and owner go to the child as ``MLPLAT_*`` variables.
    log_dir : path
        Where its output goes (``serve.log``) and its admin token (mode 0600).
    start_timeout : float
        Longest wait for it to listen.
    """

    def __init__(self, config: MLPlat, log_dir: str | os.PathLike[str], *,
                 start_timeout: float = 60.0) -> None:
        self.config = config
        self.log_dir = Path(log_dir)
        self.start_timeout = start_timeout
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: _StdoutPump | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ensure(self) -> str:
        """The child's URL, starting it (or starting it again, if it died) first.

        Raises
        ------
        ServingUnavailableError
            When it cannot start, or after :meth:`stop` (the server is shutting down).
        """
        with self._lock:
            if self._closed:
                raise ServingUnavailableError("the server is shutting down; its serve process "
                                              "is not started again")
            if self.running and self.url:
                return self.url
            if self._proc is not None:
                log.warning("the serve process exited with %s; starting it again",
                            self._proc.returncode)
                self._proc = None
            return self._start()

    def command(self, token_file: Path) -> list[str]:
        """The child's command line: ``jupyter mlplat serve`` watching this process."""
        return [sys.executable, "-m", "jupyter_mlplat.server.serve_child",
                "--parent-pid", str(os.getpid()),
                "serve", "--host", "127.0.0.1", "--port", "0",
                "--admin-token-file", str(token_file)]

    def _start(self) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.log_dir / "serve-admin-token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        env = {**os.environ, **self.config.env()}
        env.pop("MLPLAT_SERVING_URL", None)
        log_path = self.log_dir / "serve.log"
        output = open(log_path, "ab")  # noqa: SIM115 - the child's stderr
        try:
            proc = subprocess.Popen(self.command(token_file), env=env, stdout=subprocess.PIPE,
                                    stderr=output, stdin=subprocess.DEVNULL)
        finally:
            output.close()
        assert proc.stdout is not None
        pump = _StdoutPump(proc.stdout, log_path)
        pump.start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                line = pump.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                self._kill(proc)
                raise ServingUnavailableError(
                    f"the serve process did not start within {self.start_timeout:.0f}s; see "
                    f"{log_path}") from None
            if line is None:
                proc.wait()
                raise ServingUnavailableError(
                    f"the serve process exited with {proc.returncode} before it listened; see "
                    f"{log_path}")
            if line.startswith(_StdoutPump.READY):
                token_file.unlink(missing_ok=True)  # read at start; not needed on disk
                self.url = line.removeprefix(_StdoutPump.READY).strip()
                self._proc, self._pump = proc, pump
                log.info("started jupyter mlplat serve (pid %d) on %s", proc.pid, self.url)
                return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the child (it finishes requests in flight), then wait; kill if it hangs.
        Nothing starts it again afterwards."""
        with self._lock:
            self._closed = True
            proc, self._proc, self.url = self._proc, None, None
        if proc is not None:
            self._kill(proc, timeout)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class EndpointManager:
    """The owner's endpoints for the REST API (every method blocks: call it in a thread).

    Parameters
    ----------
    config : MLPlat
        Settings; ``serving_url`` (when set) is the serve process to use, else a child is
        started on first use and its URL becomes ``config.serving_url``.
    store, artifacts
        The owner's stores.
    """

    def __init__(self, config: MLPlat, *, store: Any, artifacts: Any,
                 autostart: bool = True) -> None:
        from ..serving.deploy import DeployService

        self.config = config
        self.deploys = DeployService(config, store=store, artifacts=artifacts)
        self.store = store
        self.configured_url = config.serving_url
        self.autostart = autostart
        self.child = ServeChild(config, Path(config.logs_dir))
        self._tokens: dict[str, str] = {}
        self._bodies: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    # -- the serve process ---------------------------------------------------------------------

    def serving_url(self, start: bool = True) -> str | None:
        """Where the owner's endpoints are served; starts the child if needed and allowed."""
        if self.configured_url:
            return self.configured_url
        if self.child.running and self.child.url:
            return self.child.url
        if not (start and self.autostart):
            return None
        url = self.child.ensure()
        self.config.serving_url = url  # endpoint URLs, and MLPLAT_SERVING_URL for steps
        return url

    def close(self) -> None:
        self.child.stop()
        if not self.configured_url:
            self.config.serving_url = ""

    # -- queries -------------------------------------------------------------------------------

    def list(self) -> ListEndpointsResponse:
        """Every endpoint, with its URL and a copyable ``curl`` once a serve process runs."""
        listing = self.deploys.list()
        return ListEndpointsResponse(endpoints=[self._with_curl(e) for e in listing.endpoints])

    def describe(self, name: str) -> DescribeEndpoint:
        """One endpoint with its revisions (and URL and ``curl`` once a serve process runs)."""
        return self._with_curl(self.deploys.describe(name))

    def signatures(self) -> dict[str, Any]:
        """``{name: (newest revision, public)}`` of every endpoint (what change events watch)."""
        return {row.name: (current.revision if current is not None else None, bool(row.public))
                for row, current in self.store.endpoints()}

    # -- changes -------------------------------------------------------------------------------

    def deploy(self, request: CreateDeployment) -> DeployResult:
        """A new revision serving ``request.model``; the token (new endpoints) is returned once
        and kept in this server's memory for "try it". The serve process is started after the
        deploy is recorded (a refused deploy starts nothing)."""
        result = self.deploys.deploy(
            request.model, request.version, endpoint=request.endpoint, traffic=request.canary,
            shadow=request.shadow, shadow_share=request.shadow_share, force=request.force,
            reason=request.reason, public=request.public)
        if result.token:
            with self._lock:
                self._tokens[result.endpoint.name] = result.token
        try:
            self.serving_url()
        except ServingUnavailableError as exc:
            raise ServingUnavailableError(
                f"endpoint {result.endpoint.name!r} revision {result.endpoint.revision} is "
                f"deployed, but no serve process serves it: {exc}") from exc
        return result.model_copy(update={"endpoint": self._with_curl(result.endpoint)})

    def set_traffic(self, name: str, request: UpdateTraffic) -> DescribeEndpoint:
        return self._with_curl(self.deploys.set_traffic(name, request.traffic,
                                                        force=request.force,
                                                        reason=request.reason))

    def rollback(self, name: str) -> DescribeEndpoint:
        return self._with_curl(self.deploys.rollback(name))

    def undeploy(self, name: str) -> DescribeEndpoint:
        return self._with_curl(self.deploys.undeploy(name))

    def rotate_token(self, name: str) -> DeployResult:
        """A new token for the endpoint (shown once; the old one stops working)."""
        result = self.deploys.rotate_token(name)
        if result.token:
            with self._lock:
                self._tokens[name] = result.token
        return result.model_copy(update={"endpoint": self._with_curl(result.endpoint)})

    def try_endpoint(self, name: str, request: TryEndpoint) -> TryEndpointResponse:
        """Call the endpoint like a client, with ``request.inputs`` or the sample input of the
        version taking most of its traffic; waits for a fresh deploy to be served."""
        from ..serving.probe import call_endpoint

        endpoint = self.deploys.describe(name)
        if not endpoint.deployed:
            raise ConflictError(f"endpoint {name!r} is not deployed; deploy a model to it first")
        with self._lock:
            token = request.token or self._tokens.get(name)
        if not endpoint.public and not token:
            raise ConflictError(
                f"endpoint {name!r} needs its token, which is shown once when it is created; "
                "give it as \"token\", or rotate it (POST endpoints/{name}/token)")
        body = request.inputs if request.inputs is not None else self._sample_body(endpoint)
        if not isinstance(body, dict):
            raise InvalidSpecError("inputs must be an MLflow scoring body: an object with one of "
                                   "dataframe_split, dataframe_records, instances or inputs")
        url = self.serving_url()
        if url is None:
            raise ServingUnavailableError(
                "no serve process to call: set c.MLPlat.serving_url (MLPLAT_SERVING_URL), or "
                "let the server start one (c.MLPlat.serve_on_demand = True)")
        return call_endpoint(url, name, body, token=token, min_revision=endpoint.revision)

    # -- internals -----------------------------------------------------------------------------

    def _sample_body(self, endpoint: DescribeEndpoint) -> Any:
        from ..serving.probe import sample_body

        primary = max(endpoint.routes, key=lambda r: r.weight)
        key = (primary.model, primary.version)
        with self._lock:
            if key in self._bodies:
                return self._bodies[key]
        registry = self.deploys.registry
        mv = self.store.model_version(primary.model, primary.version)
        sample, _ = registry.sample(mv)
        body = sample_body(sample)
        with self._lock:
            self._bodies[key] = body
        return body

    def _with_curl(self, endpoint: DescribeEndpoint) -> DescribeEndpoint:
        from ..serving.probe import curl_command, invocations_url

        base = self.configured_url or (self.child.url if self.child.running else None)
        if not base or not endpoint.deployed or not endpoint.routes:
            return endpoint
        try:
            body = self._sample_body(endpoint)
        except MLPlatError:
            body = {"inputs": []}  # no stored sample: the shape of a request, to fill in
        except Exception:  # noqa: BLE001 - a sample that cannot be read is not worth a 500
            log.exception("reading the sample input of endpoint %s failed", endpoint.name)
            body = {"inputs": []}
        update = {"curl": curl_command(invocations_url(base, endpoint.name), body,
                                       needs_token=not endpoint.public)}
        if endpoint.url is None:  # described before the serve process was up
            update["url"] = f"{base.rstrip('/')}/v2/models/{endpoint.name}/infer"
        return endpoint.model_copy(update=update)
