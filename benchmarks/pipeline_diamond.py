"""Side-by-side benchmark: a 4-step diamond pipeline run by jupyter-mlplat and its peers.

The pipeline is ``load -> featurize_a, featurize_b -> train`` with about one second of
scikit-learn work in all, on synthetic data made in ``load`` with numpy's seeded RNG. The SAME
step code runs, one side after another in this one process tree, through:

(a) ``jupyter mlplat run NOTEBOOK --json``: a notebook whose cells are marked as steps. Timed cold
    (a fresh store each repetition), then the nothing-changed rerun (same store), then a rerun
    after adding a comment to ``featurize_a`` (which should execute no step at all);
(b) plain papermill: four step notebooks run one after another by ``papermill.execute_notebook``
    in one ``python -c`` subprocess, passing data through ``.npy`` files;
(c) Ploomber, in its own venv (``benchmarks/.venv-ploomber``, created on first use): four
    percent-format scripts in a ``pipeline.yaml``, ``ploomber build --force`` with the serial and
    the parallel executor, the nothing-changed ``ploomber build`` and the comment-edit rebuild;
(d) the floor: every step's source exec'd in one fresh ``python -c`` process, imports included.

Every figure is the wall clock of a whole subprocess, seen from here. Each side gets one untimed
warm-up run first (bytecode and file caches), then ``--repeat`` timed repetitions, interleaved
side by side. One BLAS/OpenMP thread everywhere. This is a measurement, never a pass/fail test.
Raw results go to ``benchmarks/results/pipeline_diamond.json``.

Usage::

    python benchmarks/pipeline_diamond.py               # 5 repetitions of every side
    python benchmarks/pipeline_diamond.py --quick       # 1 repetition
    python benchmarks/pipeline_diamond.py --repeat 3 --sides floor,mlplat
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import nbformat

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "pipeline_diamond.json"
PLOOMBER_VENV = HERE / ".venv-ploomber"
PLOOMBER_PACKAGES = ["ploomber", "numpy", "scikit-learn", "pandas", "ipykernel", "pyarrow"]
SIDES = ("floor", "papermill", "ploomber", "mlplat")

# One thread for every side, kernels included (they inherit the environment).
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Ploomber's telemetry and version check would reach for the network, which is closed here.
PLOOMBER_ENV = {"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true"}

# ---------------------------------------------------------------------------------------------
# The step code, shared verbatim by every side.

IMPORTS = """\
import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import PolynomialFeatures, SplineTransformer, StandardScaler"""

STEPS: dict[str, str] = {
    "load": """\
rng = np.random.default_rng(0)
X = rng.normal(size=(20_000, 20))
w = rng.normal(size=20)
noise = rng.normal(size=20_000)
y = (X @ w + X[:, 0] * X[:, 1] + np.sin(2 * X[:, 10]) + noise > 0).astype(np.int64)""",
    "featurize_a": """\
poly_a = PolynomialFeatures(degree=3, include_bias=False).fit_transform(X[:, :10])
A = PCA(n_components=16, random_state=0).fit_transform(StandardScaler().fit_transform(poly_a))""",
    "featurize_b": """\
spline_b = SplineTransformer(n_knots=24, degree=3).fit_transform(X[:, 10:])
B = PCA(n_components=16, random_state=0).fit_transform(StandardScaler().fit_transform(spline_b))""",
    "train": """\
