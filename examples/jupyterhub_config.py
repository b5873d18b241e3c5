"""JupyterHub configuration for a team running jupyter-mlplat (``jupyterhub -f THIS_FILE``).

What it sets up:

- ``jupyter mlplat service`` as the hub service ``mlplat``: the only process that holds the
  store's database URL (with its password) and the artifact folder. User servers, the CLI in a
  user's terminal and step kernels reach both through it, over HTTP, with the user's own hub
  token; every call is scoped to that user.
- ``jupyter mlplat serve --shared`` as the hub service ``mlplat-serve``: every user's
  endpoints, served while their servers are stopped, safe model formats only; users deploy on
  it as themselves (their hub token with the custom scope ``custom:mlplat:deploy``).
- Dask Gateway as the hub service ``dask-gateway`` (``dask_gateway_config.py``): every user's
  pipeline steps run in a Dask cluster of their own.
- ``jupyter mlplat scheduler --all-owners`` as the hub service ``mlplat-scheduler``: every
  user's schedules, fired while their servers are stopped; each firing's kernels reach the store
  through ``mlplat`` with a short-lived hub token of the schedule's owner, and run the owner's
  notebook from the owner's home with an allowed kernel.
- user servers whose environment points the platform at these services
  (``MLPLAT_STORE_URL=mlplat+http://.../services/mlplat``, ``MLPLAT_SERVING_URL``) and whose hub
  token may use them.

Everything a deployment changes is read from ``MLPLAT_HUB_*`` environment variables, with
defaults for a laptop; the project's hub tests run this very file with their own values. For
production, replace the dummy authenticator and the simple spawner (they are for trying it out
on one machine: user servers then run as the hub's own OS user and could read its files) and
give the service a PostgreSQL URL:

    MLPLAT_HUB_STORE_URL=postgresql+psycopg://mlplat:SECRET@db:5432/mlplat
    MLPLAT_HUB_ARTIFACTS_URL=s3://team-bucket/mlplat        (or a folder only the hub can read)

The state folder holds the hub's cookie secret, its database and (by default) the artifacts:
it is made readable by the hub's OS user only (mode 0700). A SQLite store in it is refused
unless ``MLPLAT_HUB_ALLOW_SQLITE=1`` says it is only a trial (one file, every user's rows).

========================  =====================================  =============================
variable                  meaning                                default
========================  =====================================  =============================
MLPLAT_HUB_IP             where the proxy listens                127.0.0.1
MLPLAT_HUB_PORT           the proxy's public port                8000
MLPLAT_HUB_API_PORT       the hub's own port                     8081
MLPLAT_HUB_PROXY_API      the proxy's API port                   8001
MLPLAT_HUB_SERVICE_PORT   the store service's port               8765
MLPLAT_HUB_SERVE_PORT     the shared serve service's port        8766
MLPLAT_HUB_SCHED_PORT     the scheduler service's health port    the serve port + 1 (8767)
MLPLAT_HUB_GATEWAY        0: no Dask Gateway                     1
MLPLAT_HUB_GATEWAY_PORT   the Dask Gateway's HTTP port           8785
MLPLAT_HUB_STATE          folder for the hub's own state         ./jupyterhub-state
MLPLAT_HUB_STORE_URL      the store (SQLAlchemy URL)             sqlite:///<state>/mlplat.db
MLPLAT_HUB_ALLOW_SQLITE   1: accept the SQLite store (a trial)   refused
MLPLAT_HUB_ARTIFACTS_URL  the shared artifact store              <state>/artifacts
MLPLAT_HUB_KERNELS        kernels users' schedules may name      python3,mlplat-python3
MLPLAT_HUB_WEBHOOK_HOSTS  hosts schedule webhooks may reach      any public host
                          (comma-separated; ``*.example.org``)
MLPLAT_HUB_HOMES          user homes (simple spawner only)       /tmp/{username}
MLPLAT_HUB_CHP            configurable-http-proxy executable     configurable-http-proxy
MLPLAT_HUB_ADMIN_TOKEN    if set: an admin service ``mlplat-admin`` holding this token
========================  =====================================  =============================
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

env = os.environ.get
BIN = os.path.dirname(sys.executable)  # the environment JupyterHub runs in has jupyter-mlplat
STATE = os.path.abspath(env("MLPLAT_HUB_STATE") or "jupyterhub-state")
# The hub's cookie secret, databases and artifacts: for the hub's OS user only.
os.makedirs(STATE, mode=0o700, exist_ok=True)
os.chmod(STATE, 0o700)
HUB_IP = env("MLPLAT_HUB_IP") or "127.0.0.1"
HUB_PORT = int(env("MLPLAT_HUB_PORT") or 8000)
SERVICE_PORT = int(env("MLPLAT_HUB_SERVICE_PORT") or 8765)
SERVE_PORT = int(env("MLPLAT_HUB_SERVE_PORT") or 8766)
STORE_URL = env("MLPLAT_HUB_STORE_URL") or f"sqlite:///{STATE}/mlplat.db"
if STORE_URL.startswith("sqlite") and env("MLPLAT_HUB_ALLOW_SQLITE") != "1":
    raise SystemExit(
        "jupyterhub_config.py: the shared store is a SQLite file; a team hub needs PostgreSQL "
        "(MLPLAT_HUB_STORE_URL=postgresql+psycopg://USER:PASSWORD@HOST/DB). To try it out on "
        "one machine anyway, set MLPLAT_HUB_ALLOW_SQLITE=1.")
ARTIFACTS_URL = env("MLPLAT_HUB_ARTIFACTS_URL") or os.path.join(STATE, "artifacts")
PATH = f"{BIN}:/usr/local/bin:/usr/bin:/bin"

# -- the hub ----------------------------------------------------------------------------------
c.JupyterHub.ip = HUB_IP
c.JupyterHub.port = HUB_PORT
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("MLPLAT_HUB_API_PORT") or 8081)
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env('MLPLAT_HUB_PROXY_API') or 8001)}"
c.ConfigurableHTTPProxy.command = [env("MLPLAT_HUB_CHP") or "configurable-http-proxy"]
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = os.path.join(STATE, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE, "jupyterhub-proxy.pid")

# Trying it out: any name logs in, servers run as the hub's own OS user. Replace both for real
# use (an OAuthenticator or LDAP; SystemdSpawner, DockerSpawner or KubeSpawner).
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = env("MLPLAT_HUB_HOMES") or "/tmp/{username}"
c.Spawner.cmd = [os.path.join(BIN, "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"] if os.getuid() == 0 else []
c.Spawner.default_url = "/lab"

# -- the store service ------------------------------------------------------------------------
# The one process with the database credentials. Its URL is also reachable through the proxy
# at /services/mlplat/; user servers use the direct one.
SERVICE_URL = f"http://127.0.0.1:{SERVICE_PORT}"
services = [{
    "name": "mlplat",
    "url": SERVICE_URL,
    "command": [os.path.join(BIN, "jupyter-mlplat"), "service"],
    "environment": {"MLPLAT_STORE_URL": STORE_URL, "MLPLAT_ARTIFACTS_URL": ARTIFACTS_URL,
                    "PATH": PATH, "JUPYTER_DATA_DIR": os.path.join(STATE, "service-data"),
                    # what users' schedules may name (the scheduler runs them as a service)
                    "MLPLAT_SERVICE_KERNELS": env("MLPLAT_HUB_KERNELS")
                    or "python3,mlplat-python3",
                    "MLPLAT_SERVICE_WEBHOOK_HOSTS": env("MLPLAT_HUB_WEBHOOK_HOSTS") or ""},
    "display": False,
}]

# -- the shared serve service -----------------------------------------------------------------
# Every user's endpoints in one process that outlives user servers, each user's under
# /services/mlplat-serve/users/<name>/; models load in safe formats only. Its admin API
# (deploy, traffic, undeploy, reload) takes the user's hub token with custom:mlplat:deploy and
# acts as that user only.
SERVE_URL = f"http://127.0.0.1:{SERVE_PORT}"
services.append({
    "name": "mlplat-serve",
    "url": SERVE_URL,
    "command": [os.path.join(BIN, "jupyter-mlplat"), "serve", "--shared",
                "--public-url", f"http://{HUB_IP}:{HUB_PORT}/services/mlplat-serve"],
    "environment": {"MLPLAT_STORE_URL": STORE_URL, "MLPLAT_ARTIFACTS_URL": ARTIFACTS_URL,
                    "PATH": PATH, "JUPYTER_DATA_DIR": os.path.join(STATE, "serve-data")},
    "display": False,
})
c.JupyterHub.custom_scopes = {
    "custom:mlplat:deploy": {
        "description": "Deploy, change and undeploy your own endpoints on the shared serve "
                       "service (mlplat-serve).",
    },
}

# Every user may call the services with their own tokens, and the token of their server (which
# the platform in the server, its terminals and its kernels use) carries that permission.
USER_SCOPES = ["access:services!service=mlplat", "access:services!service=mlplat-serve",
               "custom:mlplat:deploy"]

# -- Dask Gateway: a Dask cluster of their own for every user ---------------------------------
# Pipeline steps of a user run in that user's cluster (MLPLAT_DASK_GATEWAY_ADDRESS below). See
# dask_gateway_config.py beside this file for the backend. MLPLAT_HUB_GATEWAY=0 leaves it out.
GATEWAY = (env("MLPLAT_HUB_GATEWAY") or "1") != "0"
GATEWAY_PORT = int(env("MLPLAT_HUB_GATEWAY_PORT") or 8785)
if GATEWAY:
    services.append({
        "name": "dask-gateway",
        "command": [os.path.join(BIN, "dask-gateway-server"), "--config",
                    os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "dask_gateway_config.py")],
        "environment": {
            "MLPLAT_GATEWAY_PORT": str(GATEWAY_PORT),
            "MLPLAT_GATEWAY_STATE": os.path.join(STATE, "dask-gateway"), "PATH": PATH,
        },
        "display": False,
    })
    USER_SCOPES.append("access:services!service=dask-gateway")
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", *USER_SCOPES]},
]
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                 *USER_SCOPES]

# What a user server (and every kernel, terminal and Dask worker it starts) sees: the service as
# the store and the artifact store; no database URL, no password.
c.Spawner.environment = {
    "MLPLAT_STORE_URL": f"mlplat+{SERVICE_URL}/services/mlplat",
    # endpoints are served by the shared service, not by a serve process of the user's server
    "MLPLAT_SERVING_URL": lambda spawner: f"{SERVE_URL}/services/mlplat-serve/users/"
                                          f"{spawner.user.escaped_name}",
    "PATH": PATH,
}
if GATEWAY:
    c.Spawner.environment["MLPLAT_DASK_GATEWAY_ADDRESS"] = f"http://127.0.0.1:{GATEWAY_PORT}"

# -- the scheduler service -------------------------------------------------------------------
# Everyone's schedules, fired while their servers are stopped: `jupyter mlplat scheduler
# --all-owners` holds the database URL itself (it claims slots under leases in the store), and
# each firing's kernels get the store service instead, with a hub token of the schedule's
# owner made for that firing (its role below: `tokens`, nothing more; the token's scopes are
# bounded by what the owner may do). Notebooks are found in the owners' homes (paths stored
# relative to them; one leading out is refused) and run on the allowed kernels only. Its
# health is at /services/mlplat-scheduler/health (200 while it polls).
SCHEDULER_PORT = int(env("MLPLAT_HUB_SCHED_PORT") or SERVE_PORT + 1)
# the spawner's home folders; with another spawner, its template (e.g. /home/{username})
SCHEDULER_HOMES = c.SimpleLocalProcessSpawner.home_dir_template
SCHEDULER_KERNELS = env("MLPLAT_HUB_KERNELS") or "python3,mlplat-python3"
services.append({
    "name": "mlplat-scheduler",
    "url": f"http://127.0.0.1:{SCHEDULER_PORT}",
    "command": [os.path.join(BIN, "jupyter-mlplat"), "scheduler", "--all-owners",
                "--homes", SCHEDULER_HOMES, "--kernels", SCHEDULER_KERNELS,
                "--health-port", str(SCHEDULER_PORT),
                # a trial as root on one machine; a team runs it as an unprivileged user
                *(["--allow-root"] if os.getuid() == 0 else [])],
    "environment": {"MLPLAT_STORE_URL": STORE_URL, "MLPLAT_ARTIFACTS_URL": ARTIFACTS_URL,
                    "MLPLAT_SCHEDULER_SERVICE_URL": f"mlplat+{SERVICE_URL}/services/mlplat",
                    "PATH": PATH, "JUPYTER_DATA_DIR": os.path.join(STATE, "scheduler-data")},
    "display": False,
})
c.JupyterHub.load_roles.append({
    "name": "mlplat-scheduler",
    "scopes": ["tokens"],  # a short-lived token of each schedule's owner, per firing
    "services": ["mlplat-scheduler"],
})
# Scheduled kernels run as the hub's OS user (the scheduler is the hub's child and makes itself
# non-dumpable): keep the hub's own environment and memory (tokens, the database URL) out of
# their reach too. Only in the hub process itself, not where this file is merely read.
_hub_app = sys.modules.get("jupyterhub.app")
if _hub_app is not None and _hub_app.JupyterHub.initialized():
    from jupyter_mlplat.scheduler.hardening import make_non_dumpable

    make_non_dumpable()

# -- an admin client (scripts, the project's tests) -------------------------------------------
if env("MLPLAT_HUB_ADMIN_TOKEN"):
    services.append({"name": "mlplat-admin", "api_token": env("MLPLAT_HUB_ADMIN_TOKEN")})
    c.JupyterHub.load_roles.append({
        "name": "mlplat-admin",
        "scopes": ["admin:users", "admin:servers", "admin:groups", "access:servers", "tokens",
                   "access:services"],
        "services": ["mlplat-admin"],
    })

c.JupyterHub.services = services
