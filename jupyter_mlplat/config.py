"""Every setting of the platform, read in one place.

The same names serve every front door: traitlets config for the server extension
(``c.MLPlat.store_url``) and ``MLPLAT_*`` environment variables for the CLI, the Python API and
step kernels. Defaults live under ``jupyter_data_dir()`` so ``JUPYTER_DATA_DIR`` moves them all.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from traitlets import Bool, Enum, Int, Unicode, default
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
        return _env("artifacts_url") or str(data_dir() / "artifacts")

    @default("dask_address")
    def _default_dask_address(self) -> str:
        return _env("dask_address") or ""

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
        }