F = np.hstack([A, B])
F_train, F_test, y_train, y_test = train_test_split(F, y, test_size=0.25, random_state=0)
clf = RandomForestClassifier(n_estimators=15, max_depth=12, n_jobs=1, random_state=0)
clf.fit(F_train, y_train)
print(f"accuracy={clf.score(F_test, y_test):.4f}")""",
}
# What each step reads (name -> producing step) and writes, where steps pass data through files.
STEP_INPUTS: dict[str, dict[str, str]] = {
    "load": {},
    "featurize_a": {"X": "load"},
    "featurize_b": {"X": "load"},
    "train": {"A": "featurize_a", "B": "featurize_b", "y": "load"},
}
STEP_OUTPUTS: dict[str, list[str]] = {
    "load": ["X", "y"],
    "featurize_a": ["A"],
    "featurize_b": ["B"],
    "train": [],
}
EDIT_STEP = "featurize_a"
EDIT_COMMENT = "# a comment-only edit: no step should run again\n"
ACCURACY_RE = re.compile(r"accuracy=([0-9.]+)")

# ---------------------------------------------------------------------------------------------
# Running and recording.


@dataclass
class Proc:
    """One timed subprocess."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 15) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Row:
    """One line of the results table: a side and one way of running it."""

    key: str
    label: str
    times: list[float] = field(default_factory=list)
    executed: list[int | None] = field(default_factory=list)  # steps that ran, where known
    accuracy: list[float] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)  # per repetition, where a side has them
    error: str | None = None


