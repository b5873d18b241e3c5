"""Every setting of the platform, read in one place.

The same names serve every front door: traitlets config for the server extension
(``c.MLPlat.store_url``) and ``MLPLAT_*`` environment variables for the CLI, the Python API and
step kernels. Defaults live under ``jupyter_data_dir()`` so ``JUPYTER_DATA_DIR`` moves them all.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from traitlets import Bool, Enum, Float, Int, Unicode, default
from traitlets.config import Configurable

ENV_PREFIX = "MLPLAT_"


def data_dir() -> Path:
    """The platform's folder under the Jupyter data dir (``.../jupyter/mlplat``)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "mlplat"


def current_owner() -> str:
    """The owner name every front door uses: the JupyterHub user, else the OS user."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def _env(name: str) -> str | None:
    value = os.environ.get(ENV_PREFIX + name.upper())
    return value if value else None


class MLPlat(Configurable):
    """Settings of jupyter-mlplat. Each trait also reads ``MLPLAT_<NAME>`` from the environment."""

    store_url = Unicode(
        help="SQLAlchemy URL of the store. Default: a SQLite file under the Jupyter data dir."
    ).tag(config=True)
    artifacts_url = Unicode(
        help="fsspec URL of the artifact store. Default: a folder under the Jupyter data dir."
    ).tag(config=True)
    dask_address = Unicode(
        "", help="Address of an existing Dask scheduler. Empty: a LocalCluster started on first use."
    ).tag(config=True)
    dask_workers = Int(
        0, help="Workers of the default LocalCluster (0: one per core, at most 4)."
    ).tag(config=True)
    dask_processes = Bool(
        False, help="Workers of the default LocalCluster as processes (True) or threads in this "
        "process (False: faster to start; steps run in their own kernel processes either way)."
    ).tag(config=True)
    serving_url = Unicode("", help="URL of a running `jupyter mlplat serve`.").tag(config=True)
    # -- server extension
    serve_on_demand = Bool(
        True, help="Server extension: when no serving_url is set, start `jupyter mlplat serve` "
        "for this user on first endpoint use (stopped with the server)."
    ).tag(config=True)
    events_interval = Float(
        2.0, help="Server extension: seconds between checks for changes of runs started "
        "elsewhere (the CLI, another server) pushed to event-stream clients; runs started by "
        "the server itself are pushed at once."
    ).tag(config=True)
    logs_dir = Unicode(help="Folder for run logs. Default: under the Jupyter data dir.").tag(
        config=True
    )
    kernel_name = Unicode(
        "", help="Kernel spec steps run with when a step names none. Empty: mlplat-python3 "
        "when installed, else python3."
    ).tag(config=True)
    warm_kernels = Bool(
        True, help="Keep pre-started kernels (imports already run) on each worker."
    ).tag(config=True)
    fork_kernels = Bool(
        True, help="Fork warm kernels from a template process that ran the pipeline's imports "
        "(when no BLAS/OpenMP thread pools are configured); off: every kernel a new process."
    ).tag(config=True)
    owner = Unicode(help="Owner of everything this process creates.").tag(config=True)
    gpu_fallback = Enum(
        ["cpu", "fail"], help="A step asking for GPUs on the local cluster of a machine without "
        "any: run it on the CPU with a note ('cpu', its `mlp.device()` says 'cpu') or fail it "
        "at once ('fail'). A configured cluster (dask_address) always fails fast."
    ).tag(config=True)

    @default("store_url")
    def _default_store_url(self) -> str:
        return _env("store_url") or f"sqlite:///{data_dir() / 'mlplat.db'}"

    @default("artifacts_url")
    def _default_artifacts_url(self) -> str:
        value = _env("artifacts_url")
        if value:
            return value
        # A store reached through `jupyter mlplat service` keeps the artifacts there too.
        if self.store_url.startswith(("mlplat+http://", "mlplat+https://")):
            return self.store_url
        return str(data_dir() / "artifacts")

    @default("dask_address")
    def _default_dask_address(self) -> str:
        gateway = self.dask_gateway_address  # a user's own cluster through Dask Gateway
        return _env("dask_address") or (f"gateway+{gateway}" if gateway else "")

    @default("dask_workers")
    def _default_dask_workers(self) -> int:
        value = _env("dask_workers")
        return int(value) if value else 0

    @default("dask_processes")
    def _default_dask_processes(self) -> bool:
        value = _env("dask_processes")
        return value is not None and value.lower() in {"1", "true", "yes", "on"}

    @default("serving_url")
    def _default_serving_url(self) -> str:
        return _env("serving_url") or ""

    @default("serve_on_demand")
    def _default_serve_on_demand(self) -> bool:
        value = _env("serve_on_demand")
        return value is None or value.lower() not in {"0", "false", "no", "off"}

    @default("events_interval")
    def _default_events_interval(self) -> float:
        value = _env("events_interval")
        return float(value) if value else 2.0

    @default("logs_dir")
    def _default_logs_dir(self) -> str:
        return _env("logs_dir") or str(data_dir() / "logs")

    @default("kernel_name")
    def _default_kernel_name(self) -> str:
        return _env("kernel_name") or ""

    @default("warm_kernels")
    def _default_warm_kernels(self) -> bool:
        value = _env("warm_kernels")
        return value is None or value.lower() not in {"0", "false", "no", "off"}

    @default("fork_kernels")
    def _default_fork_kernels(self) -> bool:
        value = _env("fork_kernels")
        return value is None or value.lower() not in {"0", "false", "no", "off"}

    @default("gpu_fallback")
    def _default_gpu_fallback(self) -> str:
        value = (_env("gpu_fallback") or "cpu").lower()
        return value if value in ("cpu", "fail") else "cpu"

    @default("owner")
    def _default_owner(self) -> str:
        return current_owner()

    def env(self) -> dict[str, str]:
        """The settings as ``MLPLAT_*`` variables, for child processes and step kernels."""
        return {
            "MLPLAT_STORE_URL": self.store_url,
            "MLPLAT_ARTIFACTS_URL": self.artifacts_url,
            "MLPLAT_LOGS_DIR": self.logs_dir,
            **({"MLPLAT_DASK_ADDRESS": self.dask_address} if self.dask_address else {}),
            **({"MLPLAT_SERVING_URL": self.serving_url} if self.serving_url else {}),
            **({"MLPLAT_DASK_GATEWAY_ADDRESS": self.dask_gateway_address}
               if self.dask_gateway_address else {}),
        }

    # -- scheduling (jupyter_mlplat.scheduler) -----------------------------------------------------
    run_scheduler = Bool(
        help="Server extension: run the scheduler loop for this user's schedules. Default: on, "
        "off under JupyterHub (run `jupyter mlplat scheduler` as a service there, so schedules "
        "fire while the user's server is stopped)."
    ).tag(config=True)
    scheduler_poll_interval = Float(
        help="Seconds between a scheduler's looks for due slots (default 5)."
    ).tag(config=True)
    scheduler_lease = Float(
        help="Seconds a scheduler's lease on a schedule lasts unless renewed: another scheduler "
        "process takes a schedule over this long after its holder died (default 30)."
    ).tag(config=True)
    scheduler_misfire_grace = Float(
        help="A slot later than this many seconds is missed: handled by the schedule's `missed` "
        "policy instead of firing on its own (default 120)."
    ).tag(config=True)
    scheduler_workers = Int(
        help="Firings one scheduler process runs at the same time (default 2)."
    ).tag(config=True)
    notify_timeout = Float(
        help="Seconds a webhook or the SMTP server gets to answer a notification (default 10)."
    ).tag(config=True)
    smtp_host = Unicode(help="SMTP server for e-mail notifications (empty: none).").tag(
        config=True)
    smtp_port = Int(help="SMTP port (default 587).").tag(config=True)
    smtp_starttls = Bool(help="Use STARTTLS (default on, off for port 25).").tag(config=True)
    smtp_username = Unicode(help="SMTP login (empty: none).").tag(config=True)
    smtp_password = Unicode(help="SMTP password (MLPLAT_SMTP_PASSWORD; never logged).").tag(
        config=True)
    smtp_from = Unicode(help="Sender address of notifications (default: mlplat@<host>).").tag(
        config=True)

    @default("run_scheduler")
    def _default_run_scheduler(self) -> bool:
        value = _env("run_scheduler")
        if value is not None:
            return value.lower() not in {"0", "false", "no", "off"}
        return not (os.environ.get("JUPYTERHUB_USER") or os.environ.get("JUPYTERHUB_API_TOKEN"))

    @default("scheduler_poll_interval")
    def _default_scheduler_poll_interval(self) -> float:
        return _env_number("scheduler_poll_interval", 5.0)

    @default("scheduler_lease")
    def _default_scheduler_lease(self) -> float:
        return _env_number("scheduler_lease", 30.0)

    @default("scheduler_misfire_grace")
    def _default_scheduler_misfire_grace(self) -> float:
        return _env_number("scheduler_misfire_grace", 120.0)

    @default("scheduler_workers")
    def _default_scheduler_workers(self) -> int:
        return max(1, int(_env_number("scheduler_workers", 2)))

    @default("notify_timeout")
    def _default_notify_timeout(self) -> float:
        return _env_number("notify_timeout", 10.0)

    @default("smtp_host")
    def _default_smtp_host(self) -> str:
        return _env("smtp_host") or ""

    @default("smtp_port")
    def _default_smtp_port(self) -> int:
        return int(_env_number("smtp_port", 587))

    @default("smtp_starttls")
    def _default_smtp_starttls(self) -> bool:
        value = _env("smtp_starttls")
        if value is not None:
            return value.lower() not in {"0", "false", "no", "off"}
        return self.smtp_port != 25

    @default("smtp_username")
    def _default_smtp_username(self) -> str:
        return _env("smtp_username") or ""

    @default("smtp_password")
    def _default_smtp_password(self) -> str:
        return _env("smtp_password") or ""

    @default("smtp_from")
    def _default_smtp_from(self) -> str:
        import socket

        return _env("smtp_from") or f"mlplat@{socket.gethostname()}"

    # -- scheduling: limits, kernels' environment, webhooks (jupyter_mlplat.scheduler) -----------
    scheduler_timeout = Float(
        help="Seconds a firing may run when its schedule sets no timeout; then it is stopped "
        "(0: no limit; default 21600, six hours)."
    ).tag(config=True)
    scheduler_owner_workers = Int(
        help="Firings of one owner a scheduler runs at the same time (0, the default: half of "
        "scheduler_workers when it serves several owners, all of them for one owner)."
    ).tag(config=True)
    scheduler_service_url = Unicode(
        help="A scheduler for several owners (--all-owners): the store service "
        "(mlplat+http(s)://HOST/services/mlplat) that each firing's kernels reach the store "
        "through, with a short-lived hub token of the schedule's owner. Required there."
    ).tag(config=True)
    scheduler_kernel_env = Unicode(
        help="Names of environment variables (comma-separated, * wildcards, e.g. 'AWS_*') a "
        "scheduler passes on to the kernels it starts, besides a basic set (PATH, HOME, locale, "
        "Jupyter paths, thread settings). Its own tokens and passwords are never passed."
    ).tag(config=True)
    notify_allowed_networks = Unicode(
        help="Non-public addresses or networks (comma-separated, e.g. '10.0.0.0/8') webhook "
        "notifications may reach; by default only public addresses are called."
    ).tag(config=True)

    @default("scheduler_timeout")
    def _default_scheduler_timeout(self) -> float:
        return _env_number("scheduler_timeout", 21600.0)

    @default("scheduler_owner_workers")
    def _default_scheduler_owner_workers(self) -> int:
        return max(0, int(_env_number("scheduler_owner_workers", 0)))

    @default("scheduler_service_url")
    def _default_scheduler_service_url(self) -> str:
        return _env("scheduler_service_url") or ""

    @default("scheduler_kernel_env")
    def _default_scheduler_kernel_env(self) -> str:
        return _env("scheduler_kernel_env") or ""

    @default("notify_allowed_networks")
    def _default_notify_allowed_networks(self) -> str:
        return _env("notify_allowed_networks") or ""

    # -- JupyterHub (jupyter_mlplat.hub): Dask Gateway -----------------------------------------
    dask_gateway_address = Unicode(
        help="Address of a Dask Gateway (http://host:port): steps run in a Dask cluster of the "
        "user's own, started through the gateway on first use (or the user's running one). "
        "Used when dask_address is not set (dask_address then reads gateway+<this address>). "
        "MLPLAT_DASK_GATEWAY_AUTH picks the authentication (default: 'jupyterhub' inside "
        "JupyterHub), MLPLAT_DASK_GATEWAY_WORKERS the cluster's workers (default 2)."
    ).tag(config=True)

    @default("dask_gateway_address")
    def _default_dask_gateway_address(self) -> str:
        return _env("dask_gateway_address") or ""


def _env_number(name: str, fallback: float) -> float:
    """``MLPLAT_<NAME>`` as a number; a value that is not one is an error naming the variable."""
    value = _env(name)
    if value is None:
        return fallback
    try:
        return float(value)
    except ValueError:
        from .errors import InvalidSpecError

        raise InvalidSpecError(f"{ENV_PREFIX}{name.upper()} must be a number; got {value!r}"
                               ) from None
