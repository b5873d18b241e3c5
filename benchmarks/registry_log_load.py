"""Side-by-side benchmark: jupyter-mlplat's model registry against MLflow's, in one run.

For two fitted scikit-learn models (a ``Pipeline(StandardScaler, LogisticRegression)`` and a
100-tree ``RandomForestClassifier``, both fitted once here on 5,000 x 20 synthetic rows) every
side times the same three operations on a fresh SQLite store and a local artifact folder:

1. log + register a new model version, with a signature inferred from 5 sample rows;
2. resolve the ``production`` alias and load the model back (after pointing the alias);
3. predict on the 5 sample rows with the loaded model (checked against the in-memory model).

The sides, each a subprocess that times itself and writes JSON:

(a) ``mlplat``: the library, outside a pipeline step: ``save_model`` + ``ModelRegistry.register``,
    ``set_alias``, ``ModelRegistry.load("name@production").model``;
(b) ``mlplat_public``: the notebook API, ``mlp.log_model`` + ``mlp.end_run`` (a run opened and
    closed each time) and ``mlp.load_model("name@production")``, with ``MLPLAT_STORE_URL`` /
    ``MLPLAT_ARTIFACTS_URL`` in a temp folder;
(c) ``mlflow_skops``, ``mlflow_cloudpickle``, ``mlflow_skops_reqs``: MLflow in its own venv
    (``benchmarks/.venv-mlflow``, created on first use with our scikit-learn, numpy, skops,
    pandas and torch versions): ``mlflow.sklearn.log_model(..., signature=infer_signature(...),
    registered_model_name=...)``, ``MlflowClient().set_registered_model_alias``,
    ``mlflow.sklearn.load_model("models:/name@production")``; with its default
    ``serialization_format`` (skops, outside Databricks, in MLflow 3.x), with ``cloudpickle``
    (its default before, and on Databricks), and with skops and ``pip_requirements`` given
    (which skips MLflow's inference of the requirements in a subprocess).

"Cold" is the first call in a fresh process, the library's imports and the opening of the store
included (register: a new store, so its schema is created; load: the store left by register);
"warm" is the median of the repeats that follow in the same process. One BLAS/OpenMP thread
everywhere. Both sides load the very same pickled models, and each checks that the model it
loaded back predicts exactly what the in-memory model did. This is a measurement, never a
pass/fail test. Raw results go to
``benchmarks/results/registry_log_load.json``.

Usage::

    python benchmarks/registry_log_load.py               # ~3 min (+1 min to make MLflow's venv)
    python benchmarks/registry_log_load.py --quick       # fewer repeats, ~2.5 min
    python benchmarks/registry_log_load.py --sides mlplat,mlflow_skops --models rf
"""

from __future__ import annotations

# Only the standard library at module level: the same file is the worker in MLflow's venv.
import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import git_commit, machine, print_table

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "registry_log_load.json"
MLFLOW_VENV = HERE / ".venv-mlflow"  # with our torch pin where we have torch
MLFLOW_VENV_NO_TORCH = HERE / ".venv-mlflow-notorch"  # --no-mlflow-torch
OWNER = "bench"
ALIAS = "production"
N_ROWS, N_FEATURES, N_SAMPLE = 5_000, 20, 5

SIDES: dict[str, str] = {
    "mlplat": "jupyter-mlplat library",
    "mlplat_public": "jupyter-mlplat mlp.* API",
    "mlflow_skops": "MLflow, skops (default)",
    "mlflow_cloudpickle": "MLflow, cloudpickle",
    "mlflow_skops_reqs": "MLflow, skops, pip_requirements given",
}
# side -> (serialization_format, whether pip_requirements is passed: without it MLflow infers
# them by loading the model in a subprocess, which is most of its log_model time)
MLFLOW_FORMATS = {
    "mlflow_skops": ("skops", False),
    "mlflow_cloudpickle": ("cloudpickle", False),
    "mlflow_skops_reqs": ("skops", True),
}
MODELS: dict[str, str] = {
    "lr": "Pipeline(StandardScaler, LogisticRegression)",
    "rf": "RandomForestClassifier(n_estimators=100)",
}
# What an MLflow user has to pass for MLflow's skops check to accept the model: skops does not
# trust tree node storage by default (jupyter-mlplat marks such models trusted-only instead).
MLFLOW_SKOPS_TRUSTED = {"lr": None, "rf": ["sklearn.tree._tree.Tree"]}

