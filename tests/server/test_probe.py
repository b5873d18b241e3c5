""""Try it" calls the local serve process directly, never through a configured proxy (which
would receive the endpoint's bearer token)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jupyter_mlplat.serving.probe import call_endpoint


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]
    answer = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"predictions": [1]}).encode()
        self.send_response(self.answer)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def _serve(answer: int) -> tuple[ThreadingHTTPServer, list[tuple[str, str | None]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def endpoint_and_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list, list]]:
    endpoint, at_endpoint = _serve(200)
    proxy, at_proxy = _serve(502)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_address[1]}")
    yield endpoint.server_address[1], at_endpoint, at_proxy
    for server in (endpoint, proxy):
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_local_serve_process_is_called_without_the_proxy(endpoint_and_proxy, host):
    port, at_endpoint, at_proxy = endpoint_and_proxy

    tried = call_endpoint(f"http://{host}:{port}", "churn", {"inputs": [[1.0]]},
                          token="s3cret", wait=0)

    assert tried.status == 200 and tried.response == {"predictions": [1]}
    assert at_proxy == []
    assert at_endpoint == [("/endpoints/churn/invocations", "Bearer s3cret")]