def timed(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Proc:
    """Run ``cmd`` and time it, wall clock, from just before start to just after exit."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Proc(time.perf_counter() - start, 124, out, f"timed out after {timeout:.0f} s")
    except OSError as exc:
        return Proc(time.perf_counter() - start, 127, "", f"{type(exc).__name__}: {exc}")
    return Proc(time.perf_counter() - start, done.returncode, done.stdout, done.stderr)


def base_env(bin_dir: Path | None = None) -> dict[str, str]:
    """Build the environment of every side: ours minus MLPLAT_*/venv settings, one thread."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLPLAT_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_PATH")
    }
    env.update(THREAD_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def find_accuracy(text: str) -> float | None:
    match = ACCURACY_RE.search(text)
    return float(match.group(1)) if match else None


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# The sides. Each has ``prepare`` (returns an error or None) and ``run(record)``: one repetition
# that returns {row key: (Proc, steps executed or None, accuracy or None)}.

Sample = tuple[Proc, int | None, float | None]


class Side:
    name: ClassVar[str] = ""
    rows: ClassVar[dict[str, str]] = {}

    def __init__(self, work: Path, timeout: float) -> None:
        self.work = work / self.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.python = Path(sys.executable)
        self.env = base_env(self.python.parent)
        self.last_details: dict[str, Any] = {}  # row key -> what the last repetition reported

    def prepare(self) -> str | None:
        return None

    def run(self, rep: int) -> dict[str, Sample]:
        raise NotImplementedError


class FloorSide(Side):
    """(d) Every step's source exec'd in one fresh Python process."""

    name = "floor"
    rows: ClassVar[dict[str, str]] = {"floor": "floor: in-process, one python -c"}

    def prepare(self) -> str | None:
        sources = [IMPORTS, *STEPS.values()]
        (self.work / "steps.json").write_text(json.dumps(sources))
        return None

    def run(self, rep: int) -> dict[str, Sample]:
        code = (
            "import json, sys\n"
            "ns = {'__name__': '__main__'}\n"
            "for i, src in enumerate(json.load(open(sys.argv[1]))):\n"
            "    exec(compile(src, f'<step {i}>', 'exec'), ns)\n"
        )
        proc = timed(
            [str(self.python), "-c", code, str(self.work / "steps.json")],
            self.env,
            self.work,
            self.timeout,
        )
        return {"floor": (proc, len(STEPS), find_accuracy(proc.stdout))}


def step_notebook(cells: list[str]) -> Any:
    """Make a plain nbformat 4.5 notebook of code cells on the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    return nb


def write_notebook(nb: Any, path: Path) -> None:
    """Write ``nb`` to ``path``."""
    nbformat.write(nb, str(path))


class PapermillSide(Side):
    """(b) Four step notebooks through papermill, one after another, data in .npy files."""

    name = "papermill"
    rows: ClassVar[dict[str, str]] = {"papermill": "papermill: 4 notebooks, sequential"}

    def prepare(self) -> str | None:
        if importlib.util.find_spec("papermill") is None:
            return "papermill unavailable: not installed in this Python"
        for step, code in STEPS.items():
            cells = [IMPORTS]
            loads = [f'{var} = np.load("{var}.npy")' for var in STEP_INPUTS[step]]
            if loads:
                cells.append("\n".join(loads))
            cells.append(code)
            saves = [f'np.save("{var}.npy", {var})' for var in STEP_OUTPUTS[step]]
            if saves:
                cells.append("\n".join(saves))
            write_notebook(step_notebook(cells), self.work / f"{step}.ipynb")
        return None

    def run(self, rep: int) -> dict[str, Sample]:
        out = self.work / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for old in self.work.glob("*.npy"):
            old.unlink()
        code = (
            "import sys\n"
            "import papermill as pm\n"
            "work = sys.argv[1]\n"
            "for step in sys.argv[2:]:\n"
            "    pm.execute_notebook(f'{work}/{step}.ipynb', f'{work}/out/{step}.ipynb',\n"
            "                        kernel_name='python3', cwd=work, progress_bar=False)\n"
        )
        proc = timed(
            [str(self.python), "-c", code, str(self.work), *STEPS],
            self.env,
            self.work,
            self.timeout,
        )
        train = out / "train.ipynb"
        accuracy = find_accuracy(train.read_text()) if train.exists() else None
        return {"papermill": (proc, len(STEPS) if proc.ok else None, accuracy)}


class PloomberSide(Side):
    """(c) Ploomber in its own venv: percent-format scripts in a pipeline.yaml."""

    name = "ploomber"
    rows: ClassVar[dict[str, str]] = {
        "ploomber_serial": "ploomber build --force (serial)",
        "ploomber_parallel": "ploomber build --force (parallel)",
        "ploomber_nothing_changed": "ploomber build, nothing changed",
        "ploomber_comment_edit": f"ploomber build, comment in {EDIT_STEP}",
    }

    def prepare(self) -> str | None:
        error = ensure_ploomber_venv(self.timeout)
        if error:
            return f"ploomber unavailable: {error}"
        bin_dir = PLOOMBER_VENV / "bin"
        self.ploomber = bin_dir / "ploomber"
        self.env = base_env(bin_dir)
        self.env.update(PLOOMBER_ENV)
        self.env["VIRTUAL_ENV"] = str(PLOOMBER_VENV)
        for step in STEPS:
            (self.work / f"{step}.py").write_text(self.script(step))
        for executor in ("serial", "parallel"):
            spec = {"executor": executor, "tasks": self.tasks()}
            # YAML is a superset of JSON, so no YAML library is needed here.
            (self.work / f"pipeline.{executor}.yaml").write_text(json.dumps(spec, indent=2))
        return None

    @staticmethod
    def script(step: str, comment: str = "") -> str:
        ups = sorted(set(STEP_INPUTS[step].values()))
        cells = [f'# %% tags=["parameters"]\nupstream = {ups or None!r}\nproduct = None', IMPORTS]
        loads = [
            f'{var} = np.load(upstream["{up}"]["{var}"])' for var, up in STEP_INPUTS[step].items()
        ]
        if loads:
            cells.append("\n".join(loads))
        cells.append(comment + STEPS[step])
        saves = [f'np.save(product["{var}"], {var})' for var in STEP_OUTPUTS[step]]
        if saves:
            cells.append("\n".join(saves))
        body = [cells[0], *(f"# %%\n{cell}" for cell in cells[1:])]
        return "\n\n".join(body) + "\n"

    @staticmethod
    def tasks() -> list[dict[str, Any]]:
        tasks = []
        for step in STEPS:
            product = {"nb": f"products/{step}.ipynb"}
            product.update({var: f"products/{var}.npy" for var in STEP_OUTPUTS[step]})
            tasks.append({"source": f"{step}.py", "product": product})
        return tasks

    def build(self, executor: str, force: bool) -> Proc:
        cmd = [str(self.ploomber), "build", "--entry-point", f"pipeline.{executor}.yaml"]
        if force:
            cmd.append("--force")
        return timed(cmd, self.env, self.work, self.timeout)

    @staticmethod
    def ran(proc: Proc) -> int | None:
        """Tasks Ploomber ran, from its summary table (``True`` in the ``Ran?`` column)."""
        flags = [
            words[1] == "True"
            for words in (line.split() for line in proc.stdout.splitlines())
            if len(words) >= 2 and words[0] in STEPS
        ]
        return sum(flags) if proc.ok and flags else None

    def accuracy(self) -> float | None:
        train = self.work / "products" / "train.ipynb"
        return find_accuracy(train.read_text()) if train.exists() else None

    def run(self, rep: int) -> dict[str, Sample]:
        edit = self.work / f"{EDIT_STEP}.py"
        edit.write_text(self.script(EDIT_STEP))
        serial = self.build("serial", force=True)
        out = {"ploomber_serial": (serial, self.ran(serial), self.accuracy())}
        if not serial.ok:
            return out
        same = self.build("serial", force=False)
        out["ploomber_nothing_changed"] = (same, self.ran(same), None)
        edit.write_text(self.script(EDIT_STEP, comment=EDIT_COMMENT))
        edited = self.build("serial", force=False)
        out["ploomber_comment_edit"] = (edited, self.ran(edited), None)
        edit.write_text(self.script(EDIT_STEP))
        parallel = self.build("parallel", force=True)
        out["ploomber_parallel"] = (parallel, self.ran(parallel), self.accuracy())
        return out


def ensure_ploomber_venv(timeout: float) -> str | None:
    """Create ``benchmarks/.venv-ploomber`` with Ploomber in it, or reuse it; an error or None."""
    python = PLOOMBER_VENV / "bin" / "python"
    check = [str(python), "-c", "import ploomber, sklearn, numpy, pandas, pyarrow, ipykernel"]
    ready = python.exists() and (PLOOMBER_VENV / "bin" / "ploomber").exists()
    if ready and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return None
    say(f"creating {PLOOMBER_VENV} (pip install {' '.join(PLOOMBER_PACKAGES)}) ...")
    env = base_env()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if not python.exists():
        made = timed([sys.executable, "-m", "venv", str(PLOOMBER_VENV)], env, HERE, timeout)
        if not made.ok:
            return f"python -m venv failed: {made.tail()}"
    pip = [str(python), "-m", "pip", "install", "-q", *PLOOMBER_PACKAGES]
    done = timed(pip, env, HERE, max(timeout, 900))
    if not done.ok:
        lines = [ln for ln in done.tail(200).splitlines() if not ln.startswith("WARNING: Loc")]
        return "pip install failed: " + "\n".join(lines[-15:])
    say(f"  installed in {done.seconds:.0f} s")
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        return "ploomber installed but its imports fail"
    return None


class MlplatSide(Side):
    """(a) This project: one notebook with step-marked cells, ``jupyter mlplat run --json``."""

    name = "mlplat"
    rows: ClassVar[dict[str, str]] = {
        "mlplat_cold": "jupyter mlplat run, cold (fresh store)",
        "mlplat_nothing_changed": "jupyter mlplat run, nothing changed",
        "mlplat_comment_edit": f"jupyter mlplat run, comment in {EDIT_STEP}",
    }

    command: ClassVar[list[str]] = ["jupyter", "mlplat"]  # --mlplat-cmd replaces it

    def prepare(self) -> str | None:
        self.cmd = list(self.command)
        dispatched = self.cmd[0] == "jupyter"
        if dispatched and shutil.which("jupyter-mlplat", path=self.env["PATH"]) is None:
            return "jupyter mlplat unavailable: no `jupyter-mlplat` command on PATH"
        found = shutil.which(self.cmd[0], path=self.env["PATH"])
        if found is None:
            return f"jupyter mlplat unavailable: no `{self.cmd[0]}` command on PATH"
        self.cmd[0] = found
        return None

    @staticmethod
    def notebook(comment: str = "") -> Any:
        """The marked notebook; ``comment`` is prepended to the edited step's cell."""
        nb = step_notebook([IMPORTS, *STEPS.values()])
        nb.cells.insert(0, nbformat.v4.new_markdown_cell("# Diamond benchmark pipeline"))
        nb.cells[1].metadata["mlplat"] = {"role": "imports"}
        for cell, step in zip(nb.cells[2:], STEPS, strict=True):
            cell.metadata["mlplat"] = {"step": step}
            if step == EDIT_STEP:
                cell.source = comment + cell.source
        return nb

    def invoke(self, home: Path, path: Path) -> tuple[Proc, int | None, float | None]:
        """One ``jupyter mlplat run``: the process, steps executed, the accuracy printed."""
        env = dict(self.env)
        env.update(
            {
                "MLPLAT_STORE_URL": f"sqlite:///{home}/store.db",
                "MLPLAT_ARTIFACTS_URL": str(home / "artifacts"),
                "MLPLAT_LOGS_DIR": str(home / "logs"),
                "JUPYTER_DATA_DIR": str(home / "data"),
            }
        )
        proc = timed([*self.cmd, "run", str(path), "--json"], env, home, self.timeout)
        if not proc.ok:
            last = proc.tail(1) or "(no output)"
            raise SideError(
                f"jupyter mlplat unavailable: exit {proc.returncode}: {last}\n{proc.tail()}"
            )
        executed, problem = parse_run_json(proc.stdout)
        if problem:
            say(f"  [mlplat] {problem}")
        self.details = run_details(proc.stdout)
        return proc, executed, train_accuracy(proc.stdout)

    def run(self, rep: int) -> dict[str, Sample]:
        home = self.work / f"rep{rep}"
        shutil.rmtree(home, ignore_errors=True)
        (home / "data").mkdir(parents=True)
        path = home / "diamond.ipynb"
        write_notebook(self.notebook(), path)
        out: dict[str, Sample] = {}
        for key, comment in (
            ("mlplat_cold", ""),
            ("mlplat_nothing_changed", ""),
            ("mlplat_comment_edit", EDIT_COMMENT),
        ):
            if comment:
                write_notebook(self.notebook(comment), path)
            out[key] = self.invoke(home, path)
            self.last_details[key] = self.details
        return out


def load_json(stdout: str) -> Any:
    """The JSON document in ``stdout``, or None; log lines may come before it."""
    starts = [0] + [m.start() for m in re.finditer(r"^\{", stdout, re.MULTILINE)]
    for start in starts:
        try:
            return json.loads(stdout[start:])
        except ValueError:
            continue
    return None


def parse_run_json(stdout: str) -> tuple[int | None, str | None]:
    """Count steps run (status not ``cached``) in ``--json`` output; also a problem or None."""
    data = load_json(stdout)
    if data is None:
        return None, f"--json output is not JSON; got: {stdout[:800]!r}"
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        return None, f"no 'steps' list in --json output; got: {json.dumps(data)[:800]}"
    statuses = {str(s.get("name")): str(s.get("status")) for s in steps}
    failed = [n for n, st in statuses.items() if st.lower() in ("failed", "error", "cancelled")]
    if failed:
        raise SideError(f"jupyter mlplat run: steps failed: {statuses}")
    unknown = set(statuses) - set(STEPS)
    note = f"unexpected step names {sorted(unknown)}; statuses: {statuses}" if unknown else None
    return sum(1 for st in statuses.values() if st != "cached"), note


def run_details(stdout: str) -> dict[str, Any] | None:
    """The run's own duration and each step's status and duration, from the run JSON."""
    data = load_json(stdout)
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return None
    steps = {
        str(step.get("name")): {"status": step.get("status"), "duration": step.get("duration")}
        for step in data["steps"]
        if isinstance(step, dict)
    }
    return {"run_duration": data.get("duration"), "steps": steps}


def train_accuracy(stdout: str) -> float | None:
    """The accuracy ``train`` printed, from the executed notebook that the run JSON names."""
    data = load_json(stdout)
    steps = data.get("steps") if isinstance(data, dict) else None
    for step in steps if isinstance(steps, list) else []:
        nb_path = step.get("executed_notebook") if isinstance(step, dict) else None
        if isinstance(nb_path, str) and step.get("name") == "train" and Path(nb_path).is_file():
            return find_accuracy(Path(nb_path).read_text())
    return None


class SideError(RuntimeError):
    """A side cannot go on; its message says why."""


# ---------------------------------------------------------------------------------------------
# Reporting.


def summarise(rows: list[Row], floor: float | None) -> list[dict[str, Any]]:
    summary = []
    for row in rows:
        item: dict[str, Any] = {"key": row.key, "label": row.label, "times_s": row.times}
        if row.times:
            median = statistics.median(row.times)
            item.update(
                median_s=median,
                min_s=min(row.times),
                max_s=max(row.times),
                ratio_to_floor=median / floor if floor else None,
            )
        known = [n for n in row.executed if n is not None]
        item["steps_executed"] = row.executed
        item["steps_executed_max"] = max(known) if known else None
        item["accuracy"] = sorted(set(row.accuracy))
        if row.details:
            item["details"] = row.details
        item["error"] = row.error
        summary.append(item)
    return summary


def print_table(summary: list[dict[str, Any]], repeat: int) -> None:
    """Print the summary as a table (rich when it is installed)."""
    headers = ["side", "median s", "min s", "max s", "x floor", "steps run / note"]
    lines = []
    shown: set[str] = set()
    for item in summary:
        if "median_s" not in item:
            note = short_error(item["error"] or "no data")
            lines.append(
                [item["label"], "-", "-", "-", "-", "(as above)" if note in shown else note]
            )
            shown.add(note)
            continue
        ratio = item["ratio_to_floor"]
        ran = item["steps_executed_max"]
        lines.append(
            [
                item["label"],
                f"{item['median_s']:.2f}",
                f"{item['min_s']:.2f}",
                f"{item['max_s']:.2f}",
                f"{ratio:.1f}x" if ratio else "-",
                "?" if ran is None else f"{ran}/{len(STEPS)}",
            ]
        )
    title = f"4-step diamond, wall clock of the whole command, {repeat} repetition(s)"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(r[i])) for r in [headers, *lines]) for i in range(len(headers))]
        print(title)
        for line in [headers, *lines]:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for line in lines:
        table.add_row(*line)
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


