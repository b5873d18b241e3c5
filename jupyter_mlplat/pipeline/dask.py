"""The cluster: Client, resource checks, submit, cancel. The only module that imports distributed.

With no address configured, a ``LocalCluster`` (processes, one single-threaded worker per core,
at most 4) is started on first use; on a machine with NVIDIA GPUs and dask-cuda installed, a
``LocalCUDACluster`` whose workers offer ``GPU`` resources. Otherwise it connects to the given
scheduler address (any dask.distributed deployment). Each worker gets a ``KernelPoolPlugin``
holding its warm kernels.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterable
from typing import Any

from distributed import Client, Future, LocalCluster, WorkerPlugin, get_worker

from ..errors import InvalidSpecError, MLPlatError
from .kernels import KernelKey, KernelPool
from .step import StepResult, StepTask, run_step

log = logging.getLogger(__name__)

PLUGIN_NAME = "mlplat-kernels"


class KernelPoolPlugin(WorkerPlugin):
    """Gives each worker a KernelPool and pre-imports papermill there."""

    name = PLUGIN_NAME

    def __init__(self, warm: bool = True) -> None:
        self.warm = warm
        self.pool: KernelPool | None = None

    def setup(self, worker: Any) -> None:
        self.pool = KernelPool()
        # papermill's first import costs ~1 s: pay it before the first step arrives.
        threading.Thread(target=_preimport, daemon=True, name="mlplat-preimport").start()

    def teardown(self, worker: Any) -> None:
        if self.pool is not None:
            self.pool.close()


def _preimport() -> None:
    try:
        import nbformat  # noqa: F401
        import papermill  # noqa: F401
        from jupyter_client.manager import KernelManager  # noqa: F401
    except Exception as exc:
        log.debug("pre-import failed: %s", exc)


def _worker_pool(worker: Any = None) -> KernelPool | None:
    try:
        plugin = (worker or get_worker()).plugins.get(PLUGIN_NAME)
    except ValueError:
        return None
    if plugin is None or not getattr(plugin, "warm", True):
        return None
    return plugin.pool


def run_step_on_worker(task: StepTask) -> StepResult:
    """Task body: run the step with the worker's warm kernel pool."""
    return run_step(task, pool=_worker_pool())


def _prewarm(key: KernelKey, count: int, dask_worker: Any = None) -> int:
    pool = _worker_pool(dask_worker)
    return pool.prewarm(key, count) if pool is not None else 0


def _cancel(run_id: str, dask_worker: Any = None) -> int:
    pool = _worker_pool(dask_worker)
    return pool.cancel(run_id) if pool is not None else 0


def _local_gpus() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return len([line for line in out.stdout.splitlines() if line.startswith("GPU ")])
    except Exception:
        return 0


class DaskCluster:
    """A connection to the cluster steps run on.

    Parameters
    ----------
    address : str, optional
        Scheduler address; empty starts a local cluster.
    n_workers : int
        Workers of the local cluster (0: one per core, at most 4).
    warm_kernels : bool
        Keep pre-started kernels on each worker.
    """

    def __init__(self, address: str = "", n_workers: int = 0, warm_kernels: bool = True) -> None:
        self.address = address
        self.n_workers = n_workers
        self.warm_kernels = warm_kernels
        self.cluster: Any = None
        self.client: Client | None = None
        self._busy: dict[str, int] = {}
        self._finished = threading.Event()

    def start(self) -> Client:
        if self.client is not None:
            return self.client
        if self.address:
            try:
                self.client = Client(self.address, timeout="20s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise MLPlatError(
                    f"cannot reach the Dask scheduler at {self.address}: {exc}; check "
                    "--dask-address / MLPLAT_DASK_ADDRESS"
                ) from None
        else:
            self.cluster = self._local_cluster()
            self.client = Client(self.cluster, set_as_default=False)
        self.client.register_plugin(KernelPoolPlugin(self.warm_kernels), name=PLUGIN_NAME)
        return self.client

    def _local_cluster(self) -> Any:
        workers = self.n_workers or max(1, min(os.cpu_count() or 1, 4))
        gpus = _local_gpus()
        if gpus:
            try:
                from dask_cuda import LocalCUDACluster

                log.info("starting a LocalCUDACluster with %d GPU worker(s)", gpus)
                return LocalCUDACluster(
                    n_workers=gpus, threads_per_worker=1, resources={"GPU": 1},
                    dashboard_address=None, silence_logs=logging.ERROR,
                )
            except ImportError:
                log.info("GPUs found but dask-cuda is not installed: a CPU LocalCluster it is")
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )

    def workers(self) -> dict[str, dict[str, Any]]:
        """Worker address -> scheduler's info (``nthreads``, ``resources``, ...)."""
        return dict(self.start().scheduler_info(n_workers=-1)["workers"])

    def check_resources(self, step: str, gpu: int) -> None:
        """Fail at once when no worker offers ``gpu`` GPUs (Dask would wait forever)."""
        if gpu <= 0:
            return
        offers = [int(w.get("resources", {}).get("GPU", 0)) for w in self.workers().values()]
        best = max(offers, default=0)
        if best < gpu:
            raise InvalidSpecError(
                f"step {step!r} needs {gpu} GPU(s) but no worker offers that many (the most any "
                f"of the {len(offers)} worker(s) offers is {best}); point MLPLAT_DASK_ADDRESS / "
                "--dask-address at a cluster with GPU workers (resources={'GPU': n}), or set "
                "the step's gpu to 0"
            )

    def prewarm(self, key: KernelKey, per_worker: int) -> None:
        """Ask every worker to pre-start kernels for ``key`` (returns at once)."""
        if not self.warm_kernels:
            return
        self.start().run(_prewarm, key, per_worker)  # returns at once: kernels start in threads

    def submit(self, task: StepTask, gpu: int = 0) -> Future:
        """Submit a step on the least busy worker (Dask's locality rule would stack them)."""
        client = self.start()
        resources = {"GPU": gpu} if gpu else None
        workers = None
        if not gpu:
            infos = self.workers()
            if infos:
                target = min(infos, key=lambda a: (self._busy.get(a, 0), a))
                self._busy[target] = self._busy.get(target, 0) + 1
                workers = [target]
        future = client.submit(
            run_step_on_worker,
            task,
            key=f"mlplat-{task.run_id}-{task.step}-{task.attempt}",
            resources=resources,
            workers=workers,
            allow_other_workers=bool(workers),
            pure=False,
            retries=0,
        )
        target = workers[0] if workers else None
        future.add_done_callback(lambda _f: self._done(target))
        return future

    def _done(self, address: str | None) -> None:
        if address is not None:
            self._busy[address] = max(0, self._busy.get(address, 1) - 1)
        self._finished.set()

    def wait_any(self, futures: Iterable[Future], timeout: float) -> set[Future]:
        """Futures among ``futures`` that finished within ``timeout`` seconds."""
        futures = list(futures)
        done = {f for f in futures if f.done()}
        if done or not futures:
            return done
        self._finished.wait(timeout)
        self._finished.clear()
        return {f for f in futures if f.done()}

    def cancel_run(self, run_id: str, futures: Iterable[Future]) -> None:
        """Stop the kernels running steps of ``run_id`` and drop its queued tasks."""
        if self.client is None:
            return
        try:
            self.client.run(_cancel, run_id)
        except Exception as exc:
            log.warning("could not reach every worker to cancel run %s: %s", run_id, exc)
        self.client.cancel(list(futures), force=True)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
