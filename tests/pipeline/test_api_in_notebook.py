"""``mlp.run`` from inside a notebook: a real kernel, a live ipywidgets display, then the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import step
from .nbbuild import code, notebook, write

pytestmark = pytest.mark.timeout(240)


def test_mlp_run_in_a_kernel_shows_progress_and_returns_the_run(tmp_path: Path):
    import papermill

    from jupyter_mlplat.pipeline.step import import_papermill

    import_papermill()
    pipeline = write(tmp_path, "pipe", notebook(
        step("make", "values = [1, 2, 3]"),
        step("total", "import jupyter_mlplat as mlp\ns = sum(values)\nmlp.log_metric('s', s)"),
    ))
    driver = write(tmp_path, "driver", notebook(code(
        "import jupyter_mlplat as mlp\n"
        f"run = mlp.run({str(pipeline)!r})\n"
        "assert run.status == 'succeeded', run\n"
        "assert run.metrics == {'s': 6.0}, run.metrics\n"
        "assert [s.status for s in run.steps] == ['succeeded', 'succeeded']\n"
        "frame = mlp.runs()\n"
        "assert frame.loc[0, 'metric.s'] == 6.0\n"
        "assert mlp.load_output(run, 'make', 'values') == [1, 2, 3]\n"
        "again = mlp.run(" + repr(str(pipeline)) + ")\n"
        "assert [s.status for s in again.steps] == ['cached', 'cached']\n"
    )))
    out = tmp_path / "driver.out.ipynb"
    papermill.execute_notebook(str(driver), str(out), kernel_name="python3", progress_bar=False,
                               cwd=str(tmp_path))
    outputs = json.loads(out.read_text())["cells"][0]["outputs"]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in
               o.get("data", {})]
    assert len(widgets) == 2  # one live progress display per mlp.run call
