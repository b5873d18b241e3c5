"""A real JupyterHub on loopback, configured by ``examples/jupyterhub_config.py``.

One hub per test session (only for tests marked ``hub``): the dummy authenticator, the simple
spawner, configurable-http-proxy from npm; the project's store service, its shared serve
process and Dask Gateway (local backend) as managed hub services; free ports, a temporary
folder. An admin service token (only this suite knows
it) creates users and their tokens through the hub's REST API.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "jupyterhub_config.py"
CHP_PREFIX = REPO / ".venv" / "chp"
CHP_VERSION = "configurable-http-proxy@5"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on loopback (bound together, so the kernel cannot hand the
    same one out twice, as it may to sockets bound and closed one after another)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def find_chp() -> str:
    """configurable-http-proxy: ``$MLPLAT_HUB_CHP``, the repo's own npm install, the PATH, or
    installed now from npm into ``.venv/chp``."""
    candidates = [os.environ.get("MLPLAT_HUB_CHP"),
                  str(CHP_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"),
                  shutil.which("configurable-http-proxy")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("configurable-http-proxy is missing and npm is not installed to get it "
                    f"(npm install --prefix {CHP_PREFIX} {CHP_VERSION})", pytrace=False)
    subprocess.run([npm, "install", "--silent", "--prefix", str(CHP_PREFIX), CHP_VERSION],
                   check=True, timeout=300)
    return str(CHP_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy")


@dataclass
class Hub:
    """The running hub: where it is, and calls to its REST API as the admin service."""

    url: str
    service_url: str
    serve_url: str
    gateway_url: str
    state: Path
    homes: Path
    admin_token: str
    log: Path
    proc: subprocess.Popen[bytes]
    store_backend: str = "sqlite"
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store_url(self) -> str:
        """What user servers get as ``MLPLAT_STORE_URL``."""
        return f"mlplat+{self.service_url}"

    def api(self, method: str, path: str, *, expect: int | tuple[int, ...] = (200, 201),
            **kwargs: Any) -> Any:
        import requests

        response = requests.request(method, f"{self.url}hub/api/{path}", timeout=60,
                                    headers={"Authorization": f"token {self.admin_token}"},
                                    **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, (response.status_code, response.text)
        return response.json() if response.content else None

    def user(self, name: str) -> str:
        """A hub user ``name`` (created if new) and an API token of theirs (default scopes)."""
        if name not in self.tokens:
            self.api("POST", f"users/{name}", expect=(201, 409))
            self.tokens[name] = self.api("POST", f"users/{name}/tokens",
                                         json={"note": "mlplat tests"})["token"]
        return self.tokens[name]

    def token(self, name: str, scopes: list[str]) -> str:
        """Another token of ``name`` with exactly ``scopes``."""
        self.user(name)
        return self.api("POST", f"users/{name}/tokens",
                        json={"note": "mlplat tests", "scopes": scopes})["token"]

    def store(self, name: str) -> Any:
        from jupyter_mlplat.store.remote import RemoteStore

        return RemoteStore(self.store_url, token=self.user(name), sweep=False)

    def artifacts(self, name: str, tmp: Path) -> Any:
        from jupyter_mlplat.store.remote import RemoteArtifactStore

        return RemoteArtifactStore(self.store_url, token=self.user(name),
                                   cache_dir=str(tmp / f"cache-{name}"))

    def user_env(self, name: str, data_dir: Path, **extra: str) -> dict[str, str]:
        """What a process of ``name`` sees in their server: the service, their token, no DB
        (plus ``extra`` variables)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MLPLAT_", "JUPYTERHUB_"))}
        home = self.homes / name
        home.mkdir(parents=True, exist_ok=True)
        env.update({"MLPLAT_STORE_URL": self.store_url, "JUPYTERHUB_API_TOKEN": self.user(name),
                    "JUPYTERHUB_USER": name, "JUPYTER_DATA_DIR": str(data_dir),
                    "HOME": str(home),  # a terminal of their server starts there
                    "MLPLAT_LOGS_DIR": str(data_dir / "logs"), "COLUMNS": "200", **extra})
        return env

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _wait(hub: Hub, deadline: float) -> None:
    import requests

    checks = [f"{hub.url}hub/api/", f"{hub.service_url}/api/health",
              f"{hub.serve_url}/health", f"{hub.gateway_url}/api/health",
              f"{hub.url}services/mlplat-scheduler/health"]
    while checks:
        if hub.proc.poll() is not None:
            pytest.fail(f"JupyterHub exited with {hub.proc.returncode}:\n{hub.log_tail()}",
                        pytrace=False)
        try:
            if requests.get(checks[0], timeout=2).status_code == 200:
                checks.pop(0)
                continue
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterHub not ready after 60 s ({checks[0]}):\n{hub.log_tail()}",
                        pytrace=False)
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the hub (it stops the proxy, its services and user servers), then anything of its
    process group that is left, and its children that run in groups of their own (the proxy,
    the services) should the hub not have stopped them in time."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group started for this hub only
    except ProcessLookupError:
        pass
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass


def _postgres() -> Any:
    """``tests/store/pg.py`` (a throw-away PostgreSQL cluster), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlplat_tests_pg",
                                                  REPO / "tests" / "store" / "pg.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)  # its dataclasses look their module up in sys.modules
    return module


@pytest.fixture(scope="session")
def hub_store_url() -> Iterator[str | None]:
    """The shared store the services use: ``$MLPLAT_HUB_STORE_URL``, else a database on a
    throw-away PostgreSQL cluster where its server binaries are installed (what a team runs),
    else None (the example's SQLite file)."""
    if os.environ.get("MLPLAT_HUB_STORE_URL"):
        yield os.environ["MLPLAT_HUB_STORE_URL"]
        return
    pg = _postgres()
    bindir = pg.find_bindir()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        bindir = None
    if bindir is None:
        yield None
        return
    cluster = pg.PostgresCluster(bindir).start()
    try:
        yield cluster.url(cluster.create_database())
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_store_url: str | None) -> Iterator[Hub]:
    """A JupyterHub with the store service, for the whole session."""
    root = tmp_path_factory.mktemp("hub")
    state, homes = root / "state", root / "homes"
    homes.mkdir()
    port, service_port, serve_port, gateway_port, scheduler_port, api_port, proxy_api = \
        free_ports(7)
    admin_token = secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "JUPYTERHUB_"))}
    env.update({
        "MLPLAT_HUB_STATE": str(state), "MLPLAT_HUB_PORT": str(port),
        "MLPLAT_HUB_API_PORT": str(api_port), "MLPLAT_HUB_PROXY_API": str(proxy_api),
        "MLPLAT_HUB_SERVICE_PORT": str(service_port), "MLPLAT_HUB_SERVE_PORT": str(serve_port),
        "MLPLAT_HUB_HOMES": str(homes / "{username}"), "MLPLAT_HUB_CHP": find_chp(),
        "MLPLAT_HUB_ADMIN_TOKEN": admin_token, "MLPLAT_HUB_GATEWAY_PORT": str(gateway_port),
        "MLPLAT_HUB_SCHED_PORT": str(scheduler_port),
    })
    if hub_store_url:
        env["MLPLAT_HUB_STORE_URL"] = hub_store_url
    else:
        env["MLPLAT_HUB_ALLOW_SQLITE"] = "1"  # no PostgreSQL here: the example's trial store
    log = root / "jupyterhub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "jupyterhub"),
             "-f", str(EXAMPLE_CONFIG)],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    hub = Hub(url=f"http://127.0.0.1:{port}/",
              service_url=f"http://127.0.0.1:{service_port}/services/mlplat",
              serve_url=f"http://127.0.0.1:{serve_port}/services/mlplat-serve",
              gateway_url=f"http://127.0.0.1:{gateway_port}",
              state=state, homes=homes, admin_token=admin_token, log=log, proc=proc,
              store_backend=(hub_store_url or "sqlite").split(":", 1)[0].split("+", 1)[0])
    try:
        _wait(hub, time.monotonic() + 60)
        yield hub
    finally:
        _stop(proc)