# One thread for every side.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# MLflow's telemetry would reach for the network (closed here); MLflow 3.x refuses to load any
# sklearn model (skops included) unless pickle deserialisation is allowed explicitly.
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}
# Pinned to the versions of the running venv, so both sides load the very same pickled models.
PINNED_WITH_OURS = ("scikit-learn", "numpy", "skops", "pandas")


def say(message: str) -> None:
    print(message, flush=True)


# =============================================================================================
# Worker: runs inside one side's venv, times itself, writes JSON. Imports stay inside functions.


def _now() -> float:
    return time.perf_counter()


def _dir_bytes(path: Path, skip: tuple[str, ...] = (".staging",)) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in skip]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


def _check(model: Any, X: Any, expected: dict[str, Any]) -> dict[str, Any]:
    """Whether ``model`` predicts exactly what the in-memory model did on the sample."""
    import numpy as np

    pred = model.predict(X)
    proba = model.predict_proba(X)
    return {
        "predict_equal": bool(np.array_equal(pred, expected["predict"])),
        "proba_max_abs_diff": float(np.max(np.abs(proba - expected["proba"]))),
    }


class Backend:
    """One side's three operations; subclasses open their store in :meth:`open`."""

    def __init__(self, home: Path, model_name: str, model_key: str) -> None:
        self.home = home
        self.name = model_name
        self.key = model_key
        self.db = home / "store.db"
        self.artifact_root = home / "artifacts"

    def import_library(self) -> None:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def register(self, model: Any, X: Any) -> int:
        raise NotImplementedError

    def set_alias(self, version: int) -> None:
        raise NotImplementedError

    def load(self) -> Any:
        raise NotImplementedError

    def model_file_bytes(self) -> int | None:
        return None

    def info(self) -> dict[str, Any]:
        return {}


class MlplatLibrary(Backend):
    def import_library(self) -> None:
        global Store, ArtifactStore, ModelRegistry, save_model, asdict
        from dataclasses import asdict

        from jupyter_mlplat.store.artifacts import ArtifactStore
        from jupyter_mlplat.store.sql import Store
        from jupyter_mlplat.tracking.flavors import save_model
        from jupyter_mlplat.tracking.registry import ModelRegistry

    def open(self) -> None:
        self.store = Store(f"sqlite:///{self.db}", OWNER)  # noqa: F821
        self.artifacts = ArtifactStore(str(self.artifact_root))  # noqa: F821
        self.registry = ModelRegistry(self.store, self.artifacts)  # noqa: F821
        self.first_saved: dict[str, Any] | None = None

    def register(self, model: Any, X: Any) -> int:
        saved = save_model(model, name=self.name, sample_input=X, store=self.artifacts)  # noqa: F821
        mv = self.registry.register(self.name, asdict(saved), run_id=None)  # noqa: F821
        if self.first_saved is None:
            self.first_saved = asdict(saved)  # noqa: F821
        return int(mv.version)

    def set_alias(self, version: int) -> None:
        self.registry.set_alias(self.name, ALIAS, version)

    def load(self) -> Any:
        return self.registry.load(f"{self.name}@{ALIAS}").model

    def model_file_bytes(self) -> int | None:
        return None if self.first_saved is None else int(self.first_saved["artifact"]["size"])

    def info(self) -> dict[str, Any]:
        saved = self.first_saved or {}
        art = saved.get("artifact") or {}
        return {"format": art.get("format"), "trusted_only": art.get("trusted_only")}


