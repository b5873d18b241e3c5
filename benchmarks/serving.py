"""Side-by-side benchmark: online inference over HTTP, jupyter-mlplat's serve process against
MLflow's and MLServer's servers and a minimal tornado handler, in one run.

Two models, fitted once here on ``make_classification(5000, 20 features)``: ``lr`` =
``Pipeline(StandardScaler, LogisticRegression)`` and ``rf`` = ``RandomForestClassifier(100 trees,
max_depth=8)``. Every request is one row as JSON; the peers and the tornado handler answer with
``predict_proba`` of it, jupyter-mlplat with ``predict`` (what it serves; the same cost here).
Each server is pinned to core 0 (``taskset -c 0``), the load generator to core 1: ``wrk`` (Debian's
package) when it is installed, otherwise an asyncio client of this file (raw HTTP/1.1 keep-alive
over asyncio streams). One BLAS/OpenMP thread everywhere.

The sides (a server process each, all started once and left running, idle but for the side
being measured):

- ``mlplat``: ``jupyter mlplat serve`` on a fresh store where both models were registered and
  deployed (``DeployService.deploy(..., force=True, public=True)``); V2 ``POST
  /v2/models/NAME/infer``. ``mlplat_inv`` / ``mlplat_df``: the same process, its
  MLflow-compatible ``POST /endpoints/NAME/invocations`` with ``{"inputs": [[...]]}`` /
  ``{"dataframe_split": ...}``.
- ``mlflow``: ``mlflow models serve --env-manager local -w 1`` (MLflow 3.17, uvicorn), one server
  per model (MLflow serves one model a process), ``pyfunc_predict_fn="predict_proba"``,
  ``{"inputs": [[...]]}``; its own venv ``benchmarks/.venv-mlflow`` (made by
  ``registry_log_load.py``'s code when missing).
- ``mlserver``: MLServer with its scikit-learn runtime (``mlserver-sklearn``), both models in
  one server, ``parallel_workers: 0`` (inference in the server process: with one core a worker
  process only adds IPC), V2 with ``outputs: [{"name": "predict_proba"}]``; its own venv
  ``benchmarks/.venv-mlserver`` (``pip install mlserver mlserver-sklearn`` + our scikit-learn and
  numpy pins), made on first use.
- ``tornado``: a minimal hand-written tornado app in our venv: json-decode, ``predict_proba`` on
  the row, json-encode; both models in one process (the memory baseline).

Measured: requests/s and p50/p99 latency at 1 and 32 connections, several rounds with the sides
alternating (the order rotates each round), medians reported; non-2xx answers counted (must be
0); each server's resident memory (its process tree, psutil) after warm-up with both models
loaded, and its CPU time per request; in-process ``predict_proba`` on core 0 for one row and per
row in a batch of 64. Each side's answer for one row is checked against the in-memory model's.
This is a measurement, never a pass/fail test. Raw results: ``benchmarks/results/serving.json``.

Usage::

    python benchmarks/serving.py                    # 3 rounds x 3 s, ~5 min (+30 s per venv to make)
    python benchmarks/serving.py --quick            # 1 round x 2 s, ~1.5 min
    python benchmarks/serving.py --sides mlplat,tornado --models rf --conns 32
    python benchmarks/serving.py --loadgen python   # the asyncio client even where wrk exists
"""

from __future__ import annotations

# Only the standard library at module level: the same file runs helpers in the peers' venvs.
import argparse
import datetime as dt
import json
import os
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

from _report import git_commit, machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = HERE / "results" / "serving.json"
MLSERVER_VENV = HERE / ".venv-mlserver"
SERVER_CPU, CLIENT_CPU = "0", "1"
N_ROWS, N_FEATURES, BATCH = 5_000, 20, 64
OWNER = "bench"

SIDES: dict[str, str] = {
    "mlplat": "jupyter mlplat serve, V2 /v2/models/M/infer",
    "mlplat_inv": "jupyter mlplat serve, /endpoints/M/invocations {inputs}",
    "mlplat_df": "jupyter mlplat serve, /endpoints/M/invocations {dataframe_split}",
    "mlflow": "mlflow models serve -w 1 (one per model), /invocations {inputs}",
    "mlserver": "MLServer + mlserver-sklearn, V2 infer, predict_proba",
    "tornado": "minimal tornado handler, json + predict_proba",
}
SHORT = {
    "mlplat": "**mlplat V2**",
    "mlplat_inv": "mlplat /invocations inputs",
    "mlplat_df": "mlplat /invocations dataframe_split",
    "mlflow": "MLflow serve",
    "mlserver": "MLServer sklearn",
    "tornado": "minimal tornado",
}
PEERS = ("mlflow", "mlserver")  # the targets compare with the best of these
MODELS: dict[str, str] = {
    "lr": "Pipeline(StandardScaler, LogisticRegression)",
    "rf": "RandomForestClassifier(n_estimators=100, max_depth=8)",
}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}
# Targets of the issue, at 32 connections and 1 connection.
TARGET_LR_X, TARGET_RF_X, TARGET_P50_SLACK_MS, TARGET_MEM_X = 4.0, 10.0, 0.35, 1.2


def say(message: str) -> None:
    print(message, flush=True)


# =============================================================================================
# Helpers: each runs as its own process (some in the peers' venvs). Imports inside functions.


def helper_fit(args: argparse.Namespace) -> int:
    """Fit both models; pickle them, the request row and the expected probabilities."""
    import pickle

    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=N_ROWS, n_features=N_FEATURES, random_state=0)
    models = {
        "lr": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=8, n_jobs=1, random_state=0),
    }
    fits = {}
    for key, est in models.items():
        start = time.perf_counter()
        est.fit(X, y)
        fits[key] = time.perf_counter() - start
    work = Path(args.work)
    with open(work / "models.pkl", "wb") as f:
        pickle.dump(models, f, protocol=5)
    np.save(work / "X.npy", X)
    row = X[:1]
    data = {
        "row": [float(v) for v in row[0]],  # repr round-trips: every side sees the same floats
        "expected": {k: [float(p) for p in m.predict_proba(row)[0]] for k, m in models.items()},
        "labels": {k: [float(v) for v in m.predict(row)] for k, m in models.items()},
        "fit_seconds": fits,
    }
    (work / "data.json").write_text(json.dumps(data))
    Path(args.out).write_text(json.dumps({"fit_seconds": fits}))
    return 0


