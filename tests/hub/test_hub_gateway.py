"""Dask Gateway through a real JupyterHub (``-m hub``): each user's steps run in their own cluster.

The gateway is the hub service ``dask-gateway`` of ``examples/jupyterhub_config.py`` (local
backend, ``dask scheduler`` / ``dask worker``), authenticating users with their hub tokens.
"""

from __future__ import annotations

import json

import pytest

from .pipelines import run_cli, write_pipeline

pytestmark = pytest.mark.hub


def gateway_as(hub, user: str):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    return Gateway(hub.gateway_url, auth=JupyterHubAuth(api_token=hub.user(user)))


def test_steps_run_in_the_users_own_gateway_cluster(hub, tmp_path):
    notebook = tmp_path / "where.ipynb"
    write_pipeline(notebook, where=True)
    env = {"MLPLAT_DASK_GATEWAY_ADDRESS": hub.gateway_url, "MLPLAT_DASK_GATEWAY_WORKERS": "1"}
    alice_gateway, bob_gateway = gateway_as(hub, "alice"), gateway_as(hub, "bob")
    # a cluster alice started by hand, for something else: never used, never stopped
    own = alice_gateway.new_cluster(shutdown_on_close=True)

    def cluster_of(user: str) -> str:
        run = json.loads(run_cli(hub, user, tmp_path, "run", notebook, "--json",
                                 "--force", "where", env=env).stdout)
        assert run["status"] == "succeeded", run
        assert hub.store(user).run_row(run["id"]).owner == user
        return {s["name"]: s for s in run["steps"]}["where"]["params"]["cluster"]

    try:
        first = cluster_of("alice")
        assert first not in ("none", own.name)
        # the platform's cluster outlives the process that started it (another process of
        # alice's, such as her server, may be using it) and her next run attaches to it
        running = {c.name for c in alice_gateway.list_clusters()}
        assert running == {first, own.name}
        assert cluster_of("alice") == first

        # bob's run gets a cluster of his own; he can neither see nor join alice's
        bobs = cluster_of("bob")
        assert bobs not in ("none", first, own.name)
        assert {c.name for c in bob_gateway.list_clusters()} == {bobs}
        with pytest.raises(Exception, match="403"):  # the gateway refuses him
            bob_gateway.connect(first)
        assert {c.name for c in alice_gateway.list_clusters()} == {first, own.name}
    finally:
        own.close()  # shuts it down too (shutdown_on_close)
        for gateway in (alice_gateway, bob_gateway):
            for cluster in gateway.list_clusters():
                gateway.stop_cluster(cluster.name)
            gateway.close()
