"""Side-by-side benchmark: several users tracking runs at once against one PostgreSQL store.

What a team on one hub experiences when U users log runs at the same time: U client processes
(one per user, each its own hub user with its own hub token where there is a hub) each do R runs
of the same work: create a run, log P params and M metric points (one curve, ``loss`` at steps
0..M-1), finish it. Everything runs on 127.0.0.1, on one throw-away PostgreSQL cluster
(``tests/store/pg.py``: initdb into a temporary folder, a free port, ``fsync=off``; one database
per side), started and removed by this script.

The sides:

- ``mlplat-service``: ``jupyter mlplat service`` as the hub service ``mlplat`` of a real
  JupyterHub (``examples/jupyterhub_config.py``, as ``tests/hub`` runs it: dummy authenticator,
  simple spawner, configurable-http-proxy from ``.venv/chp`` or the PATH, Dask Gateway off),
  backed by the cluster. Each client holds only its user's hub token and the service URL, as a
  kernel in that user's server does (``MLPLAT_STORE_URL=mlplat+http://...``).
- ``mlflow-server``: ``mlflow server`` (``benchmarks/.venv-mlflow``, made by
  ``registry_log_load.py``'s code when missing; ``psycopg2-binary`` installed into it on first
  use) on its own database of the same cluster; clients use MLflow's own client over its REST
  API. One worker process by default, like the store service (one tornado process with a thread
  pool; MLflow's uvicorn worker runs its Flask app in a thread pool too): with more workers
  (``--mlflow-workers 4``, MLflow's own default) uvicorn binds the socket itself and asyncio then
  leaves Nagle's algorithm on for its connections, so every answer on a kept-alive connection
  waits ~40-50 ms for the client's delayed ACK (measured here: 52 ms a call with 2 or 4 workers,
  5-7 ms with 1). MLflow's server runs without authentication (its basic-auth is an extra app),
  while every call of the mlplat side is checked against the hub (its answers cached 30 s).
- ``sql-floor``: jupyter-mlplat's SQL store opened by each client directly on the cluster (its
  own database): what the store service costs on top of the store itself.

The modes (what one run is; every side logs the same P params and M points):

- ``api``, the notebook API outside a step, as a kernel calls it: ``mlp.log_param`` x P (the
  first opens the notebook's run), ``mlp.log_metric(name, value, step=i)`` x M,
  ``mlp.end_run()``; MLflow's fluent API: ``mlflow.start_run``, ``mlflow.log_param`` x P,
  ``mlflow.log_metric(step=i)`` x M, ``mlflow.end_run()``.
- ``calls``, one call per param and point: ``create_run``, ``log_params`` x P (one param each),
  ``log_metrics`` x M (one point each), ``finish_run``; ``MlflowClient.create_run``,
  ``log_param`` x P, ``log_metric`` x M, ``set_terminated``: 2+P+M calls on both.
- ``batch``: ``create_run``, ``log_params`` (P), ``log_metrics`` (M points), ``finish_run`` (4
  calls: what a pipeline step's executor does when the step ends); ``create_run``, ``log_batch``
  (P params + M points), ``set_terminated`` (3 calls).

``calls`` and ``batch`` use ``RemoteStore`` (service) or ``Store`` (floor), opened once per
client before the clock starts, as MLflow's client is. ``api`` opens the store when a run opens
(a new ``RemoteStore`` or SQL engine per run: what ``mlp.*`` does), so it includes that.

Every client process is started once and reused for every load (imports done, like a running
kernel); before each load it gets its user (a new hub user and token, a new owner, a new MLflow
experiment: rows of one load are counted on their own), prepares (opens its store or client and
makes one call), waits for the others, and on ``go`` all start at once. Before the first load
the script waits until every server and client has finished starting (their CPU quiet), and the
order of the sides rotates from one (U, mode) group to the next. Measured per load: runs/s
(U*R over the time from the first client's start to the last one's end), per-run latency
median/p95, per-call latency median/p95 (``api``/``calls``: one metric call of one point;
``batch``: all the logging of a run, P params + M points), the ratio of runs/s to MLflow's in the
same mode and U, CPU ms per run of the server (the store service / MLflow's server processes),
the rest of the hub (hub, proxy, the other hub services), PostgreSQL and the clients, and a
row count after the load in each store: U*R runs (all finished), U*R*P params and U*R*M metric
points, else the load is flagged. One BLAS/OpenMP thread everywhere. This is a measurement, never
a pass/fail test. Raw results: ``benchmarks/results/tracking_multiuser.json``.

Usage::

    python benchmarks/tracking_multiuser.py                    # U in {1, 4}, R=20, ~3-5 min
    python benchmarks/tracking_multiuser.py --quick            # U=2, R=5, M=20
    python benchmarks/tracking_multiuser.py --users 1,2,8 --runs 50 --modes calls,batch
    python benchmarks/tracking_multiuser.py --sides mlplat-service,sql-floor
"""

from __future__ import annotations

# Only the standard library at module level: the same file is the client in MLflow's venv.
import argparse
import contextlib
import datetime as dt
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import _report  # this folder's; standard library only, like this module's other imports

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = HERE / "results" / "tracking_multiuser.json"
EXAMPLE_CONFIG = ROOT / "examples" / "jupyterhub_config.py"
CHP_LOCAL = ROOT / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
PIPELINE = ("tracking-bench", "/bench/tracking.ipynb")  # what calls/batch runs belong to

SIDES: dict[str, str] = {
    "mlplat-service": "jupyter mlplat service under JupyterHub (RemoteStore, hub tokens)",
    "mlflow-server": "mlflow server, MLflow's client",
    "sql-floor": "jupyter-mlplat SQL store, direct",
}
SHORT = {"mlplat-service": "mlplat service", "mlflow-server": "MLflow server",
         "sql-floor": "SQL floor"}