class MlplatPublic(Backend):
    """``mlp.log_model`` + ``mlp.end_run`` (one notebook run each), ``mlp.load_model``."""

    def import_library(self) -> None:
        global mlp
        import jupyter_mlplat as mlp

        mlp.log_model  # noqa: B018 - resolve the lazy re-export (imports tracking.api)

    def open(self) -> None:
        os.environ["MLPLAT_STORE_URL"] = f"sqlite:///{self.db}"
        os.environ["MLPLAT_ARTIFACTS_URL"] = str(self.artifact_root)
        os.environ["MLPLAT_LOGS_DIR"] = str(self.home / "logs")
        os.environ["MLPLAT_OWNER"] = OWNER

    def register(self, model: Any, X: Any) -> int:
        logged = mlp.log_model(model, self.name, sample_input=X)  # noqa: F821
        mlp.end_run()  # noqa: F821
        if logged.version is None:
            raise RuntimeError(f"mlp.log_model registered no version: {logged!r}")
        return int(logged.version)

    def set_alias(self, version: int) -> None:
        mlp.set_alias(self.name, ALIAS, version)  # noqa: F821 - applied at once, on a run
        mlp.end_run()  # noqa: F821

    def load(self) -> Any:
        return mlp.load_model(f"{self.name}@{ALIAS}")  # noqa: F821

    def model_file_bytes(self) -> int | None:
        found = sorted((self.artifact_root / "objects").rglob("*.skops"))
        return found[0].stat().st_size if len(found) == 1 else None

    def info(self) -> dict[str, Any]:
        from jupyter_mlplat.tracking.api import _registry

        registry = _registry()
        try:
            _, mv = registry.resolve(self.name)
            art = registry.store.artifact_ref(mv.artifact_id)
        finally:
            registry.store.close()
        return {"format": art.get("format"), "trusted_only": art.get("trusted_only")}


class Mlflow(Backend):
    def __init__(self, home: Path, model_name: str, model_key: str, fmt: str,
                 given_reqs: bool) -> None:
        super().__init__(home, model_name, model_key)
        self.fmt = fmt
        self.given_reqs = given_reqs

    def import_library(self) -> None:
        global mlflow, infer_signature, MlflowClient
        import mlflow
        import mlflow.sklearn
        from mlflow import MlflowClient
        from mlflow.models import infer_signature

    def open(self) -> None:
        uri = f"sqlite:///{self.db}"
        mlflow.set_tracking_uri(uri)  # noqa: F821
        mlflow.set_registry_uri(uri)  # noqa: F821
        experiment = mlflow.get_experiment_by_name("registry-bench")  # noqa: F821
        if experiment is None:
            exp_id = mlflow.create_experiment(  # noqa: F821
                "registry-bench", artifact_location=str(self.artifact_root)
            )
        else:
            exp_id = experiment.experiment_id
        mlflow.set_experiment(experiment_id=exp_id)  # noqa: F821
        self.client = MlflowClient()  # noqa: F821
        self.first_model_dir: Path | None = None

    def register(self, model: Any, X: Any) -> int:
        signature = infer_signature(X, model.predict(X))  # noqa: F821
        extra: dict[str, Any] = {}
        if self.fmt == "skops" and MLFLOW_SKOPS_TRUSTED[self.key]:
            extra["skops_trusted_types"] = MLFLOW_SKOPS_TRUSTED[self.key]
        if self.given_reqs:  # what MLflow would write anyway for this format, no inference
            extra["pip_requirements"] = mlflow.sklearn.get_default_pip_requirements(  # noqa: F821
                include_cloudpickle=self.fmt == "cloudpickle", include_skops=self.fmt == "skops"
            )
        info = mlflow.sklearn.log_model(  # noqa: F821
            model,
            name=self.name,
            signature=signature,
            registered_model_name=self.name,
            serialization_format=self.fmt,
            **extra,
        )
        if self.first_model_dir is None:
            found = [p for p in self.artifact_root.rglob("MLmodel")]
            self.first_model_dir = found[0].parent if found else None
        return int(info.registered_model_version)

    def set_alias(self, version: int) -> None:
        self.client.set_registered_model_alias(self.name, ALIAS, str(version))

    def load(self) -> Any:
        return mlflow.sklearn.load_model(f"models:/{self.name}@{ALIAS}")  # noqa: F821

    def model_file_bytes(self) -> int | None:
        if self.first_model_dir is None:
            return None
        files = [p for p in self.first_model_dir.glob("model.*") if p.is_file()]
        return files[0].stat().st_size if files else None

    def info(self) -> dict[str, Any]:
        files = sorted(p.name for p in self.first_model_dir.iterdir()) if self.first_model_dir else []
        return {"format": self.fmt, "version_files": files,
                "requirements": (self.first_model_dir / "requirements.txt").read_text()
                if self.first_model_dir else None}


