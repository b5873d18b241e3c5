"""A scheduler process's health over HTTP, for JupyterHub, probes and monitoring.

``GET /health`` (and ``GET {prefix}health``, e.g. ``/services/mlplat-scheduler/health`` behind
JupyterHub's proxy) answers ``SchedulerLoop.health()`` as JSON: 200 while the loop polls,
503 before its first poll and when its polls stopped going through. It says nothing about
schedules, owners or the process (no credentials needed to ask, nothing to learn). Served by a
standard-library HTTP server on a thread of its own, loopback by default.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import InvalidSpecError

log = logging.getLogger(__name__)


class HealthServer:
    """Serve ``loop.health()`` on ``host:port`` until :meth:`close`.

    Parameters
    ----------
    loop : SchedulerLoop
        The loop whose health is reported.
    host, port : str, int
        Where to listen (port 0: a free one, see :attr:`port`).
    prefix : str, optional
        A path prefix the health route is also served under (``/services/NAME/``).
    """

    def __init__(self, loop: Any, host: str = "127.0.0.1", port: int = 0,
                 prefix: str = "/") -> None:
        prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        paths = {"/health", f"{prefix}health"}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                if self.path.split("?", 1)[0] not in paths:
                    self._answer(404, {"error": f"no route {self.path.split('?', 1)[0]!r}; "
                                                f"expected {prefix}health"})
                    return
                health = loop.health()
                self._answer(200 if health["status"] == "ok" else 503, health)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise InvalidSpecError(f"cannot serve the scheduler's health on {host}:{port}: "
                                   f"{exc}; choose another --health-port") from None
        self._server.daemon_threads = True
        self.host, self.port = host, int(self._server.server_address[1])
        self.prefix = prefix
        self._thread: threading.Thread | None = None

    def start(self) -> HealthServer:
        """Serve on a daemon thread; return at once."""
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="mlplat-scheduler-health", daemon=True)
        self._thread.start()
        log.info("scheduler health on http://%s:%d%shealth", self.host, self.port, self.prefix)
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