PEER = "mlflow-server"
MODES: dict[str, str] = {
    "api": "notebook API: mlp.* / mlflow.* fluent",
    "calls": "one call per param and metric point",
    "batch": "params and points in one go",
}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# MLflow's telemetry would reach for the network (closed here); its logging stays synchronous.
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
}


def say(message: str) -> None:
    print(message, flush=True)


# =============================================================================================
# Client: one user's process. Reads JSON commands on stdin, answers one JSON line each on its
# own copy of stdout (what libraries print goes to stderr, a log file). Imports inside functions.


def _param_value(run: int, k: int) -> str:
    return f"{0.001 * (k + 1):.4f}-{run}"


def _metric_value(run: int, i: int) -> float:
    return 1.0 / (i + 1) + run * 1e-3


class Client:
    """One side's work for one user; ``prepare`` before the clock, ``run`` timed."""

    def __init__(self, msg: dict[str, Any]) -> None:
        self.msg = msg
        self.mode = msg["mode"]
        self.params, self.metrics = int(msg["params"]), int(msg["metrics"])

    def run(self, r: int, t: dict[str, list[float]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MlplatClient(Client):
    """The store service (``RemoteStore``, the user's hub token) or the SQL store (floor)."""

    def __init__(self, msg: dict[str, Any]) -> None:
        super().__init__(msg)
        for key in [k for k in os.environ if k.startswith(("MLPLAT_", "JUPYTERHUB_"))]:
            if key != "MLPLAT_LOGS_DIR":
                del os.environ[key]
        service = msg["side"] == "mlplat-service"
        if service:
            from jupyter_mlplat.store.remote import RemoteStore

            self.store: Any = RemoteStore(msg["url"], token=msg["token"])
        else:
            from jupyter_mlplat.store.sql import Store

            self.store = Store(msg["url"], msg["user"])
        # one call before the clock (a warm connection; the hub's answer on the token cached)
        self.pipeline_id = self.store.pipeline_id(*PIPELINE)
        if self.mode == "api":
            import jupyter_mlplat as mlp

            self.mlp = mlp
            for name in ("log_param", "log_metric", "end_run"):
                getattr(mlp, name)  # resolve the lazy re-exports (imports tracking.api)
            import jupyter_mlplat.tracking.registry  # noqa: F401 - what end_run imports
            import jupyter_mlplat.tracking.session  # noqa: F401

            self.store.close()
            # the owner is $JUPYTERHUB_USER on both (the service checks it against the token)
            env = {"MLPLAT_STORE_URL": msg["url"], "JUPYTERHUB_USER": msg["user"]}
            if service:  # what a user server gives its kernels
                env["JUPYTERHUB_API_TOKEN"] = msg["token"]
            else:
                env["MLPLAT_ARTIFACTS_URL"] = msg["artifacts"]
            os.environ.update(env)

    def run(self, r: int, t: dict[str, list[float]]) -> None:
        now = time.perf_counter
        if self.mode == "api":
            mlp = self.mlp
            start = now()
            mlp.log_param("p0", _param_value(r, 0))  # opens the notebook's run
            t["create"].append(now() - start)
            for k in range(1, self.params):
                s = now()
                mlp.log_param(f"p{k}", _param_value(r, k))
                t["param_call"].append(now() - s)
            for i in range(self.metrics):
                s = now()
                mlp.log_metric("loss", _metric_value(r, i), step=i)
                t["call"].append(now() - s)
            s = now()
            mlp.end_run()
            t["finish"].append(now() - s)
            return
        store = self.store
        s = now()
        run_id = store.create_run(pipeline_id=self.pipeline_id, pipeline_version="bench",
                                  notebook_path=PIPELINE[1], parameters={}, options={},
                                  steps=[])
        t["create"].append(now() - s)
        if self.mode == "calls":
            for k in range(self.params):
                s = now()
                store.log_params(run_id, None, {f"p{k}": _param_value(r, k)})
                t["param_call"].append(now() - s)
            for i in range(self.metrics):
                s = now()
                store.log_metrics(run_id, None, [{"name": "loss", "value": _metric_value(r, i),
                                                  "step": i, "timestamp": time.time()}])
                t["call"].append(now() - s)
        else:
            s = now()
            store.log_params(run_id, None,
                             {f"p{k}": _param_value(r, k) for k in range(self.params)})
            stamp = time.time()
            store.log_metrics(run_id, None, [
                {"name": "loss", "value": _metric_value(r, i), "step": i, "timestamp": stamp}
                for i in range(self.metrics)])
            t["call"].append(now() - s)
        s = now()
        store.finish_run(run_id, "succeeded")
        t["finish"].append(now() - s)

    def close(self) -> None:
        if self.mode != "api":
            self.store.close()


class MlflowSide(Client):
    """MLflow's client against ``mlflow server`` (the fluent API in ``api`` mode)."""

    def __init__(self, msg: dict[str, Any]) -> None:
        super().__init__(msg)
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        self.mlflow, self.Metric, self.Param = mlflow, Metric, Param
        self.exp = msg["experiment_id"]
        self.tags = {"mlflow.user": msg["user"]}
        self.client = MlflowClient(tracking_uri=msg["url"])
        self.client.get_experiment(self.exp)  # one call before the clock
        if self.mode == "api":
            mlflow.set_tracking_uri(msg["url"])
            mlflow.set_experiment(experiment_id=self.exp)

    def run(self, r: int, t: dict[str, list[float]]) -> None:
        now = time.perf_counter
        if self.mode == "api":
            mlflow = self.mlflow
            s = now()
            mlflow.start_run(tags=self.tags)
            mlflow.log_param("p0", _param_value(r, 0))
            t["create"].append(now() - s)
            for k in range(1, self.params):
                s = now()
                mlflow.log_param(f"p{k}", _param_value(r, k))
                t["param_call"].append(now() - s)
            for i in range(self.metrics):
                s = now()
                mlflow.log_metric("loss", _metric_value(r, i), step=i)
                t["call"].append(now() - s)
            s = now()
            mlflow.end_run()
            t["finish"].append(now() - s)
            return
        client = self.client
        s = now()
        run_id = client.create_run(self.exp, tags=self.tags).info.run_id
        t["create"].append(now() - s)
        if self.mode == "calls":
            for k in range(self.params):
                s = now()
                client.log_param(run_id, f"p{k}", _param_value(r, k))
                t["param_call"].append(now() - s)
            for i in range(self.metrics):
                s = now()
                client.log_metric(run_id, "loss", _metric_value(r, i),
                                  timestamp=int(time.time() * 1000), step=i)
                t["call"].append(now() - s)
        else:
            s = now()
            stamp = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[self.Metric("loss", _metric_value(r, i), stamp, i)
                         for i in range(self.metrics)],
                params=[self.Param(f"p{k}", _param_value(r, k)) for k in range(self.params)])
            t["call"].append(now() - s)
        s = now()
        client.set_terminated(run_id)
        t["finish"].append(now() - s)


def client_main() -> int:
    """The client loop: ``prepare`` (a side, mode and user), ``go`` (R timed runs), ``exit``."""
    import logging
    import resource
    import traceback
    import warnings

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints goes to this client's log, not the protocol
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.WARNING)

    def answer(data: dict[str, Any]) -> None:
        proto.write(json.dumps(data) + "\n")
        proto.flush()

    client: Client | None = None
    msg: dict[str, Any] = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "exit":
            break
        if op == "prepare":
            msg = cmd
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
                client = None
            try:
                client = (MlflowSide if cmd["side"] == PEER else MlplatClient)(cmd)
                answer({"ok": True})
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which skips
                traceback.print_exc()
                answer({"error": f"{type(exc).__name__}: {exc}"[:2000]})
            continue
        if op != "go" or client is None:
            answer({"error": f"unexpected command {op!r}"})
            continue
        t: dict[str, list[float]] = {"run": [], "create": [], "param_call": [], "call": [],
                                     "finish": []}
        errors: list[str] = []
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        for r in range(int(msg["runs"])):
            s = time.perf_counter()
            try:
                client.run(r, t)
            except Exception as exc:  # noqa: BLE001 - counted: the rows will be missing
                traceback.print_exc()
                errors.append(f"run {r}: {type(exc).__name__}: {exc}"[:1000])
                break
            t["run"].append(time.perf_counter() - s)
        end = time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        answer({"ok": not errors, "start": start, "end": end, "cpu_s": cpu, "errors": errors,
                **t})
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    return 0