def short_error(error: str, width: int = 110) -> str:
    """The first line of an error (its summary), for a table cell."""
    text = error.strip().splitlines()[0] if error.strip() else "error"
    return text if len(text) <= width else text[: width - 3] + "..."


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in ("numpy", "scikit-learn", "papermill", "ipykernel", "dask", "jupyter-mlplat"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def ploomber_version() -> str | None:
    python = PLOOMBER_VENV / "bin" / "python"
    if not python.exists():
        return None
    code = "from importlib.metadata import version; print(version('ploomber'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5)")
    parser.add_argument("--quick", action="store_true", help="one repetition (--repeat 1)")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated subset of {','.join(SIDES)} (default: all)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="raw results JSON")
    parser.add_argument(
        "--mlplat-cmd",
        default="jupyter mlplat",
        help="the command that side (a) runs as CMD run NOTEBOOK --json (default: jupyter mlplat)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files in /tmp")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(args.sides) - set(SIDES)
    if unknown or args.repeat < 1:
        parser.error(f"unknown sides {sorted(unknown)}" if unknown else "--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit status is 0 unless the arguments are wrong."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mlplat-bench-diamond-"))
    say(f"generated notebooks, scripts and stores: {work}")
    classes: dict[str, type[Side]] = {
        "floor": FloorSide,
        "papermill": PapermillSide,
        "ploomber": PloomberSide,
        "mlplat": MlplatSide,
    }
    MlplatSide.command = shlex.split(args.mlplat_cmd)
    sides = [classes[name](work, args.timeout) for name in SIDES if name in args.sides]
    rows = {key: Row(key, label) for side in sides for key, label in side.rows.items()}
    live: list[Side] = []
    for side in sides:
        error = side.prepare()
        if error is None and not args.no_warmup:
            say(f"[{side.name}] warm-up run (untimed) ...")
            error = run_side(side, -1, rows, record=False)
        if error:
            say(f"[{side.name}] skipped: {error}")
            for key in side.rows:
                rows[key].error = error
        else:
            live.append(side)

    started = time.perf_counter()
    loads: list[float] = []  # 1-minute load average per repetition: other work inflates timings
    for rep in range(args.repeat):
        loads.append(os.getloadavg()[0])
        for side in list(live):
            error = run_side(side, rep, rows, record=True)
            if error:
                say(f"[{side.name}] stopped: {error}")
                for key in side.rows:
                    rows[key].error = error
                live.remove(side)
        elapsed = time.perf_counter() - started
        say(f"repetition {rep + 1}/{args.repeat} done ({elapsed:.0f} s, load {loads[-1]:.2f})")

    report(args, rows, loads)
    if args.keep:
        say(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(args: argparse.Namespace, rows: dict[str, Row], loads: list[float]) -> None:
    """Print the table and notes, and write the raw results JSON."""
    floor_times = rows["floor"].times if "floor" in rows else []
    floor = statistics.median(floor_times) if floor_times else None
    summary = summarise(list(rows.values()), floor)
    print_table(summary, args.repeat)
    busy = max(loads, default=0.0)
    if busy > (os.cpu_count() or 1) * 0.75:
        say(f"note: 1-minute load average up to {busy:.1f} on {os.cpu_count()} CPUs: other work")
        say("      competed with these runs; compare ratios and minima, or rerun when quiet")
    accuracies = {a for item in summary for a in item["accuracy"]}
    if len(accuracies) > 1:
        say(f"note: the sides printed different accuracies: {sorted(accuracies)}")

    result = {
        "benchmark": "pipeline_diamond",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "warmup": not args.no_warmup,
        "machine": machine(),
        "ploomber_version": ploomber_version() if "ploomber" in args.sides else None,
        "thread_env": THREAD_ENV,
        "loadavg_1m_per_repetition": loads,
        "floor_median_s": floor,
        "rows": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"raw results: {args.output}")


def run_side(side: Side, rep: int, rows: dict[str, Row], record: bool) -> str | None:
    """One repetition of ``side``; the error that stops it, or None."""
    try:
        samples = side.run(rep)
    except SideError as exc:
        return str(exc)
    for key, (proc, executed, accuracy) in samples.items():
        if not proc.ok:
            last = proc.tail(1) or "(no output)"
            return f"{side.rows[key]} failed, exit {proc.returncode}: {last}\n{proc.tail()}"
        if record:
            row = rows[key]
            row.times.append(proc.seconds)
            row.executed.append(executed)
            if accuracy is not None:
                row.accuracy.append(accuracy)
            if key in side.last_details:
                row.details.append(side.last_details[key])
        ran = "" if executed is None else f", {executed} step(s) ran"
        tag = "warm-up " if not record else ""
        say(f"  [{side.name}] {tag}{side.rows[key]}: {proc.seconds:.2f} s{ran}")
    return None


if __name__ == "__main__":
    sys.exit(main())