def make_backend(side: str, home: Path, model_key: str) -> Backend:
    name = f"bench-{model_key}"
    if side == "mlplat":
        return MlplatLibrary(home, name, model_key)
    if side == "mlplat_public":
        return MlplatPublic(home, name, model_key)
    return Mlflow(home, name, model_key, *MLFLOW_FORMATS[side])


def worker(args: argparse.Namespace) -> int:
    """One phase of one side for one model; JSON to ``args.out``."""
    import logging
    import pickle
    import warnings

    import numpy as np  # noqa: F401 - the sample is a numpy array either way

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    with open(args.data, "rb") as f:  # numpy only: a load process has not imported sklearn
        data = pickle.load(f)
    X = data["sample"]
    expected = data["expected"][args.model]
    model = None
    if args.phase == "register":  # the model exists already in a process that logs it
        with open(Path(args.data).with_name("models.pkl"), "rb") as f:
            model = pickle.load(f)[args.model]
    home = Path(args.home)
    backend = make_backend(args.side, home, args.model)
    out: dict[str, Any] = {"side": args.side, "phase": args.phase, "model": args.model}

    t0 = _now()
    backend.import_library()
    t1 = _now()
    backend.open()
    t2 = _now()
    if args.phase == "register":
        versions = [backend.register(model, X)]
        t3 = _now()
        out["cold"] = {"import": t1 - t0, "open": t2 - t1, "first": t3 - t2, "total": t3 - t0}
        out["sizes"] = {
            "model_file": backend.model_file_bytes(),
            "version_files": _dir_bytes(backend.artifact_root),
        }
        warm = []
        for _ in range(args.register_repeat):
            start = _now()
            versions.append(backend.register(model, X))
            warm.append(_now() - start)
        alias = []
        for i in range(args.repeat):
            version = versions[i % len(versions)]
            start = _now()
            backend.set_alias(version)
            alias.append(_now() - start)
        backend.set_alias(versions[-1])  # what the load phase resolves
        out["warm"] = {"register": warm, "alias": alias}
        out["versions"] = versions
        out["sizes"].update(
            artifacts_after=_dir_bytes(backend.artifact_root), db_after=_db_bytes(backend.db)
        )
        out["info"] = backend.info()
    else:
        loaded = backend.load()
        t3 = _now()
        loaded.predict(X)
        t4 = _now()
        out["cold"] = {
            "import": t1 - t0,
            "open": t2 - t1,
            "first": t3 - t2,
            "total": t3 - t0,
            "predict": t4 - t3,
        }
        out["check"] = _check(loaded, X, expected)
        loads, predicts = [], []
        for _ in range(args.repeat):
            start = _now()
            loaded = backend.load()
            loads.append(_now() - start)
        for _ in range(args.repeat):
            start = _now()
            loaded.predict(X)
            predicts.append(_now() - start)
        out["warm"] = {"load": loads, "predict": predicts}
        out["check_warm"] = _check(loaded, X, expected)
        out["type"] = f"{type(loaded).__module__}.{type(loaded).__qualname__}"
    out["versions_installed"] = _versions(
        "mlflow", "jupyter-mlplat", "scikit-learn", "numpy", "skops", "cloudpickle", "sqlalchemy"
    )
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _versions(*dists: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for dist in dists:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = None
    return found


# =============================================================================================
# Driver: fits the models once, makes MLflow's venv, runs the workers, prints the table.


def make_data(path: Path) -> dict[str, Any]:
    """Fit both models on the same seeded data; pickle them (``models.pkl`` beside ``path``),
    and the sample with the in-memory models' predictions on it (``path``)."""
    import pickle

    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    w = rng.normal(size=N_FEATURES)
    y = (X @ w + X[:, 0] * X[:, 1] + rng.normal(size=N_ROWS) > 0).astype(np.int64)
    fits: dict[str, float] = {}
    models: dict[str, Any] = {}
    for key, est in (
        ("lr", Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])),
        ("rf", RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=0)),
    ):
        start = time.perf_counter()
        models[key] = est.fit(X, y)
        fits[key] = time.perf_counter() - start
    sample = X[:N_SAMPLE].copy()
    expected = {
        key: {"predict": m.predict(sample), "proba": m.predict_proba(sample)}
        for key, m in models.items()
    }
    with open(path.with_name("models.pkl"), "wb") as f:
        pickle.dump(models, f, protocol=5)
    with open(path, "wb") as f:
        pickle.dump({"sample": sample, "expected": expected}, f, protocol=5)
    return {"fit_seconds": fits}