# =============================================================================================
# Driver: the cluster, the hub, MLflow's server, the clients, the loads, the tables.


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def tail(text: str, lines: int = 12) -> str:
    kept = [ln for ln in text.strip().splitlines() if not ln.startswith("WARNING: Loc")]
    return "\n".join(kept[-lines:])


def short(text: str, width: int = 110) -> str:
    text = text.strip().splitlines()[-1] if text.strip() else "error"
    return text if len(text) <= width else text[: width - 3] + "..."


def base_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "JUPYTERHUB_"))}
    env.update(THREAD_ENV)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def http_json(method: str, url: str, body: Any = None, token: str | None = None,
              timeout: float = 30) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def stop_group(proc: subprocess.Popen[Any] | None, grace: float = 10) -> None:
    """SIGTERM the process's own session (started with ``start_new_session``), then SIGKILL,
    and its children that moved to sessions of their own."""
    if proc is None:
        return
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def own_cpu(pid: int | None) -> float:
    """CPU seconds of one process (its threads, and its children it has reaped)."""
    import psutil

    if pid is None:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def tree_cpu(pid: int | None) -> float:
    """CPU seconds of a process and all its descendants (live, and reaped ones)."""
    import psutil

    if pid is None:
        return 0.0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0.0
    return sum(own_cpu(p.pid) for p in procs)


# -- PostgreSQL -----------------------------------------------------------------------------------