def helper_inproc(args: argparse.Namespace) -> int:
    """In-process ``predict_proba`` and ``predict``: one row, and a batch of 64 (per row);
    medians, seconds."""
    import pickle

    import numpy as np

    work = Path(args.work)
    with open(work / "models.pkl", "rb") as f:
        models = pickle.load(f)
    X = np.load(work / "X.npy")
    out: dict[str, Any] = {}
    for key, model in models.items():
        one, batch = np.ascontiguousarray(X[:1]), np.ascontiguousarray(X[:BATCH])
        out[key] = {}
        for method in ("predict_proba", "predict"):
            fn = getattr(model, method)
            for _ in range(20):
                fn(one)
                fn(batch)

            def timed(x: Any, budget: float, fn: Any = fn) -> list[float]:
                samples: list[float] = []
                end = time.perf_counter() + budget
                while time.perf_counter() < end or len(samples) < 20:
                    t0 = time.perf_counter()
                    fn(x)
                    samples.append(time.perf_counter() - t0)
                return samples

            ones, batches = timed(one, args.budget / 2), timed(batch, args.budget / 2)
            suffix = "" if method == "predict_proba" else "_predict"
            out[key].update({
                f"one_row{suffix}": statistics.median(ones),
                f"batch64_per_row{suffix}": statistics.median(batches) / BATCH,
                f"batch64{suffix}": statistics.median(batches),
                f"n{suffix}": [len(ones), len(batches)],
            })
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


def helper_prep_mlplat(args: argparse.Namespace) -> int:
    """Register + deploy both models on the store named by MLPLAT_* (set by the driver)."""
    import logging
    import pickle
    import warnings
    from dataclasses import asdict

    import numpy as np

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from jupyter_mlplat.config import MLPlat
    from jupyter_mlplat.serving.deploy import DeployService
    from jupyter_mlplat.tracking.flavors import save_model

    work = Path(args.work)
    with open(work / "models.pkl", "rb") as f:
        models = pickle.load(f)
    X = np.load(work / "X.npy")
    svc = DeployService(MLPlat())
    out: dict[str, Any] = {}
    for key in args.models.split(","):
        saved = save_model(models[key], name=key, sample_input=X[:5], store=svc.registry.artifacts)
        mv = svc.registry.register(key, asdict(saved), run_id=None)
        svc.deploy(f"{key}@{mv.version}", force=True, reason="benchmark", public=True)
        art = asdict(saved).get("artifact") or {}
        out[key] = {"version": int(mv.version), "format": art.get("format"),
                    "trusted_only": art.get("trusted_only")}
    out["versions_installed"] = _versions("jupyter-mlplat", "scikit-learn", "numpy", "tornado")
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


def helper_prep_mlflow(args: argparse.Namespace) -> int:
    """MLflow model folders (cloudpickle, predict_proba as the pyfunc predict) in .venv-mlflow."""
    import logging
    import pickle
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import mlflow.sklearn
    from mlflow.models import infer_signature

    work = Path(args.work)
    with open(work / "models.pkl", "rb") as f:
        models = pickle.load(f)
    X = np.load(work / "X.npy")[:5]
    reqs = mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)
    for key in args.models.split(","):
        model = models[key]
        mlflow.sklearn.save_model(
            model, path=str(work / "mlflow" / key), serialization_format="cloudpickle",
            signature=infer_signature(X, model.predict_proba(X)), pip_requirements=reqs,
            pyfunc_predict_fn="predict_proba",
        )
    out = {"versions_installed": _versions("mlflow", "scikit-learn", "numpy", "uvicorn",
                                           "fastapi")}
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


def helper_prep_mlserver(args: argparse.Namespace) -> int:
    """An MLServer model repository (joblib files + model-settings.json) in .venv-mlserver."""
    import pickle

    import joblib

    work = Path(args.work)
    with open(work / "models.pkl", "rb") as f:
        models = pickle.load(f)
    repo = work / "mlserver"
    for key in args.models.split(","):
        (repo / key).mkdir(parents=True, exist_ok=True)
        joblib.dump(models[key], repo / key / "model.joblib")
        (repo / key / "model-settings.json").write_text(json.dumps({
            "name": key,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "1"},
        }))
    (repo / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1",
        "http_port": args.ports[0],
        "grpc_port": args.ports[1],
        "metrics_port": args.ports[2],
        "parallel_workers": 0,
    }))
    out = {"versions_installed": _versions("mlserver", "mlserver-sklearn", "scikit-learn",
                                           "numpy", "uvicorn", "fastapi")}
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