def base_env(bin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for key in ("MLPLAT_STORE_URL", "MLPLAT_ARTIFACTS_URL", "MLPLAT_LOGS_DIR", "MLPLAT_OWNER"):
        env.pop(key, None)
    return env


def our_pins(with_torch: bool) -> list[str]:
    """Our versions of the shared stack; torch too when ours has it: skops.io imports it
    (through scikit-learn's array-API support) whenever it is installed, ~1 s per process."""
    from importlib.metadata import PackageNotFoundError, version

    dists = [*PINNED_WITH_OURS, *(["torch"] if with_torch else [])]
    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            if dist != "torch":
                raise
    return pins


def mlflow_venv(with_torch: bool) -> Path:
    return MLFLOW_VENV if with_torch else MLFLOW_VENV_NO_TORCH


def ensure_mlflow_venv(spec: str, timeout: float, with_torch: bool) -> str | None:
    """Create ``benchmarks/.venv-mlflow`` (MLflow + our scikit-learn/numpy/skops/pandas and
    torch pins; ``.venv-mlflow-notorch`` without torch), or reuse it; an error, or None."""
    venv = mlflow_venv(with_torch)
    python = venv / "bin" / "python"
    pins = our_pins(with_torch)
    check = [
        str(python),
        "-c",
        "import mlflow.sklearn, skops.io, pandas; from importlib.metadata import version as v; "
        f"import sys; want = {pins!r}; "
        "bad = [p for p in want if v(p.split('==')[0]) != p.split('==')[1]]; "
        "sys.exit(1 if bad else 0)",
    ]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return None
    env = base_env(Path(sys.executable).parent)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if not python.exists():
        say(f"creating {venv} ...")
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True,
            check=False, env=env,
        )
        if made.returncode != 0:
            return f"python -m venv failed: {made.stderr.strip()[-500:]}"
    say(f"  pip install {spec} {' '.join(pins)} (~1 min; 0.9 GB, 1.7 GB with torch) ...")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", spec, *pins],
            capture_output=True, text=True, check=False, env=env, timeout=max(timeout, 900),
        )
    except subprocess.TimeoutExpired:
        return "pip install timed out"
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("WARNING: Loc")]
        return "pip install failed: " + "\n".join(lines[-15:])
    say(f"  installed in {time.perf_counter() - start:.0f} s")
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        return "MLflow installed but its imports (or the version pins) fail"
    return None


def run_worker(
    python: Path, env: dict[str, str], side: str, phase: str, model: str, home: Path,
    data: Path, args: argparse.Namespace, register_repeat: int, repeat: int,
) -> dict[str, Any]:
    """Run one worker; its JSON plus the process wall clock, or {"error": ...}."""
    out = home / f"{phase}-{side}-{model}-{time.monotonic_ns()}.json"
    cmd = [
        str(python), str(Path(__file__).resolve()), "--worker", "--side", side, "--phase", phase,
        "--model", model, "--home", str(home), "--data", str(data), "--out", str(out),
        "--register-repeat", str(register_repeat), "--repeat", str(repeat),
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, env=env, cwd=home, capture_output=True, text=True, timeout=args.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s"}
    wall = time.perf_counter() - start
    if done.returncode != 0 or not out.exists():
        tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-12:])
        return {"error": f"exit {done.returncode}: {tail}"}
    result = json.loads(out.read_text())
    result["process_wall"] = wall
    return result