def pg_module() -> Any:
    """``tests/store/pg.py`` (the test suite's throw-away cluster), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlplat_bench_pg", ROOT / "tests" / "store" /
                                                  "pg.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)  # its dataclasses look their module up in sys.modules
    return module


def pg_query(cluster: Any, database: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                         password=cluster.password, dbname=database, autocommit=True,
                         connect_timeout=10) as conn:
        return list(conn.execute(sql, params).fetchall())


def postmaster_pid(cluster: Any) -> int | None:
    try:
        return int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- JupyterHub with the store service -----------------------------------------------------------


def find_chp() -> str | None:
    for path in (os.environ.get("MLPLAT_HUB_CHP"), str(CHP_LOCAL),
                 shutil.which("configurable-http-proxy")):
        if path and os.access(path, os.X_OK):
            return path
    return None


class Hub:
    """JupyterHub run with ``examples/jupyterhub_config.py`` (no Dask Gateway), as
    ``tests/hub`` runs it; users and their tokens made through its REST API as an admin
    service."""

    def __init__(self, root: Path, store_url: str, ports: list[int]) -> None:
        self.root = root
        (self.port, self.service_port, self.serve_port, self.sched_port, self.api_port,
         self.proxy_api_port) = ports
        self.admin_token = os.urandom(24).hex()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.service_url = f"mlplat+http://127.0.0.1:{self.service_port}/services/mlplat"
        self.store_url = store_url
        self.log = root / "jupyterhub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, chp: str) -> None:
        (self.root / "homes").mkdir(parents=True, exist_ok=True)
        env = base_env(Path(sys.executable).parent)
        env.update({
            "MLPLAT_HUB_STATE": str(self.root / "state"), "MLPLAT_HUB_PORT": str(self.port),
            "MLPLAT_HUB_API_PORT": str(self.api_port),
            "MLPLAT_HUB_PROXY_API": str(self.proxy_api_port),
            "MLPLAT_HUB_SERVICE_PORT": str(self.service_port),
            "MLPLAT_HUB_SERVE_PORT": str(self.serve_port),
            "MLPLAT_HUB_SCHED_PORT": str(self.sched_port),
            "MLPLAT_HUB_HOMES": str(self.root / "homes" / "{username}"), "MLPLAT_HUB_CHP": chp,
            "MLPLAT_HUB_ADMIN_TOKEN": self.admin_token, "MLPLAT_HUB_GATEWAY": "0",
            "MLPLAT_HUB_STORE_URL": self.store_url,
        })
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(EXAMPLE_CONFIG)],
                cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_ready(self, timeout: float) -> str | None:
        """None once the hub and the store service answer (then up to 30 s more for the
        other services, so their start-up does not overlap a load); else why not."""
        assert self.proc is not None
        required = [f"{self.url}hub/api/",
                    f"http://127.0.0.1:{self.service_port}/services/mlplat/api/health"]
        optional = [f"http://127.0.0.1:{self.serve_port}/services/mlplat-serve/health",
                    f"{self.url}services/mlplat-scheduler/health"]
        end = time.monotonic() + timeout
        while required:
            if self.proc.poll() is not None:
                return f"JupyterHub exited {self.proc.returncode}: {short(self.log_tail(), 300)}"
            if http_ok(required[0]):
                required.pop(0)
                continue
            if time.monotonic() > end:
                return f"not ready after {timeout:.0f} s ({required[0]}): " \
                       f"{short(self.log_tail(), 300)}"
            time.sleep(0.2)
        end = time.monotonic() + 30
        while optional and time.monotonic() < end:
            if http_ok(optional[0]):
                optional.pop(0)
            else:
                time.sleep(0.3)
        return None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return http_json(method, f"{self.url}hub/api/{path}", body, token=self.admin_token)

    def new_user(self, name: str) -> str:
        """A new hub user and an API token of theirs (the example's user scopes)."""
        self.api("POST", f"users/{name}")
        return self.api("POST", f"users/{name}/tokens", {"note": "tracking benchmark"})["token"]

    def service_pid(self) -> int | None:
        import psutil

        if self.proc is None:
            return None
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                cmd = child.cmdline()  # [python,] .../jupyter-mlplat service
                for i, arg in enumerate(cmd[:-1]):
                    if arg.endswith("jupyter-mlplat") and cmd[i + 1] == "service":
                        return child.pid
        except psutil.Error:
            return None
        return None

    def log_tail(self) -> str:
        try:
            return tail(self.log.read_text(errors="replace"), 20)
        except OSError:
            return ""

    def stop(self) -> None:
        stop_group(self.proc, grace=30)


# -- MLflow's server ----------------------------------------------------------------------------


def ensure_mlflow(timeout: float) -> tuple[Path | None, str | None, str | None]:
    """MLflow's venv (the registry benchmark's, made by its code when missing) with a
    PostgreSQL driver; (python, URL scheme for it, None) or (None, None, error)."""
    sys.path.insert(0, str(HERE))
    try:
        from registry_log_load import MLFLOW_VENV, ensure_mlflow_venv
    except ImportError as exc:
        return None, None, f"cannot import registry_log_load: {exc}"
    error = ensure_mlflow_venv("mlflow", 300, True)
    if error:
        return None, None, error
    python = MLFLOW_VENV / "bin" / "python"
    env = base_env(python.parent)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # named explicitly: SQLAlchemy 2.1 picks psycopg (3) for a bare postgresql://
    for module, scheme in (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")):
        if subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                          check=False, env=env).returncode == 0:
            return python, scheme, None
    say(f"  pip install psycopg2-binary into {MLFLOW_VENV} ...")
    try:
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "psycopg2-binary"],
                              capture_output=True, text=True, check=False, env=env,
                              timeout=max(timeout, 300))
    except subprocess.TimeoutExpired:
        return None, None, "pip install psycopg2-binary timed out"
    if done.returncode != 0:
        return None, None, "pip install psycopg2-binary failed: " + tail(done.stderr, 10)
    if subprocess.run([str(python), "-c", "import psycopg2"], capture_output=True,
                      check=False, env=env).returncode != 0:
        return None, None, "psycopg2-binary installed but `import psycopg2` fails"
    return python, "postgresql+psycopg2", None


class MlflowServer:
    """``mlflow server`` on a free loopback port, in its own session."""

    def __init__(self, root: Path, python: Path, store_url: str, workers: str,
                 port: int) -> None:
        self.root, self.python, self.store_url, self.workers = root, python, store_url, workers
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "mlflow-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_after: float | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = base_env(self.python.parent)
        env.update(MLFLOW_ENV)
        env["VIRTUAL_ENV"] = str(self.python.parent.parent)
        self.started = time.perf_counter()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(self.python.parent / "mlflow"), "server", "--backend-store-uri",
                 self.store_url, "--artifacts-destination", str(self.root / "mlartifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", self.workers],
                cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_ready(self, timeout: float) -> str | None:
        assert self.proc is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return f"mlflow server exited {self.proc.returncode}: " \
                       f"{short(self.log_tail(), 300)}"
            if http_ok(f"{self.url}/health"):
                self.ready_after = time.perf_counter() - self.started
                return None
            time.sleep(0.3)
        return f"mlflow server not ready after {timeout:.0f} s: {short(self.log_tail(), 300)}"

    def new_experiment(self, name: str) -> str:
        return str(http_json("POST", f"{self.url}/api/2.0/mlflow/experiments/create",
                             {"name": name})["experiment_id"])

    def log_tail(self) -> str:
        try:
            return tail(self.log.read_text(errors="replace"), 20)
        except OSError:
            return ""

    def stop(self) -> None:
        stop_group(self.proc)