def helper_tornado(args: argparse.Namespace) -> int:
    """The minimal hand-written server: both models, json + predict_proba, nothing else."""
    import asyncio
    import pickle

    import numpy as np
    import tornado.web

    with open(Path(args.work) / "models.pkl", "rb") as f:
        models = pickle.load(f)

    class Predict(tornado.web.RequestHandler):
        def post(self, name: str) -> None:
            X = np.asarray(json.loads(self.request.body)["inputs"], dtype=np.float64)
            proba = models[name].predict_proba(X)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"predictions": proba.tolist()}))

    class Health(tornado.web.RequestHandler):
        def get(self) -> None:
            self.finish("ok")

    async def serve() -> None:
        app = tornado.web.Application([(r"/predict/(\w+)", Predict), (r"/health", Health)])
        app.listen(args.port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(serve())
    return 0


def helper_client(args: argparse.Namespace) -> int:
    """Load generator: ``conns`` keep-alive HTTP/1.1 connections, each sending the request again
    as soon as the answer is in; ``warmup`` s unmeasured, then ``duration`` s measured."""
    import asyncio

    body = Path(args.body_file).read_bytes()
    request = (
        f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    counts = {"non2xx": 0, "errors": 0, "requests": 0}

    async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        i = lower.find(b"\r\ncontent-length:")
        if i >= 0:
            await reader.readexactly(int(lower[i + 17: lower.index(b"\r\n", i + 2)]))
        elif b"\r\ntransfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        return status, b"\r\nconnection: close" in lower

    async def connection(start: float, measure_from: float, end: float) -> None:
        reader = writer = None
        while time.perf_counter() < end:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                t0 = time.perf_counter()
                writer.write(request)
                status, close = await read_response(reader)
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= end:
                    latencies.append(t1 - t0)
                    counts["requests"] += 1
                    if not 200 <= status < 300:
                        counts["non2xx"] += 1
                if close:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError):
                counts["errors"] += 1
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    async def run() -> float:
        start = time.perf_counter()
        measure_from = start + args.warmup
        end = measure_from + args.duration
        await asyncio.gather(*(connection(start, measure_from, end) for _ in range(args.conns)))
        return args.duration

    duration = asyncio.run(run())
    out = {
        "requests": counts["requests"],
        "duration_s": duration,
        "rps": counts["requests"] / duration,
        "p50_ms": _pct(latencies, 50) * 1e3 if latencies else None,
        "p90_ms": _pct(latencies, 90) * 1e3 if latencies else None,
        "p99_ms": _pct(latencies, 99) * 1e3 if latencies else None,
        "non2xx": counts["non2xx"],
        "errors": counts["errors"],
    }
    Path(args.out).write_text(json.dumps(out))
    return 0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _versions(*dists: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for dist in dists:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = None
    return found


HELPERS = {
    "fit": helper_fit,
    "inproc": helper_inproc,
    "prep-mlplat": helper_prep_mlplat,
    "prep-mlflow": helper_prep_mlflow,
    "prep-mlserver": helper_prep_mlserver,
    "tornado": helper_tornado,
    "client": helper_client,
}


# =============================================================================================
# Driver: venvs, servers, requests, load, tables.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(bin_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(THREAD_ENV)
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for key in [k for k in env if k.startswith("MLPLAT_")]:
        env.pop(key)
    return env


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


def run_helper(python: Path, name: str, env: dict[str, str], work: Path, timeout: float,
               *extra: str, cpu: str | None = None) -> dict[str, Any]:
    """Run one helper of this file; its JSON, or {"error": ...}."""
    out = work / f"{name}-{time.monotonic_ns()}.json"
    cmd = [str(python), str(Path(__file__).resolve()), "--helper", name, "--work", str(work),
           "--out", str(out), *extra]
    if cpu is not None:
        cmd = pinned(cpu, cmd)
    try:
        done = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"{name}: timed out after {timeout:.0f} s"}
    if done.returncode != 0 or not out.exists():
        return {"error": f"{name}: exit {done.returncode}: {tail(done.stderr or done.stdout)}"}
    return json.loads(out.read_text())


def tail(text: str, lines: int = 12) -> str:
    kept = [ln for ln in text.strip().splitlines() if not ln.startswith("WARNING: Loc")]
    return "\n".join(kept[-lines:])


def short(text: str, width: int = 110) -> str:
    text = text.strip().splitlines()[-1] if text.strip() else "error"
    return text if len(text) <= width else text[: width - 3] + "..."


def ensure_mlserver_venv(spec: str, timeout: float) -> str | None:
    """Create ``benchmarks/.venv-mlserver`` (MLServer + its sklearn runtime + our scikit-learn
    and numpy pins), or reuse it; an error, or None."""
    from importlib.metadata import version

    pins = [f"scikit-learn=={version('scikit-learn')}", f"numpy=={version('numpy')}"]
    python = MLSERVER_VENV / "bin" / "python"
    check = [
        str(python), "-c",
        "import mlserver, mlserver_sklearn, joblib; from importlib.metadata import version as v;"
        f" import sys; want = {pins!r}; "
        "sys.exit(1 if [p for p in want if v(p.split('==')[0]) != p.split('==')[1]] else 0)",
    ]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return None
    env = base_env()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if not python.exists():
        say(f"creating {MLSERVER_VENV} ...")
        made = subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)],
                              capture_output=True, text=True, check=False, env=env)
        if made.returncode != 0:
            return f"python -m venv failed: {tail(made.stderr)}"
    say(f"  pip install {spec} {' '.join(pins)} (~30 s) ...")
    try:
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *spec.split(), *pins],
                              capture_output=True, text=True, check=False, env=env,
                              timeout=max(timeout, 600))
    except subprocess.TimeoutExpired:
        return "pip install timed out"
    if done.returncode != 0:
        return "pip install failed: " + tail(done.stderr, 15)
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        return "MLServer installed but its imports (or the version pins) fail"
    return None


def ensure_mlflow() -> str | None:
    """``benchmarks/.venv-mlflow``, made by the registry benchmark's code when missing."""
    sys.path.insert(0, str(HERE))
    try:
        from registry_log_load import ensure_mlflow_venv
    except ImportError as exc:
        return f"cannot import registry_log_load: {exc}"
    return ensure_mlflow_venv("mlflow", 300, True)


