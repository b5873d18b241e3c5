"""mlp.widgets: the runs browser and the deploy form (their logic here, a real kernel last)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.errors import NotFoundError
from jupyter_mlplat.serving.deploy import DeployService
from jupyter_mlplat.widgets import DeployForm, RunsBrowser
from tests.cli.test_deploy_cli import _version


@pytest.fixture
def deployer() -> DeployService:
    svc = DeployService(MLPlat())
    yield svc
    svc.store.close()


def test_deploy_form_orders_blessed_first_and_gates_the_release(deployer: DeployService):
    v1 = _version(deployer, 0.5)      # blessed
    v2 = _version(deployer, 0.999)    # rejected
    form = DeployForm()
    labels = [label for label, _ in form.version.options]
    assert [v for _, v in form.version.options] == [v1, v2]
    assert labels[0].startswith(f"v{v1}") and "blessed" in labels[0]
    assert "rejected" in labels[1]
    assert form.endpoint.value == "churn"

    form.version.value = v2
    assert form.deploy() is None
    assert "not blessed" in form.result.value and "rejected" in form.result.value
    assert deployer.list().endpoints == []  # refused: nothing deployed

    form.force.value = True
    assert form.deploy() is None and "reason" in form.result.value  # forced needs a reason
    form.reason.value = "hotfix <b>now</b>"
    result = form.deploy()
    assert result is not None and result.forced and result.token
    assert "forced" in form.result.value and result.token in form.result.value
    assert "<b>now</b>" not in form.result.value  # user text is escaped

    form.force.value = False
    form.version.value = v1
    form.canary.value = 10
    canary = form.deploy()
    assert {(r.version, r.weight) for r in canary.endpoint.routes} == {(v1, 10), (v2, 90)}
    assert canary.token is None  # shown once, at creation
    assert deployer.describe("churn").revision == 2


def test_deploy_form_unknown_model_is_a_clear_error(deployer: DeployService):
    with pytest.raises(NotFoundError, match="no registered model named 'nope'"):
        DeployForm("nope")
    empty = DeployForm()
    assert empty.model.options == () and "log_model" in empty.result.value


def test_runs_browser_lists_runs_and_shows_one(deployer: DeployService):
    store = deployer.store
    pid = store.pipeline_id("churn-nb", "/churn.ipynb")
    run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/churn.ipynb",
                              parameters={"alpha": 0.5}, options={}, steps=["train"])
    store.log_metrics(run_id, None, [{"name": "auc", "value": 0.875}])
    store.finish_run(run_id, "failed", "boom")
    browser = RunsBrowser()
    assert run_id[:8] in browser.table.value and "failed" in browser.table.value
    assert "auc=0.875" in browser.table.value
    browser.picker.value = run_id
    assert "train" in browser.detail.value and "alpha" in browser.detail.value
    assert "0.875" in browser.detail.value
    other = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/churn.ipynb",
                             parameters={}, options={}, steps=["train"])
    browser.refresh_button.click()
    assert other[:8] in browser.table.value
    assert browser.picker.value == run_id  # the selection survives a refresh


@pytest.mark.timeout(240)
def test_widgets_display_in_a_real_kernel(deployer: DeployService, tmp_path: Path):
    import papermill

    from jupyter_mlplat.pipeline.step import import_papermill

    import_papermill()
    _version(deployer, 0.5)
    from tests.pipeline.nbbuild import code, notebook, write

    driver = write(tmp_path, "driver", notebook(code(
        "import jupyter_mlplat as mlp\n"
        "form = mlp.widgets.deploy('churn')\n"
        "result = form.deploy()\n"
        "assert result is not None and result.endpoint.name == 'churn', form.result.value\n"
        "browser = mlp.widgets.runs()\n"
        "assert 'succeeded' in browser.table.value or 'running' in browser.table.value, "
        "browser.table.value\n"
    )))
    out = tmp_path / "driver.out.ipynb"
    papermill.execute_notebook(str(driver), str(out), kernel_name="python3", progress_bar=False,
                               cwd=str(tmp_path))
    outputs = json.loads(out.read_text())["cells"][0]["outputs"]
    shown = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in
             o.get("data", {})]
    assert len(shown) == 2  # the form and the runs browser
    assert deployer.describe("churn").deployed