# -- the clients ----------------------------------------------------------------------------------


class ClientProc:
    """One client process of this file (``--client``), talking JSON lines over pipes."""

    def __init__(self, python: Path, env: dict[str, str], log: Path) -> None:
        self.python, self.env, self.log_path = python, env, log
        self.broken = False  # no answer, or a dead process: replaced before the next load
        self._log = open(log, "wb")  # noqa: SIM115 - open while the process runs
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--client"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True)

    def send(self, data: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(data) + "\n").encode())
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.broken = True
            return {"error": f"no answer after {timeout:.0f} s"}
        line = self.proc.stdout.readline()
        if not line:
            self.broken = True
            return {"error": f"client exited {self.proc.poll()}: {short(self.log_tail(), 300)}"}
        return json.loads(line)

    def restarted(self) -> ClientProc:
        """A new process in place of this one (the old one stopped)."""
        self.stop()
        return ClientProc(self.python, self.env,
                          self.log_path.with_name(f"{self.log_path.stem}-{time.monotonic_ns()}"
                                                  f"{self.log_path.suffix}"))

    def log_tail(self) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), 15)
        except OSError:
            return ""

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.send({"op": "exit"})
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        stop_group(self.proc, grace=5)
        self._log.close()


# -- statistics ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1), linear between the nearest ranks."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95),
            "p99": pct(values, 0.99), "mean": statistics.fmean(values) if values else None,
            "max": max(values) if values else None}