class Server:
    """One server process, pinned to SERVER_CPU, in its own session (stopped as a group)."""

    def __init__(self, key: str, cmd: list[str], env: dict[str, str], cwd: Path, port: int,
                 health: str, log: Path) -> None:
        self.key, self.cmd, self.env, self.cwd = key, cmd, env, cwd
        self.port, self.health, self.log_path = port, health, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_after: float | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - open while the server runs
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(pinned(SERVER_CPU, self.cmd), env=self.env, cwd=self.cwd,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float) -> str | None:
        """None once GET health answers 200; else why not."""
        assert self.proc is not None
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if self.proc.poll() is not None:
                return f"exited {self.proc.returncode}: {short(self.log_tail(), 300)}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.health}",
                                            timeout=2) as resp:
                    if resp.status == 200:
                        self.ready_after = time.perf_counter() - self.started
                        return None
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        return f"not ready after {timeout:.0f} s: {short(self.log_tail(), 300)}"

    def log_tail(self) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), 20)
        except OSError:
            return ""

    def processes(self) -> list[Any]:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> dict[str, Any]:
        procs = self.processes()
        rss = uss = 0
        for p in procs:
            try:
                info = p.memory_full_info()
                rss, uss = rss + info.rss, uss + info.uss
            except Exception:  # noqa: BLE001 - a child that just went away
                pass
        return {"rss": rss, "uss": uss, "processes": len(procs)}

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except Exception:  # noqa: BLE001
                pass
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.log.close()


