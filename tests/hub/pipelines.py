"""A small pipeline and the CLI run as one hub user (their token, the service, no database)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat

CLI = [sys.executable, "-m", "jupyter_mlplat.cli.main"]

#: A model with a predict method but no safe format: saved with cloudpickle, trusted-only.
PICKLED_STEP = '''class Threshold:
    def __init__(self, cut):
        self.cut = cut

    def predict(self, X):
        return (X[:, 0] > self.cut).astype(int)


mlp.log_model(Threshold(1.5), "pickled", sample_input=X[:2])'''


def write_pipeline(path: Path, *, pickled: bool = False, where: bool = False) -> None:
    """Steps: data; a scikit-learn model ``tiny`` logged in a step; a step that loads it back
    from the registry (the kernel reaching the store); with ``pickled``, also a cloudpickle
    model ``pickled``; with ``where``, a step logging its Dask Gateway cluster as a param."""
    cells: list[tuple[str, dict[str, Any]]] = [
        ("import numpy as np\nimport jupyter_mlplat as mlp\n"
         "from sklearn.linear_model import LogisticRegression", {"tags": ["imports"]}),
        ("X = np.array([[0.0], [1.0], [2.0], [3.0]])\ny = np.array([0, 0, 1, 1])",
         {"mlplat": {"step": "load"}}),
        ("model = LogisticRegression().fit(X, y)\nmlp.log_metric('acc', model.score(X, y))\n"
         "mlp.log_model(model, 'tiny', sample_input=X[:2])", {"mlplat": {"step": "train"}}),
        ("loaded = mlp.load_model('tiny')\nprediction = [int(v) for v in loaded.predict(X)]\n"
         "assert prediction == [0, 0, 1, 1], prediction",
         {"mlplat": {"step": "use", "after": ["train"]}}),
    ]
    if pickled:
        cells.append((PICKLED_STEP, {"mlplat": {"step": "pickle"}}))
    if where:  # the Dask Gateway cluster a step ran in (its workers' environment says)
        cells.append(("import os\nmlp.log_param('cluster', "
                      "os.environ.get('DASK_GATEWAY_CLUSTER_NAME', 'none'))",
                      {"mlplat": {"step": "where"}}))
    nb = nbformat.v4.new_notebook()
    for source, meta in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata.update(meta)
        nb.cells.append(cell)
    nbformat.write(nb, path)


def run_cli(hub: Any, user: str, tmp_path: Path, *args: Any, expect: int = 0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``jupyter mlplat ARGS`` as ``user`` would run it in a terminal of their server (plus
    ``env``)."""
    data = tmp_path / f"{user}-data"
    data.mkdir(exist_ok=True)
    proc = subprocess.run([*CLI, *map(str, args)], cwd=tmp_path,
                          env=hub.user_env(user, data, **(env or {})),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, (args, proc.stdout[-3000:], proc.stderr[-3000:],
                                       hub.log_tail(3000))
    return proc