# -- the benchmark --------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.skipped: dict[str, str] = {}
        self.cluster: Any = None
        self.databases: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        self.hub: Hub | None = None
        self.mlflow: MlflowServer | None = None
        self.mlflow_python: Path | None = None
        self.clients: dict[str, list[ClientProc]] = {}
        self.info: dict[str, Any] = {}
        self.loads = 0

    # -- set-up and tear-down ------------------------------------------------------------------

    def setup(self, sides: list[str]) -> list[str]:
        """Start what the sides need; the sides that can run."""
        args = self.args
        pg = pg_module()
        bindir = pg.find_bindir()
        try:
            import psycopg  # noqa: F401
        except ImportError:
            bindir, why = None, "psycopg is not installed: pip install 'psycopg[binary]'"
        else:
            why = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install " \
                  "postgresql"
        if bindir is None:
            for side in sides:
                self.skipped[side] = why
            return []
        self.cluster = pg.PostgresCluster(bindir)
        try:
            self.cluster.start()
        except Exception as exc:  # noqa: BLE001 - every side needs it: all skipped, reason kept
            for side in sides:
                self.skipped[side] = f"PostgreSQL did not start: {short(str(exc), 300)}"
            return []
        say(f"PostgreSQL {bindir} on 127.0.0.1:{self.cluster.port} ({self.cluster.root})")
        self.info["postgres"] = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True,
            check=False).stdout.strip()
        for side in sides:
            self.databases[side] = self.cluster.create_database()

        jobs: list[tuple[str, Any]] = []
        ports = free_ports(7)  # chosen together: two free_port() calls can return one port
        if "mlplat-service" in sides:
            chp = find_chp()
            if chp is None:
                self.skipped["mlplat-service"] = (
                    "configurable-http-proxy not found (MLPLAT_HUB_CHP, .venv/chp or the PATH): "
                    "`make test-hub` installs it into .venv/chp")
            elif shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) is None:
                self.skipped["mlplat-service"] = "jupyterhub is not installed: pip install " \
                                                 "'jupyter-mlplat[hub]'"
            else:
                url = self.cluster.url(self.databases["mlplat-service"])
                self.hub = Hub(self.work / "hub", url, ports[:6])
                try:
                    self.hub.start(chp)
                    jobs.append(("mlplat-service", self.hub))
                except OSError as exc:
                    self.skipped["mlplat-service"] = f"JupyterHub did not start: {exc}"
        if PEER in sides:
            python, scheme, error = ensure_mlflow(args.timeout)
            if error:
                self.skipped[PEER] = error
            else:
                assert python is not None and scheme is not None
                self.mlflow_python = python
                url = self.cluster.url(self.databases[PEER]).replace("postgresql+psycopg",
                                                                     scheme, 1)
                self.mlflow = MlflowServer(self.work / "mlflow", python, url,
                                           args.mlflow_workers, ports[6])
                try:
                    self.mlflow.start()
                    jobs.append((PEER, self.mlflow))
                except OSError as exc:
                    self.skipped[PEER] = f"mlflow server did not start: {exc}"
        if "sql-floor" in sides:  # the schema made now, not by the first load
            from jupyter_mlplat.store.sql import Store

            self.urls["sql-floor"] = self.cluster.url(self.databases["sql-floor"])
            Store(self.urls["sql-floor"], "bench-setup").close()

        # the clients start (and import) while the servers come up
        users = max(args.users)
        ours = [s for s in sides if s != PEER and s not in self.skipped]
        if ours:
            self.clients["ours"] = [self._client(Path(sys.executable), "ours", i)
                                    for i in range(users)]
        if self.mlflow is not None and PEER not in self.skipped:
            self.clients["mlflow"] = [self._client(self.mlflow_python, "mlflow", i)
                                      for i in range(users)]

        for side, server in jobs:
            error = server.wait_ready(args.timeout)
            if error:
                self.skipped[side] = error
                say(f"  [{side}] failed to start: {error}")
            else:
                say(f"  [{side}] ready")
        if self.hub is not None and "mlplat-service" not in self.skipped:
            self.urls["mlplat-service"] = self.hub.service_url
        if self.mlflow is not None and PEER not in self.skipped:
            self.urls[PEER] = self.mlflow.url
        return [s for s in sides if s not in self.skipped]

    def _client(self, python: Path | None, kind: str, i: int) -> ClientProc:
        assert python is not None
        env = base_env(python.parent)
        if kind == "mlflow":
            env.update(MLFLOW_ENV)
            env["VIRTUAL_ENV"] = str(python.parent.parent)
        data = self.work / f"client-{kind}-{i}"
        data.mkdir()
        env.update(JUPYTER_DATA_DIR=str(data), MLPLAT_LOGS_DIR=str(data / "logs"),
                   HOME=str(data))
        return ClientProc(python, env, self.work / f"client-{kind}-{i}.log")

    def teardown(self) -> None:
        for procs in self.clients.values():
            for proc in procs:
                proc.stop()
        self.clients = {}
        for server in (self.mlflow, self.hub):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        self.mlflow = self.hub = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def busy_cpu(self) -> float:
        """CPU seconds so far of everything this benchmark started."""
        pids = [postmaster_pid(self.cluster) if self.cluster is not None else None]
        pids += [server.proc.pid for server in (self.hub, self.mlflow)
                 if server is not None and server.proc is not None]
        pids += [c.proc.pid for procs in self.clients.values() for c in procs]
        return sum(tree_cpu(pid) for pid in pids)

    def settle(self, timeout: float = 90, quiet: float = 0.1) -> float:
        """Wait until the servers and clients are done starting (MLflow's workers import
        after its first one answers; the hub's services start one by one): until their CPU
        stays under ``quiet`` of a core for two seconds running. Seconds waited."""
        start = time.monotonic()
        calm, last = 0, self.busy_cpu()
        while calm < 2 and time.monotonic() - start < timeout:
            time.sleep(1.0)
            now = self.busy_cpu()
            calm = calm + 1 if now - last < quiet else 0
            last = now
        return time.monotonic() - start

    def idle_cpu(self, sides: list[str], seconds: float = 3.0) -> dict[str, dict[str, float]]:
        """CPU ms per second of each side's servers while nothing is sent (background work:
        the hub's services poll, MLflow's workers idle), to read the per-run figures by."""
        before = {side: self.cpu(side) for side in sides}
        time.sleep(seconds)
        after = {side: self.cpu(side) for side in sides}
        return {side: {k: (after[side][k] - before[side][k]) * 1000 / seconds
                       for k in before[side]} for side in sides}

    # -- one load ------------------------------------------------------------------------------

    def cpu(self, side: str) -> dict[str, float]:
        pg = tree_cpu(postmaster_pid(self.cluster)) if self.cluster is not None else 0.0
        if side == "mlplat-service" and self.hub is not None and self.hub.proc is not None:
            service = own_cpu(self.hub.service_pid())
            return {"server": service, "hub": tree_cpu(self.hub.proc.pid) - service, "pg": pg}
        if side == PEER and self.mlflow is not None and self.mlflow.proc is not None:
            return {"server": tree_cpu(self.mlflow.proc.pid), "pg": pg}
        return {"pg": pg}

    def load(self, side: str, mode: str, users: int) -> dict[str, Any]:
        """U clients of ``side`` in ``mode`` at once; the figures and the row counts."""
        args = self.args
        self.loads += 1
        tag = f"l{self.loads}"
        procs = self.clients["mlflow" if side == PEER else "ours"][:users]
        out: dict[str, Any] = {"side": side, "mode": mode, "users": users, "runs": args.runs,
                               "params": args.params, "metrics": args.metrics, "errors": []}
        names = [f"bench-{tag}-u{i}" for i in range(users)]
        base = {"op": "prepare", "side": side, "mode": mode, "runs": args.runs,
                "params": args.params, "metrics": args.metrics, "url": self.urls[side]}
        try:
            if side == "mlplat-service":
                assert self.hub is not None
                cmds = [{**base, "user": n, "token": self.hub.new_user(n)} for n in names]
            elif side == PEER:
                assert self.mlflow is not None
                exp = self.mlflow.new_experiment(f"tracking-bench-{tag}")
                out["experiment_id"] = exp
                cmds = [{**base, "user": n, "experiment_id": exp} for n in names]
            else:
                cmds = [{**base, "user": n, "artifacts": str(self.work / "floor-artifacts")}
                        for n in names]
        except (OSError, urllib.error.URLError, KeyError, ValueError) as exc:
            out["errors"].append(f"setting up the users: {type(exc).__name__}: {exc}")
            return out
        try:
            for proc, cmd in zip(procs, cmds):
                proc.send(cmd)
            for i, proc in enumerate(procs):
                ready = proc.recv(args.timeout)
                if "error" in ready:
                    out["errors"].append(f"client {i} prepare: {ready['error']}")
            if out["errors"]:
                return out
            load_avg = os.getloadavg()[0]
            cpu0 = self.cpu(side)
            for proc in procs:
                proc.send({"op": "go"})
            results = [proc.recv(args.timeout) for proc in procs]
            cpu1 = self.cpu(side)
        except OSError as exc:  # a client died: its pipe is closed
            out["errors"].append(f"talking to a client: {type(exc).__name__}: {exc}")
            for proc in procs:
                proc.broken = True
            return out
        finally:  # clients that went wrong are replaced, so the next load starts clean
            kind = "mlflow" if side == PEER else "ours"
            self.clients[kind] = [p.restarted() if p.broken else p for p in self.clients[kind]]
        for i, res in enumerate(results):
            if "error" in res:
                out["errors"].append(f"client {i}: {res['error']}")
            out["errors"] += [f"client {i}: {e}" for e in res.get("errors", [])]
        good = [r for r in results if "start" in r]
        if not good:
            return out
        wall = max(r["end"] for r in good) - min(r["start"] for r in good)
        done = sum(len(r["run"]) for r in good)
        every = {key: [x for r in good for x in r[key]]
                 for key in ("run", "create", "param_call", "call", "finish")}
        total = users * args.runs
        cpu = {key: max(cpu1[key] - cpu0[key], 0.0) * 1000 / max(done, 1) for key in cpu0}
        cpu["clients"] = sum(r["cpu_s"] for r in good) * 1000 / max(done, 1)
        out.update({
            "wall_s": wall, "runs_done": done, "runs_per_s": done / wall if wall > 0 else None,
            "run_ms": scale(summary(every["run"])), "call_ms": scale(summary(every["call"])),
            "create_ms": scale(summary(every["create"])),
            "param_call_ms": scale(summary(every["param_call"])),
            "finish_ms": scale(summary(every["finish"])),
            "cpu_ms_per_run": cpu, "loadavg_1m": load_avg,
            "run_samples_ms": [round(x * 1000, 3) for x in every["run"]],
        })
        out["rows"] = self.count(side, names, out.get("experiment_id"))
        want = {"runs": total, "finished": total, "params": total * args.params,
                "metrics": total * args.metrics}
        out["rows_expected"] = want
        out["rows_ok"] = out["rows"] == want
        return out

    def count(self, side: str, owners: list[str], experiment: str | None) -> dict[str, Any]:
        """What the load left in the side's database (as the cluster's superuser)."""
        db = self.databases[side]
        try:
            if side == PEER:
                runs = pg_query(self.cluster, db, "SELECT count(*), count(*) FILTER (WHERE "
                                "status = 'FINISHED') FROM runs WHERE experiment_id = %s",
                                (int(experiment or 0),))[0]
                params = pg_query(self.cluster, db, "SELECT count(*) FROM params p JOIN runs r "
                                  "ON p.run_uuid = r.run_uuid WHERE r.experiment_id = %s",
                                  (int(experiment or 0),))[0][0]
                metrics = pg_query(self.cluster, db, "SELECT count(*) FROM metrics m JOIN runs "
                                   "r ON m.run_uuid = r.run_uuid WHERE r.experiment_id = %s",
                                   (int(experiment or 0),))[0][0]
            else:
                runs = pg_query(self.cluster, db, "SELECT count(*), count(*) FILTER (WHERE "
                                "status = 'succeeded') FROM runs WHERE owner = ANY(%s)",
                                (owners,))[0]
                params = pg_query(self.cluster, db, "SELECT count(*) FROM params WHERE owner = "
                                  "ANY(%s)", (owners,))[0][0]
                metrics = pg_query(self.cluster, db, "SELECT count(*) FROM metrics WHERE owner "
                                   "= ANY(%s)", (owners,))[0][0]
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"runs": runs[0], "finished": runs[1], "params": params, "metrics": metrics}


