"""A scheduler for every owner, as a JupyterHub service would run it: its kernels reach the store
through the store service with a short-lived hub token of the schedule's owner, never with the
scheduler's database or tokens (a real JupyterHub, ``tests/hub``'s fixture; marker ``hub``)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import requests

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.loop import SchedulerLoop
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.store.sql import Store
from tests.hub.conftest import hub, hub_store_url  # noqa: F401 - the fixtures

from .conftest import notebook, wait_for

pytestmark = pytest.mark.hub

PROBE = (
    "import os\n"
    "import jupyter_mlplat as mlp\n"
    "from jupyter_mlplat.store import open_store\n"
    "store = open_store()\n"
    "mlp.log_param('store', [type(store).__name__, store.owner])\n"
    "mlp.log_param('env', sorted(k for k, v in os.environ.items() if v))\n"
    "mlp.log_param('urls', [os.environ['MLPLAT_STORE_URL'], os.environ['MLPLAT_ARTIFACTS_URL']])\n"
    "mlp.log_param('token', os.environ['MLPLAT_SERVICE_TOKEN'])"
)


def _pipeline(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    first = nbformat.v4.new_code_cell("values = list(range(3))")
    first.metadata["mlplat"] = {"step": "make"}
    probe = nbformat.v4.new_code_cell(PROBE + "\nassert sum(values) == 3")
    probe.metadata["mlplat"] = {"step": "probe"}
    nb.cells = [params, first, probe]
    path = folder / "probe_pipeline.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_all_owners_gives_kernels_the_store_service_and_a_token_of_the_owner(
        hub, hub_store_url, mlplat_isolated_env, monkeypatch  # noqa: F811
        ) -> None:
    hub.user("bob")
    store_url = hub_store_url or f"sqlite:///{hub.state / 'mlplat.db'}"
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"{hub.url}hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.admin_token)  # holds the 'tokens' scope
    config = MLPlat(store_url=store_url, artifacts_url=str(hub.state / "artifacts"),
                    scheduler_service_url=hub.store_url, dask_workers=1)
    bob_store = Store(store_url, "bob")
    loop = SchedulerLoop(config, all_owners=True, poll_interval=0.1,
                         homes=str(hub.homes / "{username}"))
    home = hub.homes / "bob" / "scheduled"  # the scheduler runs bob's notebooks from his home
    home.mkdir(parents=True, exist_ok=True)
    try:
        bob = ScheduleService(MLPlat(owner="bob", store_url=store_url), store=bob_store)
        ids = [bob.create({"notebook": str(notebook(home, "probe", "x = 1", PROBE)),
                           "cron": "@daily", "paused": True}).id,
               bob.create({"notebook": str(_pipeline(home)), "cron": "@daily",
                           "paused": True, "target": "pipeline"}).id]
        pending = [bob.run_now(sid) for sid in ids]
        loop.start()  # one of bob's firings at a time (half the workers, for several owners)
        wait_for(lambda: all(bob.firing(p.id).status not in ("pending", "running")
                             for p in pending), timeout=240, every=0.5)
        for firing in (bob.firing(p.id) for p in pending):
            assert firing.status == "succeeded", firing.error
            run = bob_store.run_row(firing.run_id)
            assert run.owner == "bob"
            params = {p.name: p.value for p in bob_store.params([run.id])}
            assert params["store"] == ["RemoteStore", "bob"]
            assert params["urls"] == [hub.store_url, hub.store_url]
            assert "JUPYTERHUB_API_TOKEN" not in params["env"]
            assert params["token"] != hub.admin_token
            # the firing's token is revoked when the firing ends
            answer = requests.get(f"{hub.url}hub/api/user", timeout=10,
                                  headers={"Authorization": f"token {params['token']}"})
            assert answer.status_code in (401, 403)
            assert firing.executed_notebook and "/users/bob/" in firing.executed_notebook
    finally:
        loop.stop()
        bob_store.close()