def http(method: str, url: str, body: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def numbers(value: Any) -> list[float]:
    """All numbers in a JSON answer, depth first (the probabilities, in every side's format)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        for key in ("outputs", "predictions", "data"):
            if key in value:
                return numbers(value[key])
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return []


class Setup:
    """The servers, and for each (side, model) the request to send."""

    def __init__(self, work: Path, data: dict[str, Any], args: argparse.Namespace) -> None:
        self.work, self.data, self.args = work, data, args
        self.servers: dict[str, Server] = {}
        self.skipped: dict[str, str] = {}
        self.requests: dict[tuple[str, str], dict[str, Any]] = {}
        self.info: dict[str, Any] = {}

    # -- per side ------------------------------------------------------------------------------

    def prepare(self, sides: list[str], models: list[str]) -> None:
        want = set(sides)
        args, work = self.args, self.work
        jobs: list[tuple[str, Server]] = []
        if want & {"mlplat", "mlplat_inv", "mlplat_df"}:
            error = self._prepare_mlplat(models)
            if error:
                for s in ("mlplat", "mlplat_inv", "mlplat_df"):
                    self.skipped[s] = error
            else:
                jobs.append(("mlplat", self.servers["mlplat"]))
        if "mlflow" in want:
            error = ensure_mlflow() or self._prepare_mlflow(models)
            if error:
                self.skipped["mlflow"] = error
            else:
                jobs += [(f"mlflow-{m}", self.servers[f"mlflow-{m}"]) for m in models]
        if "mlserver" in want:
            error = ensure_mlserver_venv(args.mlserver_spec, args.timeout) or \
                self._prepare_mlserver(models)
            if error:
                self.skipped["mlserver"] = error
            else:
                jobs.append(("mlserver", self.servers["mlserver"]))
        if "tornado" in want:
            port = free_port()
            self.servers["tornado"] = Server(
                "tornado", [sys.executable, str(Path(__file__).resolve()), "--helper", "tornado",
                            "--work", str(work), "--port", str(port)],
                base_env(), work, port, "/health", work / "tornado.log")
            jobs.append(("tornado", self.servers["tornado"]))
        for _, server in jobs:  # start them all, then wait: they load in parallel
            server.start()
        for key, server in jobs:
            error = server.wait_ready(args.timeout)
            if error:
                say(f"  [{key}] failed to start: {error}")
                group = "mlflow" if key.startswith("mlflow") else key
                for s in sides:
                    if s == group or (group == "mlplat" and s.startswith("mlplat")):
                        self.skipped.setdefault(s, f"{key} failed to start: {error}")
            else:
                say(f"  [{key}] ready after {server.ready_after:.1f} s (port {server.port})")
        for side in sides:
            if side in self.skipped:
                continue
            for model in models:
                self.requests[(side, model)] = self.request_for(side, model)

    def _prepare_mlplat(self, models: list[str]) -> str | None:
        work = self.work
        help_run = subprocess.run(
            [sys.executable, "-m", "jupyter_mlplat.cli.main", "serve", "--help"],
            capture_output=True, text=True, check=False, cwd=ROOT, env=base_env())
        if help_run.returncode != 0:
            return f"`jupyter mlplat serve` unavailable: {short(help_run.stderr or help_run.stdout)}"
        env = base_env()
        home = work / "mlplat"
        home.mkdir(exist_ok=True)
        env.update({
            "MLPLAT_STORE_URL": f"sqlite:///{home / 'store.db'}",
            "MLPLAT_ARTIFACTS_URL": str(home / "artifacts"),
            "MLPLAT_LOGS_DIR": str(home / "logs"),
            "MLPLAT_OWNER": OWNER,
            "JUPYTER_DATA_DIR": str(home / "jupyter"),
        })
        res = run_helper(Path(sys.executable), "prep-mlplat", env, work, 300,
                         "--models", ",".join(models))
        if "error" in res:
            return f"register/deploy failed: {short(res['error'], 300)}"
        self.info["mlplat"] = res
        port = free_port()
        self.servers["mlplat"] = Server(
            "mlplat", [sys.executable, "-m", "jupyter_mlplat.cli.main", "serve", "--host",
                       "127.0.0.1", "--port", str(port), *self.args.mlplat_args.split()],
            env, ROOT, port, "/v2/health/ready", work / "mlplat.log")
        return None

    def _prepare_mlflow(self, models: list[str]) -> str | None:
        venv = HERE / ".venv-mlflow"
        env = base_env(venv / "bin")
        env.update(MLFLOW_ENV)
        env["VIRTUAL_ENV"] = str(venv)
        res = run_helper(venv / "bin" / "python", "prep-mlflow", env, self.work, 300,
                         "--models", ",".join(models))
        if "error" in res:
            return f"mlflow save_model failed: {short(res['error'], 300)}"
        self.info["mlflow"] = res
        for model in models:
            port = free_port()
            self.servers[f"mlflow-{model}"] = Server(
                f"mlflow-{model}",
                [str(venv / "bin" / "mlflow"), "models", "serve", "-m",
                 str(self.work / "mlflow" / model), "--env-manager", "local", "-w", "1",
                 "-h", "127.0.0.1", "-p", str(port)],
                env, self.work, port, "/ping", self.work / f"mlflow-{model}.log")
        return None

    def _prepare_mlserver(self, models: list[str]) -> str | None:
        env = base_env(MLSERVER_VENV / "bin")
        env["VIRTUAL_ENV"] = str(MLSERVER_VENV)
        ports = [free_port() for _ in range(3)]
        res = run_helper(MLSERVER_VENV / "bin" / "python", "prep-mlserver", env, self.work, 300,
                         "--models", ",".join(models), "--ports", *map(str, ports))
        if "error" in res:
            return f"MLServer model repository failed: {short(res['error'], 300)}"
        self.info["mlserver"] = res
        self.servers["mlserver"] = Server(
            "mlserver", [str(MLSERVER_VENV / "bin" / "mlserver"), "start",
                         str(self.work / "mlserver")],
            env, self.work / "mlserver", ports[0], "/v2/health/ready",
            self.work / "mlserver.log")
        return None

    # -- requests ------------------------------------------------------------------------------

    @staticmethod
    def server_key(side: str, model: str) -> str:
        if side.startswith("mlplat"):
            return "mlplat"
        return f"mlflow-{model}" if side == "mlflow" else side

    def v2_input_name(self, model: str) -> str:
        port = self.servers["mlplat"].port
        try:
            status, _, body = http("GET", f"http://127.0.0.1:{port}/v2/models/{model}")
            if status == 200:
                inputs = json.loads(body).get("inputs") or []
                if inputs and inputs[0].get("name"):
                    return str(inputs[0]["name"])
        except (OSError, ValueError):
            pass
        return "input-0"

    def request_for(self, side: str, model: str) -> dict[str, Any]:
        row = self.data["row"]
        v2 = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
        if side == "mlplat":
            v2["name"] = self.v2_input_name(model)
            path, body = f"/v2/models/{model}/infer", {"inputs": [v2]}
        elif side == "mlplat_inv":
            path, body = f"/endpoints/{model}/invocations", {"inputs": [row]}
        elif side == "mlplat_df":
            path = f"/endpoints/{model}/invocations"
            body = {"dataframe_split": {"columns": self.columns(model),
                                        "data": [row]}}
        elif side == "mlflow":
            path, body = "/invocations", {"inputs": [row]}
        elif side == "mlserver":
            path = f"/v2/models/{model}/infer"
            body = {"inputs": [v2], "outputs": [{"name": "predict_proba"}]}
        else:
            path, body = f"/predict/{model}", {"inputs": [row]}
        server = self.servers[self.server_key(side, model)]
        return {"server": server.key, "port": server.port, "path": path,
                "body": json.dumps(body).encode()}

    def columns(self, model: str) -> list[str]:
        """The column names the mlplat model's signature has (for dataframe_split)."""
        port = self.servers["mlplat"].port
        try:
            status, _, body = http("GET", f"http://127.0.0.1:{port}/v2/models/{model}")
            meta = json.loads(body) if status == 200 else {}
        except (OSError, ValueError):
            meta = {}
        cols = (meta.get("parameters") or {}).get("columns")
        if isinstance(cols, list) and len(cols) == N_FEATURES:
            return [str(c) for c in cols]
        return [str(i) for i in range(N_FEATURES)]

    def check(self, side: str, model: str) -> dict[str, Any]:
        """One request: status, the answer against the in-memory model, X-Model-Version."""
        req = self.requests[(side, model)]
        url = f"http://127.0.0.1:{req['port']}{req['path']}"
        try:
            status, headers, body = http("POST", url, req["body"])
        except OSError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out: dict[str, Any] = {"status": status, "bytes": len(body),
                               "model_version": {k.lower(): v for k, v in headers.items()}.get(
                                   "x-model-version")}
        if not 200 <= status < 300:
            out.update(ok=False, error=f"HTTP {status}: {body[:300].decode(errors='replace')}")
            return out
        try:
            got = numbers(json.loads(body))
        except ValueError:
            got = []
        # jupyter-mlplat serves the model's ``predict`` (labels); the others predict_proba.
        for answer, want in (("predict_proba", self.data["expected"][model]),
                             ("predict", self.data["labels"][model])):
            if len(got) == len(want):
                out.update(ok=True, answer=answer,
                           max_abs_diff=max(abs(a - b) for a, b in zip(got, want, strict=True)))
                return out
        out.update(ok=False, error="answer is neither predict_proba nor predict of the row: "
                                   f"{body[:200].decode(errors='replace')}")
        return out

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def batch_rows(port: int, model: str) -> tuple[float, float] | None:
    """(rows, predict calls) so far for ``model`` from jupyter-mlplat's /metrics, or None."""
    try:
        status, _, body = http("GET", f"http://127.0.0.1:{port}/metrics", timeout=5)
    except OSError:
        return None
    if status != 200:
        return None
    found = {"_sum": 0.0, "_count": 0.0}
    for line in body.decode(errors="replace").splitlines():
        for suffix in found:
            if line.startswith(f"mlplat_serving_batch_rows{suffix}{{") and \
                    f'="{model}"' in line:
                found[suffix] += float(line.rsplit(" ", 1)[1])
    return found["_sum"], found["_count"]


def wrk_script(req: dict[str, Any], out: Path) -> str:
    body = req["body"].decode()
    assert "]==]" not in body
    return f"""
wrk.method = "POST"
wrk.path = "{req['path']}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local f = io.open("{out}", "w")
  local e = summary.errors
  f:write(string.format('{{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "non2xx": %d, "errors": %d}}', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
  f:close()
end
"""


def load(req: dict[str, Any], conns: int, duration: int, warmup: int, loadgen: str,
         work: Path) -> dict[str, Any]:
    """One measurement: ``warmup`` s unmeasured, then ``duration`` s; the client on CLIENT_CPU."""
    stamp = time.monotonic_ns()
    out = work / f"load-{stamp}.json"
    if loadgen == "wrk":
        script = work / f"load-{stamp}.lua"
        url = f"http://127.0.0.1:{req['port']}"
        if warmup > 0:
            script.write_text(wrk_script(req, work / f"warm-{stamp}.json"))
            subprocess.run(pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{conns}", f"-d{warmup}s",
                                               "--timeout", "10s", "-s", str(script), url]),
                           capture_output=True, check=False, timeout=warmup + 30)
        script.write_text(wrk_script(req, out))
        done = subprocess.run(
            pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
                                "-s", str(script), url]),
            capture_output=True, text=True, check=False, timeout=duration + 60)
        if done.returncode != 0 or not out.exists():
            return {"error": f"wrk exit {done.returncode}: {tail(done.stderr or done.stdout)}"}
        raw = json.loads(out.read_text())
        secs = raw["duration_us"] / 1e6
        return {"requests": raw["requests"], "duration_s": secs, "rps": raw["requests"] / secs,
                "p50_ms": raw["p50_us"] / 1e3, "p90_ms": raw["p90_us"] / 1e3,
                "p99_ms": raw["p99_us"] / 1e3, "non2xx": raw["non2xx"], "errors": raw["errors"]}
    body_file = work / f"body-{stamp}.json"
    body_file.write_bytes(req["body"])
    cmd = pinned(CLIENT_CPU, [sys.executable, str(Path(__file__).resolve()), "--helper", "client",
                              "--work", str(work), "--out", str(out), "--port", str(req["port"]),
                              "--path", req["path"], "--body-file", str(body_file),
                              "--conns", str(conns), "--duration", str(duration),
                              "--warmup", str(warmup)])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=duration + warmup + 60)
    if done.returncode != 0 or not out.exists():
        return {"error": f"client exit {done.returncode}: {tail(done.stderr)}"}
    return json.loads(out.read_text())


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def fmt_x(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def md_table(headers: list[str], lines: list[list[str]], left: int = 1) -> str:
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, runs in results.items():
        good = [r for r in runs if "error" not in r]
        rps = [r["rps"] for r in good]
        table[key] = {
            "rps": median(rps),
            "rps_min": min(rps) if rps else None,
            "rps_max": max(rps) if rps else None,
            "p50_ms": median([r["p50_ms"] for r in good]),
            "p99_ms": median([r["p99_ms"] for r in good]),
            "non2xx": sum(r.get("non2xx", 0) for r in good),
            "errors": sum(r.get("errors", 0) for r in good),
            "cpu_ms_per_req": median([r["cpu_ms_per_req"] for r in good
                                      if r.get("cpu_ms_per_req") is not None]),
            "rows_per_predict": median([r["rows_per_predict"] for r in good
                                        if r.get("rows_per_predict") is not None]),
            "rounds": len(good),
            "failed": [r["error"] for r in runs if "error" in r],
        }
    return table


def report(table: dict[str, Any], sides: list[str], models: list[str], conns: list[int],
           inproc: dict[str, Any], memory: dict[str, Any], checks: dict[str, Any],
           setup: Setup) -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables, and the targets with their verdicts."""
    parts: list[str] = []
    headers = ["model", "conns", "side", "req/s", "min-max", "p50 ms", "p99 ms", "non-2xx",
               "server CPU ms/req", "rows/predict", "x best peer", "x tornado"]
    lines = []
    for model in models:
        for c in conns:
            def row(side: str, model: str = model, c: int = c) -> dict[str, Any]:
                return table.get(f"{side}/{model}/{c}") or {}

            peers = [row(p)["rps"] for p in PEERS if row(p).get("rps")]
            best = max(peers) if peers else None
            for side in sides:
                r = row(side)
                if not r:
                    continue
                lines.append([
                    model, str(c), SHORT[side], fmt_num(r["rps"]),
                    f"{fmt_num(r['rps_min'])}-{fmt_num(r['rps_max'])}", fmt_ms(r["p50_ms"]),
                    fmt_ms(r["p99_ms"]), f"{r['non2xx']}" + (f" (+{r['errors']} err)"
                                                             if r["errors"] else ""),
                    fmt_ms(r["cpu_ms_per_req"]),
                    fmt_num(r["rows_per_predict"], 1) if r.get("rows_per_predict") else "-",
                    "-" if side in PEERS else fmt_x(r["rps"], best),
                    fmt_x(r["rps"], row("tornado").get("rps")),
                ])
    parts.append(md_table(headers, lines, left=3))

    lines = []
    for model in models:
        m = inproc.get(model) or {}
        for method, suffix in (("predict_proba", ""), ("predict", "_predict")):
            lines.append([model, MODELS[model], method,
                          fmt_num((m.get(f"one_row{suffix}") or 0) * 1e6),
                          fmt_num((m.get(f"batch64_per_row{suffix}") or 0) * 1e6, 1),
                          fmt_num((m.get(f"batch64{suffix}") or 0) * 1e3, 2)])
    parts.append(md_table(["model", "estimator", "method", "1 row, us",
                           "per row in a batch of 64, us", "batch of 64, ms"], lines, left=3))

    lines = []
    for key, mem in memory.items():
        after = mem.get("after_load") or {}
        lines.append([key, str(mem["warm"]["processes"]), fmt_num(mem["warm"]["rss"] / 2**20, 1),
                      fmt_num(mem["warm"]["uss"] / 2**20, 1),
                      fmt_num(after.get("rss", 0) / 2**20, 1) if after else "-",
                      fmt_x(mem["warm"]["rss"], (memory.get("tornado") or {}).get("warm", {})
                            .get("rss"))])
    parts.append(md_table(["server (both models)", "processes", "RSS MiB after warm-up",
                           "USS MiB", "RSS MiB after the load", "x tornado"], lines))

    lines = []
    for (side, model), ck in sorted(checks.items()):
        lines.append([SHORT[side], model, str(ck.get("status", "-")),
                      f"yes: {ck['answer']}" if ck.get("ok") else
                      "NO: " + short(ck.get("error", ""), 80),
                      f"{ck['max_abs_diff']:.1g}" if ck.get("ok") else "-",
                      str(ck.get("model_version") or "-")])
    parts.append(md_table(["side", "model", "status", "answer == in-memory model", "|diff|",
                           "X-Model-Version"], lines, left=2))

    targets: list[dict[str, Any]] = []

    def rps(side: str, model: str, c: int) -> float | None:
        return (table.get(f"{side}/{model}/{c}") or {}).get("rps")

    big = max(conns)
    for model, need in (("lr", TARGET_LR_X), ("rf", TARGET_RF_X)):
        if model not in models:
            continue
        peers = {p: rps(p, model, big) for p in PEERS if rps(p, model, big)}
        ours = rps("mlplat", model, big)
        best_peer = max(peers, key=peers.get) if peers else None
        got = ours / peers[best_peer] if ours and best_peer else None
        targets.append({
            "target": f"{model} at {big} connections: >= {need:g}x the best peer",
            "value": f"{got:.2f}x ({ours:,.0f} vs {SHORT[best_peer]} {peers[best_peer]:,.0f} "
                     "req/s)" if got else "-",
            "met": None if got is None else got >= need,
        })
    if 1 in conns:
        for model in models:
            p50 = (table.get(f"mlplat/{model}/1") or {}).get("p50_ms")
            # The in-process call the server makes: predict when it answers with labels.
            method = (checks.get(("mlplat", model)) or {}).get("answer", "predict_proba")
            one = (inproc.get(model) or {}).get(
                "one_row_predict" if method == "predict" else "one_row")
            limit = one * 1e3 + TARGET_P50_SLACK_MS if one else None
            bare = (table.get(f"tornado/{model}/1") or {}).get("p50_ms")
            targets.append({
                "target": f"{model} at 1 connection: p50 <= in-process 1-row {method} + "
                          f"{TARGET_P50_SLACK_MS} ms",
                "value": (f"{p50:.3f} ms vs {limit:.3f} ms ({p50 - limit:+.3f}; minimal "
                          f"tornado {fmt_ms(bare)} ms)") if p50 and limit else "-",
                "met": None if not (p50 and limit) else p50 <= limit,
            })
    ours, base = memory.get("mlplat"), memory.get("tornado")
    if ours and base:
        x = ours["warm"]["rss"] / base["warm"]["rss"]
        targets.append({
            "target": f"memory, both models in one process: <= {TARGET_MEM_X}x the minimal "
                      "tornado server (RSS)",
            "value": f"{x:.2f}x ({ours['warm']['rss'] / 2**20:.0f} vs "
                     f"{base['warm']['rss'] / 2**20:.0f} MiB)",
            "met": x <= TARGET_MEM_X,
        })
    lines = [[t["target"], t["value"], {True: "met", False: "**missed**", None: "-"}[t["met"]]]
             for t in targets]
    parts.append(md_table(["target", "measured", ""], lines))
    return "\n\n".join(parts), targets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each measures every side once, order rotating (default 3)")
    parser.add_argument("--duration", type=int, default=3,
                        help="measured seconds per side, model and connection count (default 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured seconds before each measurement of the first round "
                        "(default 1; the servers stay up, so later rounds are warm)")
    parser.add_argument("--quick", action="store_true", help="--rounds 1 --duration 2")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"comma-separated subset of {','.join(SIDES)} (default: all)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {','.join(MODELS)} (default: all)")
    parser.add_argument("--conns", default="1,32", help="connection counts (default 1,32)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="wrk (Debian's package) or this file's asyncio client; auto: wrk "
                        "when installed")
    parser.add_argument("--mlserver-spec", default="mlserver mlserver-sklearn",
                        help="what pip installs into benchmarks/.venv-mlserver")
    parser.add_argument("--mlplat-args", default="",
                        help="extra arguments for `jupyter mlplat serve`")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for a server to start")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="raw results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, models)")
    # helper mode (internal)
    parser.add_argument("--helper", choices=sorted(HELPERS), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", type=int, nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--body-file", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.helper:
        if args.helper == "client":
            args.conns = int(args.conns)
        return args
    if args.quick:
        args.rounds, args.duration = 1, 2
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.conns = [int(c) for c in args.conns.split(",") if c.strip()]
    bad = (set(args.sides) - set(SIDES)) | (set(args.models) - set(MODELS))
    if bad:
        parser.error(f"unknown sides or models: {sorted(bad)}")
    if args.rounds < 1 or args.duration < 1 or min(args.conns, default=0) < 1:
        parser.error("--rounds, --duration and --conns must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.helper:
        return HELPERS[args.helper](args)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        say("wrk is not installed (apt-get install wrk); using the asyncio client")
        loadgen = "python"
    if (os.cpu_count() or 1) < 2:
        say("note: one CPU: the server and the load generator share it")
    work = Path(tempfile.mkdtemp(prefix="mlplat-bench-serving-"))
    say(f"work folder: {work}; load generator: {loadgen}")
    fit = run_helper(Path(sys.executable), "fit", base_env(), work, 300)
    if "error" in fit:
        say(f"fitting failed: {fit['error']}")
        return 1
    data = json.loads((work / "data.json").read_text())
    say("fitted: " + ", ".join(f"{k} {v:.2f} s" for k, v in data["fit_seconds"].items()))
    inproc = run_helper(Path(sys.executable), "inproc", base_env(), work, 300,
                        "--budget", "0.5" if args.quick else "1.0", cpu=SERVER_CPU)
    if "error" in inproc:
        say(f"in-process timing failed: {inproc['error']}")
        inproc = {}
    for model in args.models:
        m = inproc.get(model) or {}
        if m:
            say(f"  in-process {model}: predict_proba 1 row {m['one_row'] * 1e6:.0f} us, "
                f"{m['batch64_per_row'] * 1e6:.1f} us/row in a batch of {BATCH}")

    setup = Setup(work, data, args)
    results: dict[str, list[dict[str, Any]]] = {}
    memory: dict[str, Any] = {}
    checks: dict[tuple[str, str], dict[str, Any]] = {}
    server_logs: dict[str, str] = {}
    try:
        setup.prepare(args.sides, args.models)
        sides = [s for s in args.sides if s not in setup.skipped]
        for side in list(sides):
            for model in args.models:
                ck = setup.check(side, model)
                checks[(side, model)] = ck
                if not ck.get("ok"):
                    say(f"  [{side}] {model}: {ck.get('error')}")
            if not any(checks[(side, m)].get("ok") for m in args.models):
                setup.skipped[side] = "no valid answer: " + short(
                    checks[(side, args.models[0])].get("error", ""), 200)
                sides.remove(side)
        for key in setup.servers:  # a few requests each, then the memory
            for (side, model), req in setup.requests.items():
                if req["server"] == key and checks.get((side, model), {}).get("ok"):
                    for _ in range(20):
                        http("POST", f"http://127.0.0.1:{req['port']}{req['path']}",
                             req["body"])
        for key, server in setup.servers.items():
            group = "mlflow" if key.startswith("mlflow") else key
            mem = server.memory()
            entry = memory.setdefault(group, {"warm": {"rss": 0, "uss": 0, "processes": 0},
                                              "servers": []})
            for k in ("rss", "uss", "processes"):
                entry["warm"][k] += mem[k]
            entry["servers"].append(key)
        if setup.skipped:
            for side, why in setup.skipped.items():
                say(f"  [{side}] skipped: {why}")

        plan = [(side, model, c) for model in args.models for c in args.conns for side in sides
                if checks.get((side, model), {}).get("ok")]
        per = args.duration + 0.3
        say(f"{args.rounds} round(s) of {len(plan)} measurements x {args.duration} s "
            f"(~{args.rounds * len(plan) * per + len(plan) * args.warmup:.0f} s)")
        for rnd in range(args.rounds):
            # Rotate the side order each round, so no side always follows the same one.
            for model in args.models:
                for c in args.conns:
                    group = [p for p in plan if p[1] == model and p[2] == c]
                    if not group:
                        continue
                    shift = rnd % len(group)
                    order = group[shift:] + group[:shift]
                    if rnd % 2:
                        order.reverse()
                    for side, _, _ in order:
                        req = setup.requests[(side, model)]
                        server = setup.servers[req["server"]]
                        ours = side.startswith("mlplat")
                        rows0 = batch_rows(server.port, model) if ours else None
                        cpu0 = server.cpu_seconds()
                        res = load(req, c, args.duration, args.warmup if rnd == 0 else 0,
                                   loadgen, work)
                        cpu1 = server.cpu_seconds()
                        rows1 = batch_rows(server.port, model) if ours else None
                        if rows0 and rows1 and rows1[1] > rows0[1]:
                            # Mean rows per predict call over the client run (warm-up included).
                            res["rows_per_predict"] = (rows1[0] - rows0[0]) / (rows1[1] - rows0[1])
                        if "error" not in res and res["requests"]:
                            # Whole client runs (warm-up included) against the measured count:
                            # an upper bound when warm-up ran; rounds >= 2 have none.
                            res["cpu_ms_per_req"] = (cpu1 - cpu0) * 1e3 / res["requests"] \
                                if rnd > 0 or args.warmup == 0 else None
                        res["round"] = rnd
                        results.setdefault(f"{side}/{model}/{c}", []).append(res)
                        if "error" in res:
                            say(f"  r{rnd + 1} {side:<10} {model} c={c:<3} ERROR "
                                f"{short(res['error'])}")
                        else:
                            say(f"  r{rnd + 1} {side:<10} {model} c={c:<3} {res['rps']:>8,.0f} "
                                f"req/s  p50 {fmt_ms(res['p50_ms']):>6} ms  p99 "
                                f"{fmt_ms(res['p99_ms']):>6} ms  non-2xx {res['non2xx']}"
                                + (f" errors {res['errors']}" if res.get("errors") else ""))
        for key, server in setup.servers.items():
            group = "mlflow" if key.startswith("mlflow") else key
            if group in memory:
                after = memory[group].setdefault("after_load", {"rss": 0, "uss": 0})
                mem = server.memory()
                after["rss"] += mem["rss"]
                after["uss"] += mem["uss"]
        server_logs = {k: s.log_tail() for k, s in setup.servers.items()}
    finally:
        setup.stop()

    table = summarize(results)
    text, targets = report(table, [s for s in args.sides if s not in setup.skipped], args.models,
                           args.conns, inproc, memory, checks, setup)
    print()
    print(text)
    for side, why in setup.skipped.items():
        say(f"{SIDES[side]}: skipped: {short(why, 300)}")
    say(f"1-minute load average: {load_at_start:.2f} at the start")
    if load_at_start > (os.cpu_count() or 1) * 0.5:
        say(f"note: the machine was busy before this benchmark started ({load_at_start:.1f} on "
            f"{os.cpu_count()} CPUs); rerun when quiet")
    result = {
        "benchmark": "serving",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git_commit(),
        "loadgen": loadgen,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "conns": args.conns,
        "models": MODELS,
        "sides": SIDES,
        "fit_seconds": data["fit_seconds"],
        "inproc": inproc,
        "memory": memory,
        "checks": {f"{s}/{m}": v for (s, m), v in checks.items()},
        "server_ready_s": {k: s.ready_after for k, s in setup.servers.items()},
        "server_info": setup.info,
        "skipped": setup.skipped,
        "targets": targets,
        "table": table,
        "raw": results,
        "server_log_tails": server_logs,
        "loadavg_1m_at_start": load_at_start,
        "total_seconds": time.perf_counter() - started,
        "markdown": text,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    say(f"raw results: {args.output} (total {result['total_seconds']:.0f} s)")
    if args.keep:
        say(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