def scale(s: dict[str, Any]) -> dict[str, Any]:
    """Seconds -> milliseconds (n stays)."""
    return {k: (v * 1000 if isinstance(v, float) and k != "n" else v) for k, v in s.items()}


# -- the tables ---------------------------------------------------------------------------------


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def rows_cell(res: dict[str, Any]) -> str:
    rows, want = res.get("rows"), res.get("rows_expected")
    if not rows or not want:
        return "-"
    if "error" in rows:
        return f"? {short(rows['error'], 40)}"
    if res.get("rows_ok"):
        return f"ok {rows['runs']}/{rows['metrics']}"
    return "LOST " + ", ".join(f"{k} {rows.get(k)}/{want[k]}" for k in want
                               if rows.get(k) != want[k])


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    peers = {(r["users"], r["mode"]): r for r in results if r["side"] == PEER}
    headers = ["U", "mode", "side", "runs/s", "x MLflow", "run p50", "run p95", "call p50",
               "call p95", "CPU/run: server", "hub", "PG", "clients", "rows (runs/points)"]
    lines = []
    for r in results:
        peer = peers.get((r["users"], r["mode"]))
        cpu = r.get("cpu_ms_per_run") or {}
        if "runs_per_s" not in r:
            lines.append([str(r["users"]), r["mode"], SHORT[r["side"]], "-", "-", "-", "-", "-",
                          "-", "-", "-", "-", "-", short("; ".join(r["errors"]) or "failed", 60)])
            continue
        ratio = "" if r["side"] == PEER else fmt_ratio(r["runs_per_s"],
                                                       (peer or {}).get("runs_per_s"))
        lines.append([
            str(r["users"]), r["mode"], SHORT[r["side"]], fmt_num(r["runs_per_s"]), ratio,
            fmt_ms(r["run_ms"]["p50"]), fmt_ms(r["run_ms"]["p95"]),
            fmt_ms(r["call_ms"]["p50"]), fmt_ms(r["call_ms"]["p95"]),
            fmt_ms(cpu.get("server")), fmt_ms(cpu.get("hub")), fmt_ms(cpu.get("pg")),
            fmt_ms(cpu.get("clients")),
            rows_cell(r) + (" (errors)" if r["errors"] else ""),
        ])
    _report.print_table(f"{args.runs} runs per user, {args.params} params + {args.metrics} metric "
                        "points per run; latencies and CPU in ms", headers, lines, first_left=3,
                        min_width=160)
    say(LEGEND)


LEGEND = """\
runs/s: U*R runs / (first client's start .. last client's end); x MLflow: runs/s against
  mlflow server's in the same mode and U (above 1: faster). run: one whole run (create, log,
  finish). call: api/calls = one metric call of one point; batch = all the logging of a run
  (mlplat: log_params + log_metrics, 2 calls; MLflow: one log_batch).
api: mlp.log_param/log_metric/end_run (a store opened per run) vs mlflow.start_run/log_*/
  end_run; calls: RemoteStore/Store create_run, log_params x P, log_metrics x M (1 point),
  finish_run vs MlflowClient create_run, log_param x P, log_metric x M, set_terminated.
CPU/run: server = the store service process (mlplat) / mlflow server's processes; hub = the
  rest of the hub (hub, proxy, serve and scheduler services); PG = the cluster; clients = the
  U client processes. rows: ok = every run (finished), param and metric point is in the store."""


