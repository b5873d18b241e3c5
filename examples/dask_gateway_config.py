"""Dask Gateway for jupyter-mlplat under JupyterHub (``dask-gateway-server -f THIS_FILE``).

Started by ``examples/jupyterhub_config.py`` as the hub service ``dask-gateway``: each hub user
gets Dask clusters of their own, authenticated with their hub token, and pipeline steps run in
them (``c.MLPlat.dask_gateway_address``). This file uses the local backend, which starts
schedulers and workers as processes of this machine under the gateway's own OS user: fine for
trying it out and for tests, not for isolating users. A team deployment uses the Kubernetes or
a job-queue backend instead (https://gateway.dask.org/).

========================  ==========================================  ==================
variable                  meaning                                     default
========================  ==========================================  ==================
MLPLAT_GATEWAY_PORT       where clients reach the gateway and their   8785
                          schedulers (HTTP and TLS on one port)
MLPLAT_GATEWAY_STATE      folder for clusters' working files          ./dask-gateway
========================  ==========================================  ==================
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by dask-gateway-server when it loads this file

env = os.environ.get
BIN = os.path.dirname(sys.executable)
STATE = os.path.abspath(env("MLPLAT_GATEWAY_STATE") or "dask-gateway")
os.makedirs(STATE, exist_ok=True)

c.DaskGateway.address = "127.0.0.1:0"  # the gateway's own API, reached through its proxy
# One port for the API and the schedulers' TLS traffic: clients need only the gateway's URL.
c.Proxy.address = f"127.0.0.1:{int(env('MLPLAT_GATEWAY_PORT') or 8785)}"

# Users are who JupyterHub says their token belongs to (the hub gives this service its API
# URL and token); a token needs access:services!service=dask-gateway.
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"

c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.UnsafeLocalBackend.cluster_start_timeout = 120
c.UnsafeLocalBackend.worker_start_timeout = 120
c.UnsafeLocalBackend.clusters_directory = os.path.join(STATE, "clusters")
# dask 2026 has no dask-scheduler / dask-worker scripts: call `dask scheduler` / `dask worker`.
c.ClusterConfig.scheduler_cmd = [os.path.join(BIN, "dask"), "scheduler"]
c.ClusterConfig.worker_cmd = [os.path.join(BIN, "dask"), "worker"]
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_memory = "2 G"
c.ClusterConfig.idle_timeout = 600  # a cluster nobody used for 10 minutes is stopped
c.ClusterConfig.environment = {"PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin"}
