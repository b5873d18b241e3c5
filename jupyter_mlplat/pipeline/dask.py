"""The cluster: Client, resource checks, submit, cancel. The only module that imports distributed.

With no address configured, a ``LocalCluster`` (one single-threaded worker per core, at most 4)
is started on first use. Its workers are threads of this process by default: a worker only
drives papermill while the step computes in its own kernel process, so worker processes would
add start-up time and no isolation (``MLPLAT_DASK_PROCESSES=1`` makes them processes). On a
machine with NVIDIA GPUs and dask-cuda installed it is a ``LocalCUDACluster`` whose workers offer
``GPU`` resources. Otherwise it connects to the given scheduler address (any dask.distributed
deployment). Each worker gets a ``KernelPoolPlugin`` holding its warm kernels; the workers of an
in-process cluster share one pool, which starts warming before the cluster does.

An address ``gateway+http(s)://...`` (what ``c.MLPlat.dask_gateway_address`` sets) is a Dask
Gateway. The platform keeps one cluster there per user and gateway, shared by the user's
processes (their server, the CLI, scheduled runs): its name is recorded in the user's data dir,
every process attaches to that cluster while it runs, and one is started (and recorded) when
there is none. No process shuts it down when it is done (another may be using it): the gateway
stops it after its idle timeout (``c.ClusterConfig.idle_timeout``; the example configuration
sets 10 minutes). Clusters the user started by other means are never used or stopped. Its
workers get the user's store-service token, so the steps they run reach the store as that user.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from distributed import Client, Future, LocalCluster, WorkerPlugin, get_worker

from ..errors import InvalidSpecError, MLPlatError
from .kernels import KernelKey, KernelPool
from .step import StepResult, StepTask, run_step

log = logging.getLogger(__name__)

PLUGIN_NAME = "mlplat-kernels"
#: A Dask Gateway address as a scheduler address: ``gateway+http://host:port``.
GATEWAY_PREFIX = "gateway+"

#: Pools of in-process clusters, by token. Workers of a LocalCluster(processes=False) live in
#: this process and share their DaskCluster's pool, which starts warming before they exist.
_SHARED_POOLS: dict[str, KernelPool] = {}


class KernelPoolPlugin(WorkerPlugin):
    """Gives each worker a KernelPool (its cluster's, when in-process) and pre-imports papermill."""

    name = PLUGIN_NAME

    def __init__(self, warm: bool = True, shared: str | None = None, fork: bool = True) -> None:
        self.warm = warm
        self.shared = shared
        self.fork = fork
        self.pool: KernelPool | None = None
        self._own = False

    def setup(self, worker: Any) -> None:
        self.pool = _SHARED_POOLS.get(self.shared or "")
        if self.pool is None:
            self.pool, self._own = KernelPool(fork=self.fork), True
        # papermill's first import costs ~1 s: pay it before the first step arrives.
        threading.Thread(target=_preimport, daemon=True, name="mlplat-preimport").start()

    def teardown(self, worker: Any) -> None:
        if self.pool is not None and self._own:
            self.pool.close()


#: What the workers of a user's gateway cluster get from the process that uses it.
_FORWARDED_ENV = ("MLPLAT_SERVICE_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER")
ENV_PLUGIN_NAME = "mlplat-environ"


class EnvironPlugin(WorkerPlugin):
    """Sets environment variables in each worker (and so in the kernels it starts)."""

    name = ENV_PLUGIN_NAME

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = dict(environ)

    def __repr__(self) -> str:  # never the values: a token is one of them
        return f"EnvironPlugin({sorted(self.environ)})"

    def setup(self, worker: Any) -> None:
        os.environ.update(self.environ)


def _preimport() -> None:
    try:
        from jupyter_client.manager import KernelManager  # noqa: F401

        from .step import import_papermill

        import_papermill()
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


class _Counter:
    """Steps running in this process (the workers of an in-process cluster are its threads)."""

    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.value += n


_RUNNING = _Counter()


def run_step_on_worker(task: StepTask) -> StepResult:
    """Task body: run the step with the worker's warm kernel pool."""
    _RUNNING.add(1)
    try:
        return run_step(task, pool=_worker_pool())
    finally:
        _RUNNING.add(-1)


def _prewarm(key: KernelKey, count: int, dask_worker: Any = None) -> int:
    pool = _worker_pool(dask_worker)
    return pool.prewarm(key, count) if pool is not None else 0


def _cancel(run_id: str, dask_worker: Any = None) -> int:
    pool = _worker_pool(dask_worker)
    return pool.cancel(run_id) if pool is not None else 0


def _forget_cancel(run_id: str, dask_worker: Any = None) -> None:
    pool = _worker_pool(dask_worker)
    if pool is not None:
        pool.forget_cancel(run_id)


def gateway_record(address: str) -> Any:
    """The file naming the cluster the platform keeps for this user on the gateway
    ``address`` (in the user's data dir)."""
    import hashlib

    from ..config import data_dir

    tag = hashlib.sha256(address.rstrip("/").encode()).hexdigest()[:16]
    return data_dir() / "dask-gateway" / f"{tag}.json"


def _platform_cluster(gateway: Any, address: str, workers: int) -> Any:
    """The user's platform cluster on ``gateway``: the recorded one while it is active, else a
    new one (recorded). Started with ``shutdown_on_close=False``: closing a connection never
    stops a cluster another process may be using."""
    import fcntl
    import json

    from ..store.artifacts import atomic_write

    record = gateway_record(address)
    record.parent.mkdir(parents=True, exist_ok=True)
    with open(record.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once share one cluster
        try:
            name = json.loads(record.read_text()).get("cluster")
        except (OSError, ValueError, AttributeError):
            name = None
        if name and name in {c.name for c in gateway.list_clusters()}:
            return gateway.connect(name)
        cluster = gateway.new_cluster(shutdown_on_close=False)
        cluster.scale(workers)
        atomic_write(record, json.dumps({"cluster": cluster.name, "address": address}))
        log.info("started the Dask Gateway cluster %s (stopped by the gateway once idle)",
                 cluster.name)
        return cluster


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

    def __init__(self, address: str = "", n_workers: int = 0, warm_kernels: bool = True,
                 processes: bool = False, fork_kernels: bool = True) -> None:
        self.address = address
        self.fork_kernels = fork_kernels
        self.processes = processes
        self.n_workers = n_workers
        self.warm_kernels = warm_kernels
        self.cluster: Any = None
        self.client: Client | None = None
        self._busy: dict[str, int] = {}
        self._busy_lock = threading.Lock()  # submit() and Dask's done callbacks both update it
        self._finished = threading.Event()
        # An in-process local cluster shares one pool, warmed before the cluster is up.
        self.shared_pool: KernelPool | None = None
        self._token: str | None = None
        if not address and not processes and not _local_gpus():
            import uuid

            self._token = uuid.uuid4().hex
            self.shared_pool = _SHARED_POOLS[self._token] = KernelPool(fork=fork_kernels)

    @property
    def size(self) -> int:
        """Workers steps can run on (known before a local cluster starts)."""
        if self.client is None and not self.address:
            return self.n_workers or max(1, min(os.cpu_count() or 1, 4))
        return max(1, len(self.workers()))

    def start(self) -> Client:
        if self.client is not None:
            return self.client
        if self.address.startswith(GATEWAY_PREFIX):
            self.client = self._gateway_client(self.address[len(GATEWAY_PREFIX):])
        elif self.address:
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
        self.client.register_plugin(
            KernelPoolPlugin(self.warm_kernels, self._token, self.fork_kernels), name=PLUGIN_NAME)
        return self.client

    def _gateway_client(self, address: str) -> Client:
        """A client of the user's own cluster on the Dask Gateway at ``address``."""
        try:
            from dask_gateway import Gateway
        except ImportError:
            raise MLPlatError("a Dask Gateway is configured (MLPLAT_DASK_GATEWAY_ADDRESS) but "
                              "dask-gateway is not installed: pip install 'jupyter-mlplat[hub]'"
                              ) from None
        auth = os.environ.get("MLPLAT_DASK_GATEWAY_AUTH") or (
            "jupyterhub" if os.environ.get("JUPYTERHUB_API_TOKEN") else None)
        workers = int(os.environ.get("MLPLAT_DASK_GATEWAY_WORKERS") or 2)
        try:
            with Gateway(address, auth=auth) as gateway:  # the cluster keeps its own connection
                cluster = _platform_cluster(gateway, address, workers)
            client = cluster.get_client(set_as_default=False)
            client.wait_for_workers(1, timeout=180)
        except Exception as exc:  # noqa: BLE001 - every way of failing reads the same to a user
            raise MLPlatError(
                f"cannot get a Dask cluster from the gateway at {address}: "
                f"{type(exc).__name__}: {exc}; check MLPLAT_DASK_GATEWAY_ADDRESS / "
                "c.MLPlat.dask_gateway_address") from None
        self.cluster = cluster  # close() disconnects; the gateway stops it once idle
        # The workers run this user's steps: they reach the store service with the user's token.
        forwarded = {k: os.environ[k] for k in _FORWARDED_ENV if os.environ.get(k)}
        if forwarded:
            client.register_plugin(EnvironPlugin(forwarded), name=ENV_PLUGIN_NAME)
        log.info("steps run on the Dask Gateway cluster %s", cluster.name)
        return client

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
        if not self.processes:
            # papermill is the only thing a worker runs; the first step should not wait for it
            threading.Thread(target=_preimport, daemon=True, name="mlplat-preimport").start()
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=self.processes,
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

    def prewarm(self, key: KernelKey, total: int) -> None:
        """Keep ``total`` kernels for ``key`` warm across the cluster (returns at once)."""
        if not self.warm_kernels:
            return
        if self.shared_pool is not None:  # no need to wait for the cluster
            self.shared_pool.prewarm(key, total)
            return
        per_worker = -(-total // self.size)
        self.start().run(_prewarm, key, per_worker)  # returns at once: kernels start in threads

    def submit(self, task: StepTask, gpu: int = 0) -> Future:
        """Submit a step on the least busy worker (Dask's locality rule would stack them)."""
        client = self.start()
        resources = {"GPU": gpu} if gpu else None
        workers = None
        if not gpu:
            infos = self.workers()
            if infos:
                with self._busy_lock:
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
            with self._busy_lock:
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
        if self.shared_pool is not None:
            self.shared_pool.cancel(run_id)
        if self.client is None:
            return
        try:
            self.client.run(_cancel, run_id)
        except Exception as exc:
            log.warning("could not reach every worker to cancel run %s: %s", run_id, exc)
        self.client.cancel(list(futures), force=True)

    def resume_run(self, run_id: str) -> None:
        """A cancelled ``run_id`` is resumed: let its steps take kernels again (the workers'
        pools remember a cancel, and a long-lived cluster outlives the run's first try)."""
        if self.shared_pool is not None:
            self.shared_pool.forget_cancel(run_id)
        if self.client is not None or self.address:
            try:
                self.start().run(_forget_cancel, run_id)
            except Exception as exc:
                log.warning("could not reach every worker to resume run %s: %s", run_id, exc)

    def compute(self, tasks: list[Any],
                on_progress: Callable[[int, int], None] | None = None) -> list[Any]:
        """Compute dask collections / delayed ``tasks`` on the cluster, in order; report each
        one finished as ``on_progress(done, total)``. The first failure is raised."""
        client = self.start()
        futures = client.compute(tasks)
        results: list[Any] = [None] * len(futures)
        pending = dict(enumerate(futures))
        try:
            while pending:
                finished = [i for i, f in pending.items() if f.done()]
                for i in finished:
                    results[i] = pending.pop(i).result()  # raises the task's error
                    if on_progress is not None:
                        on_progress(len(futures) - len(pending), len(futures))
                if pending and not finished:
                    time.sleep(0.02)
        except BaseException:
            client.cancel(list(pending.values()))
            raise
        return results

    def close(self, wait: float = 10.0) -> None:
        """Stop the cluster (ours) or disconnect. Steps still finishing after a cancel get up to
        ``wait`` seconds: in-process workers would otherwise die before cleaning up."""
        deadline = time.monotonic() + wait
        while self.shared_pool is not None and _RUNNING.value and time.monotonic() < deadline:
            time.sleep(0.05)  # a cancelled future's step may still be cleaning up in this process
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if self.shared_pool is not None:
            self.shared_pool.close()
            _SHARED_POOLS.pop(self._token or "", None)
            self.shared_pool = None