# -- main ---------------------------------------------------------------------------------------


def versions(python: Path | None, *dists: str) -> dict[str, str | None]:
    if python is None:
        return {}
    code = ("import json, sys; from importlib.metadata import version, PackageNotFoundError\n"
            "def v(d):\n  try: return version(d)\n  except PackageNotFoundError: return None\n"
            "print(json.dumps({d: v(d) for d in sys.argv[1:]}))")
    done = subprocess.run([str(python), "-c", code, *dists], capture_output=True, text=True,
                          check=False)
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1,4",
                        help="comma-separated numbers of concurrent users (default 1,4)")
    parser.add_argument("--runs", type=int, default=20, help="runs per user (default 20)")
    parser.add_argument("--params", type=int, default=5, help="params per run (default 5)")
    parser.add_argument("--metrics", type=int, default=50,
                        help="metric points per run (default 50)")
    parser.add_argument("--quick", action="store_true",
                        help="--users 2 --runs 5 --metrics 20 (unless given)")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"comma-separated subset of {','.join(SIDES)} (default: all)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated subset of {','.join(MODES)} (default: all)")
    parser.add_argument("--mlflow-workers", default="1",
                        help="mlflow server --workers (default 1, like the store service; "
                        "MLflow's own default is 4, which stalls ~50 ms a call on loopback)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds for a server to start, or one load to finish")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="raw results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    raw = argv if argv is not None else sys.argv[1:]
    args = parser.parse_args(argv)
    if args.client:
        return args
    if args.quick:
        given = {a.split("=", 1)[0] for a in raw}
        if "--users" not in given:
            args.users = "2"
        if "--runs" not in given:
            args.runs = 5
        if "--metrics" not in given:
            args.metrics = 20
    try:
        args.users = sorted({int(u) for u in args.users.split(",") if u.strip()})
    except ValueError:
        parser.error(f"--users takes comma-separated numbers; got {args.users!r}")
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = (set(args.sides) - set(SIDES)) | (set(args.modes) - set(MODES))
    if bad:
        parser.error(f"unknown sides or modes: {sorted(bad)} (sides: {', '.join(SIDES)}; "
                     f"modes: {', '.join(MODES)})")
    if not args.users or min(args.users) < 1 or args.runs < 1 or args.params < 1 \
            or args.metrics < 1:
        parser.error("--users, --runs, --params and --metrics must be >= 1")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main()
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="mlplat-bench-tracking-"))
    say(f"work folder: {work}")
    sides = [s for s in SIDES if s in args.sides]
    bench = Bench(args, work)
    results: list[dict[str, Any]] = []
    interrupted = False
    try:
        running = bench.setup(sides)
        say(f"set up in {time.perf_counter() - started:.0f} s")
        if running:
            waited = bench.settle(min(args.timeout, 90))
            say(f"  servers and clients idle after {waited:.0f} s more")
            bench.info["idle_cpu_ms_per_s"] = idle = bench.idle_cpu(running)
            say("  idle CPU ms/s: " + "; ".join(
                f"{side} " + ", ".join(f"{k} {v:.0f}" for k, v in idle[side].items())
                for side in running))
        group = 0
        for users in args.users:
            for mode in args.modes:
                order = running[group % len(running):] + running[:group % len(running)] \
                    if running else []
                group += 1
                for side in order:
                    res = bench.load(side, mode, users)
                    results.append(res)
                    if "runs_per_s" in res:
                        say(f"  U={users} {mode:5} {side:14} {res['runs_per_s']:7.1f} runs/s, run "
                            f"p50 {fmt_ms(res['run_ms']['p50'])} ms, call p50 "
                            f"{fmt_ms(res['call_ms']['p50'])} ms, rows {rows_cell(res)} "
                            f"({time.perf_counter() - started:.0f} s)")
                    for error in res["errors"][:3]:
                        say(f"  U={users} {mode} {side}: {short(error, 200)}")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping what was started")
    finally:
        # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        info = dict(bench.info)
        info["versions"] = {
            "ours": versions(Path(sys.executable), "jupyter-mlplat", "jupyterhub", "sqlalchemy",
                             "psycopg", "tornado", "requests"),
            "mlflow": versions(bench.mlflow_python, "mlflow", "sqlalchemy", "psycopg2-binary",
                               "psycopg", "uvicorn", "gunicorn", "requests"),
        }
        bench.teardown()
    order = {s: i for i, s in enumerate(SIDES)}
    results.sort(key=lambda r: (r["users"], list(MODES).index(r["mode"]), order[r["side"]]))
    if results:
        print_table(results, args)
    for side, why in bench.skipped.items():
        say(f"{SIDES[side]}: skipped: {short(why, 300)}")
    say(f"1-minute load average {load_at_start:.2f} at the start (the benchmark's own processes "
        "count during the loads)")
    if load_at_start > (os.cpu_count() or 1) * 0.5:
        say(f"note: the machine was busy before this benchmark started ({load_at_start:.1f} on "
            f"{os.cpu_count()} CPUs); rerun when quiet")
    result = {
        "benchmark": "tracking_multiuser",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "users": args.users, "runs": args.runs, "params": args.params, "metrics": args.metrics,
        "sides": sides, "modes": args.modes, "mlflow_workers": args.mlflow_workers,
        "machine": _report.machine(), "commit": _report.git_commit(), "thread_env": THREAD_ENV,
        "mlflow_env": MLFLOW_ENV, "skipped": bench.skipped, "interrupted": interrupted,
        "loadavg_1m_at_start": load_at_start, "total_seconds": time.perf_counter() - started,
        **info, "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"raw results: {args.output} (total {result['total_seconds']:.0f} s)")
    if args.keep:
        say(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