def side_setup(side: str, with_torch: bool) -> tuple[Path, dict[str, str]]:
    if side.startswith("mlflow"):
        venv = mlflow_venv(with_torch)
        bin_dir = venv / "bin"
        env = base_env(bin_dir)
        env.update(MLFLOW_ENV)
        env["VIRTUAL_ENV"] = str(venv)
        return bin_dir / "python", env
    return Path(sys.executable), base_env(Path(sys.executable).parent)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def collect(results: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Per (side, model): medians of every row of the table."""
    table: dict[str, Any] = {}
    for (side, model), res in results.items():
        reg, load = res.get("register") or {}, res.get("load") or {}
        colds_reg = [r["cold"]["total"] for r in [reg, *res.get("cold_register", [])] if "cold" in r]
        colds_load = [r["cold"]["total"] for r in [load, *res.get("cold_load", [])] if "cold" in r]
        colds_pred = [r["cold"]["predict"] for r in [load, *res.get("cold_load", [])] if "cold" in r]
        warm_reg = (reg.get("warm") or {}).get("register", [])
        row = {
            "register_cold": median(colds_reg),
            "register_warm": median(warm_reg),
            "alias_warm": median((reg.get("warm") or {}).get("alias", [])),
            "load_cold": median(colds_load),
            "load_warm": median((load.get("warm") or {}).get("load", [])),
            "predict_cold": median(colds_pred),
            "predict_warm": median((load.get("warm") or {}).get("predict", [])),
            "register_cold_breakdown": reg.get("cold"),
            "load_cold_breakdown": load.get("cold"),
            "samples": {
                "register_cold": colds_reg, "register_warm": warm_reg,
                "load_cold": colds_load, "predict_cold": colds_pred,
            },
            "sizes": reg.get("sizes"),
            "check": load.get("check"),
            "check_warm": load.get("check_warm"),
            "info": reg.get("info"),
            "loaded_type": load.get("type"),
            "errors": [r["error"] for r in (reg, load) if "error" in r],
        }
        table.setdefault(side, {})[model] = row
    return table


OPS = [
    ("register_cold", "register, cold"),
    ("register_warm", "register, warm"),
    ("alias_warm", "set alias, warm"),
    ("load_cold", "load @production, cold"),
    ("load_warm", "load @production, warm"),
    ("predict_cold", "predict, 1st after load"),
    ("predict_warm", "predict, warm"),
]
SHORT = {
    "mlplat": "mlplat lib",
    "mlplat_public": "mlplat mlp.*",
    "mlflow_skops": "MLflow skops",
    "mlflow_cloudpickle": "MLflow cloudpickle",
    "mlflow_skops_reqs": "MLflow skops+reqs",
}
LEGEND = """\
register: save + register a new version, signature from 5 rows (mlplat: save_model +
  ModelRegistry.register; mlp.*: mlp.log_model + mlp.end_run; MLflow: infer_signature +
  mlflow.sklearn.log_model(registered_model_name=...), no active run; skops+reqs also passes
  pip_requirements, which skips MLflow's inference of them in a subprocess). cold = 1st call
  in a fresh process, imports and a new store included; load cold = a fresh process (numpy
  imported, scikit-learn not) on that store.
set alias: mlplat ModelRegistry.set_alias (mlp.*: mlp.set_alias + mlp.end_run);
  MLflow MlflowClient().set_registered_model_alias.
load: mlplat ModelRegistry.load("m@production").model (mlp.*: mlp.load_model, a new Store
  each call); MLflow mlflow.sklearn.load_model("models:/m@production").
x = mlplat lib / that MLflow column (below 1: mlplat is faster)."""


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def print_tables(table: dict[str, Any], sides: list[str], models: list[str], args: Any) -> None:
    mlplat_sides = [s for s in sides if s.startswith("mlplat")]
    mlflow_sides = [s for s in sides if s.startswith("mlflow")]
    base = "mlplat" if "mlplat" in sides else (mlplat_sides[0] if mlplat_sides else None)
    headers = ["model", "median ms"]
    for s in mlplat_sides:
        headers.append(SHORT[s])
    for s in mlflow_sides:
        headers += [SHORT[s], "x"] if base else [SHORT[s]]
    lines: list[list[str]] = []
    for model in models:
        for key, label in OPS:
            line = [model, label]
            for s in mlplat_sides:
                line.append(fmt_ms(table.get(s, {}).get(model, {}).get(key)))
            ours = table.get(base, {}).get(model, {}).get(key) if base else None
            for s in mlflow_sides:
                theirs = table.get(s, {}).get(model, {}).get(key)
                line.append(fmt_ms(theirs))
                if base:
                    line.append(fmt_ratio(ours, theirs))
            lines.append(line)
    title = (
        f"model registry, median ms: warm = {args.register_repeat} registers, {args.repeat} alias "
        f"moves / loads / predicts; cold n={args.cold_repeat}"
    )
    print_table(title, headers, lines, first_left=2)
    print(LEGEND)

    headers = ["model", "side", "register cold: import", "open", "1st", "load cold: import",
               "open", "1st"]
    lines = []
    for model in models:
        for s in sides:
            row = table.get(s, {}).get(model) or {}
            reg = row.get("register_cold_breakdown") or {}
            load = row.get("load_cold_breakdown") or {}
            lines.append([model, SHORT[s], *(fmt_ms(reg.get(k)) for k in ("import", "open", "first")),
                          *(fmt_ms(load.get(k)) for k in ("import", "open", "first"))])
    print_table("where the cold time goes (ms; mlp.* imports lazily, so its 'import' is small)",
                headers, lines, first_left=2)

    headers = ["model", "side", "format", "model file", "1 version", "after all",
               "predict ==", "|proba diff|"]
    lines = []
    for model in models:
        for s in sides:
            row = table.get(s, {}).get(model)
            if not row:
                continue
            if row["errors"]:
                lines.append([model, SHORT[s], short(row["errors"][0], 60), *["-"] * 5])
                continue
            sz, ck, info = row["sizes"] or {}, row["check"] or {}, row["info"] or {}
            fmt = info.get("format") or ("skops" if s.startswith("mlplat") else "-")
            if info.get("trusted_only"):
                fmt += " (trusted-only)"
            lines.append([
                model, SHORT[s], fmt, fmt_bytes(sz.get("model_file")),
                fmt_bytes(sz.get("version_files")), fmt_bytes(sz.get("artifacts_after")),
                "yes" if ck.get("predict_equal") else "NO",
                f"{ck.get('proba_max_abs_diff', float('nan')):.1g}",
            ])
    print_table(
        f"artifact files on disk (1 version; after all {args.register_repeat + 1} versions of "
        "the same model: mlplat stores equal bytes once), and the loaded model against the "
        "in-memory one", headers, lines, first_left=3,
    )


def short(text: str, width: int = 100) -> str:
    text = text.strip().splitlines()[-1] if text.strip() else "error"
    return text if len(text) <= width else text[: width - 3] + "..."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15,
                        help="warm alias moves, loads and predicts per side and model (default 15)")
    parser.add_argument("--register-repeat", type=int, default=5,
                        help="warm registers per side and model, after the cold one (default 5; "
                        "an MLflow register takes ~2-3 s)")
    parser.add_argument("--cold-repeat", type=int, default=1,
                        help="fresh processes per cold figure (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="--repeat 5 --register-repeat 2 --cold-repeat 1")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"comma-separated subset of {','.join(SIDES)} (default: all)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {','.join(MODELS)} (default: all)")
    parser.add_argument("--mlflow-spec", default="mlflow",
                        help="what pip installs into benchmarks/.venv-mlflow (default: mlflow)")
    parser.add_argument("--no-mlflow-torch", action="store_true",
                        help="use benchmarks/.venv-mlflow-notorch, without torch (skops.io then "
                        "imports ~1 s faster on MLflow's side than on ours)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per worker")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="raw results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp stores")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=("register", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    if args.quick:
        args.repeat, args.register_repeat, args.cold_repeat = 5, 2, 1
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = (set(args.sides) - set(SIDES)) | (set(args.models) - set(MODELS))
    if bad:
        parser.error(f"unknown sides or models: {sorted(bad)}")
    if args.repeat < 1 or args.register_repeat < 1 or args.cold_repeat < 1:
        parser.error("--repeat, --register-repeat and --cold-repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="mlplat-bench-registry-"))
    say(f"stores and models: {work}")
    data = work / "sample.pkl"
    fitted = make_data(data)
    say(f"fitted: {', '.join(f'{k} {v:.2f} s' for k, v in fitted['fit_seconds'].items())}")

    sides = [s for s in SIDES if s in args.sides]
    skipped: dict[str, str] = {}
    if any(s.startswith("mlflow") for s in sides):
        error = ensure_mlflow_venv(args.mlflow_spec, args.timeout, not args.no_mlflow_torch)
        if error:
            say(f"[mlflow] skipped: {error}")
            for s in sides:
                if s.startswith("mlflow"):
                    skipped[s] = error
            sides = [s for s in sides if s not in skipped]

    results: dict[tuple[str, str], dict[str, Any]] = {}
    loads: list[float] = []
    for model in args.models:  # the sides one after another for each model
        for side in sides:
            loads.append(os.getloadavg()[0])
            python, env = side_setup(side, not args.no_mlflow_torch)
            home = work / f"{side}-{model}"
            home.mkdir()
            res: dict[str, Any] = {}
            res["register"] = run_worker(python, env, side, "register", model, home, data, args,
                                         args.register_repeat, args.repeat)
            if "error" in res["register"]:
                say(f"  [{side}] {model} register failed: {res['register']['error']}")
                results[(side, model)] = res
                continue
            res["load"] = run_worker(python, env, side, "load", model, home, data, args, 0,
                                     args.repeat)
            if "error" in res["load"]:
                say(f"  [{side}] {model} load failed: {res['load']['error']}")
            res["cold_register"], res["cold_load"] = [], []
            for k in range(1, args.cold_repeat):
                extra = work / f"{side}-{model}-cold{k}"
                extra.mkdir()
                res["cold_register"].append(
                    run_worker(python, env, side, "register", model, extra, data, args, 0, 0))
                res["cold_load"].append(
                    run_worker(python, env, side, "load", model, home, data, args, 0, 0))
            results[(side, model)] = res
            reg, ld = res["register"], res.get("load", {})
            say(
                f"  [{side}] {model}: register cold {fmt_ms(reg['cold']['total'])} ms, warm "
                f"{fmt_ms(median(reg['warm']['register']))} ms; load cold "
                f"{fmt_ms((ld.get('cold') or {}).get('total'))} ms, warm "
                f"{fmt_ms(median((ld.get('warm') or {}).get('load', [])))} ms "
                f"({time.perf_counter() - started:.0f} s)"
            )

    table = collect(results)
    print_tables(table, sides, args.models, args)
    for side, why in skipped.items():
        say(f"{SIDES[side]}: skipped: {short(why)}")
    say(f"1-minute load average: {load_at_start:.2f} at the start, up to "
        f"{max(loads, default=0.0):.2f} during the runs (their own processes and fsyncs count)")
    if load_at_start > (os.cpu_count() or 1) * 0.5:
        say(f"note: the machine was busy before this benchmark started ({load_at_start:.1f} on "
            f"{os.cpu_count()} CPUs); rerun when quiet")

    versions = {
        side: next(
            (r[ph]["versions_installed"] for r in [results.get((side, m), {}) for m in args.models]
             for ph in ("register", "load") if "versions_installed" in r.get(ph, {})),
            None,
        )
        for side in sides
    }
    result = {
        "benchmark": "registry_log_load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "register_repeat": args.register_repeat,
        "cold_repeat": args.cold_repeat,
        "machine": machine(),
        "commit": git_commit(),
        "thread_env": THREAD_ENV,
        "mlflow_env": MLFLOW_ENV,
        "mlflow_venv": str(mlflow_venv(not args.no_mlflow_torch)),
        "models": MODELS,
        "fit_seconds": fitted["fit_seconds"],
        "versions": versions,
        "skipped": skipped,
        "loadavg_1m_at_start": load_at_start,
        "loadavg_1m": loads,
        "total_seconds": time.perf_counter() - started,
        "table": table,
        "raw": {f"{s}/{m}": r for (s, m), r in results.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"raw results: {args.output} (total {result['total_seconds']:.0f} s)")
    if args.keep:
        say(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
