"""``jupyter mlplat serve`` as a library call: the store, the poll loop, signals and drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .app import RequestTracker, make_app
from .metrics import ServingMetrics
from .repository import ModelRepository
from .service import ServeSettings, ServingService

if TYPE_CHECKING:
    from ..config import MLPlat
    from ..store.sql import Store
    from ..tracking.registry import ModelRegistry

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "serving-admin-token"


@dataclass(frozen=True)
class ServerInfo:
    """Where a started server listens and where its admin token is."""

    url: str
    host: str
    port: int
    admin_token_file: str | None


def build_service(registry: ModelRegistry, settings: ServeSettings, *,
                  admin_token: str | None = None,
                  metrics: ServingMetrics | None = None) -> ServingService:
    """A :class:`ServingService` over ``registry`` with its repository and metrics wired.

    Parameters
    ----------
    registry : ModelRegistry
        Owner-scoped; models are loaded from it.
    settings : ServeSettings
        Batching limits, trust, default endpoint.
    admin_token : str, optional
        The admin credential (None: the admin API is refused).
    metrics : ServingMetrics, optional
        Default: new collectors on their own registry.

    Returns
    -------
    ServingService
    """
    metrics = metrics or ServingMetrics()
    repository = ModelRepository(registry, trusted=settings.trusted,
                                 max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                                 on_batch=metrics.observe_batch,
                                 load_timeout=settings.load_timeout)
    return ServingService(repository, settings=settings, metrics=metrics,
                          admin_token=admin_token)


def admin_token_path() -> Path:
    """``<jupyter data dir>/mlplat/serving-admin-token``."""
    from ..config import data_dir

    return data_dir() / ADMIN_TOKEN_FILE


def write_admin_token(token: str, path: Path | None = None) -> Path:
    """Write ``token`` to ``path`` (default :func:`admin_token_path`), readable by its owner only."""
    path = path or admin_token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return path


class StatePoller:
    """Applies the store's serving states at start and whenever its generation changes.

    Store calls run in one dedicated thread, off the event loop; a failing store is logged and
    retried at the next tick, and what is served stays as it was. A revision that failed to
    load (a missing artifact, a database hiccup) is retried after ``retry_backoff`` seconds,
    then after twice as long each time, up to ``retry_backoff_max``; a new failure (another
    endpoint or revision) starts again from ``retry_backoff``.

    Parameters
    ----------
    store : Store
        Owner-scoped; read in a thread.
    service : ServingService
        What the states are applied to.
    interval : float
        Seconds between checks of the store's generation.
    retry_backoff, retry_backoff_max : float
        First and longest wait before retrying failed revisions; default the service's
        settings.
    """

    def __init__(self, store: Store, service: ServingService, interval: float = 0.5, *,
                 retry_backoff: float | None = None,
                 retry_backoff_max: float | None = None) -> None:
        self.store = store
        self.service = service
        self.interval = interval
        self.retry_backoff = retry_backoff or service.settings.retry_backoff
        self.retry_backoff_max = max(self.retry_backoff,
                                     retry_backoff_max or service.settings.retry_backoff_max)
        self.generation: Any = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._retry_for: dict[str, int] = {}
        self._retry_delay = self.retry_backoff
        self._retry_at = 0.0

    async def retry_once(self) -> dict[str, str]:
        """Retry failed revisions when their backoff is over; the outcomes (empty: none due)."""
        failed = self.service.retryable()
        loop = asyncio.get_running_loop()
        if not failed:
            self._retry_for = {}
            return {}
        if failed != self._retry_for:  # a new failure: start the backoff again
            self._retry_for = failed
            self._retry_delay = self.retry_backoff
            self._retry_at = loop.time() + self._retry_delay
            return {}
        if loop.time() < self._retry_at:
            return {}
        report = await self.service.retry_failed()
        for name, outcome in report.items():
            log.info("retried endpoint %s revision %s: %s", name, failed.get(name), outcome)
        self._retry_delay = min(self._retry_delay * 2, self.retry_backoff_max)
        self._retry_at = loop.time() + self._retry_delay
        return report

    async def poll_once(self) -> bool:
        """Apply the states if they changed since the last call; whether they had."""
        generation = await asyncio.to_thread(self.store.serving_generation)
        if generation == self.generation:
            return False
        states = await asyncio.to_thread(self.store.serving_states)
        await self.service.apply(states)
        self.generation = generation
        freeze_heap()
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                await self.poll_once()
                await self.retry_once()
                if self._failing:
                    log.info("the store answers again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep serving what is loaded
                if not self._failing:
                    log.warning("cannot read deployments from the store (%s); retrying", exc)
                self._failing = True
            await asyncio.sleep(self.interval)

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="mlplat-poller")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def freeze_heap() -> None:
    """Collect, then move every live object out of the cyclic collector's reach.

    A serve process holds a large, long-lived heap (scikit-learn's every module, since skops
    lists all estimators at import, plus the loaded models). Without this, each full
    collection walks all of it: a ~50 ms pause of the event loop that showed as the p99 of
    requests. Unfrozen first, so garbage from models unloaded since the last call is freed.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def serve(config: MLPlat, settings: ServeSettings, *, admin_token: str | None = None,
                on_ready: Callable[[ServerInfo], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve ``config``'s owner's endpoints until ``stop`` is set (or SIGTERM/SIGINT).

    See :func:`run_server`; this is its coroutine, for callers that own an event loop.
    """
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from ..store import open_artifacts, open_store
    from ..tracking.registry import ModelRegistry

    token_file = None
    if admin_token is None:
        admin_token = secrets.token_urlsafe(32)
        token_file = str(write_admin_token(admin_token))
    store = await asyncio.to_thread(open_store, config)
    registry = ModelRegistry(store, open_artifacts(config.artifacts_url))
    service = build_service(registry, settings, admin_token=admin_token)
    requests = RequestTracker()
    app = make_app(service, settings, metrics=service.metrics, requests=requests)
    poller = StatePoller(store, service, settings.poll_interval)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    server = HTTPServer(app, max_body_size=4 * settings.max_body_size + 64 * 1024 * 1024,
                        xheaders=False)
    try:
        try:
            await poller.poll_once()  # serve what is deployed before taking requests
        except Exception as exc:  # noqa: BLE001 - start anyway; the poller retries
            log.warning("cannot read deployments from the store at start (%s)", exc)
        sockets = bind_sockets(settings.port, settings.host)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        info = ServerInfo(f"http://{host}:{port}", settings.host, port, token_file)
        poller.start()
        log.info("serving on %s (%d endpoints)", info.url, len(service.endpoint_names()))
        if on_ready is not None:
            on_ready(info)
        await stop.wait()
        log.info("stopping: no new connections; waiting for %d requests", requests.active)
        server.stop()
        await poller.stop()
        if not await requests.wait_idle(settings.drain_timeout):
            log.warning("stopped with %d requests unfinished", requests.active)
        await server.close_all_connections()
        await service.close()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await poller.stop()
        store.close()


def run_server(config: MLPlat, *, host: str = "127.0.0.1", port: int = 8500,
               default_endpoint: str | None = None, admin_token: str | None = None,
               poll_interval: float = 0.5, on_ready: Callable[[ServerInfo], None] | None = None,
               settings: ServeSettings | None = None) -> int:
    """Serve the endpoints of ``config.owner`` over HTTP until SIGTERM or SIGINT.

    The process opens the store owner-scoped and loads that owner's models trusted (a serve
    process for one user serves that user's endpoints). It applies the store's deployments at
    start and within ``poll_interval`` of every change (a new revision, a token rotation). On
    SIGTERM/SIGINT it stops accepting connections, lets requests in flight finish (up to
    ``settings.drain_timeout`` seconds), unloads the models and returns 0. It prints nothing:
    ``on_ready`` receives the URL (the CLI prints it).

    Parameters
    ----------
    config : MLPlat
        ``store_url``, ``artifacts_url`` and ``owner``.
    host, port : str, int
        Where to listen; port 0 picks a free one (see ``on_ready``).
    default_endpoint : str, optional
        Where plain ``/invocations`` goes; default the only endpoint.
    admin_token : str, optional
        The admin API's credential. When None, one is generated (``secrets.token_urlsafe``)
        and written with mode 0600 to ``<jupyter data dir>/mlplat/serving-admin-token``
        (:func:`admin_token_path`); ``ServerInfo.admin_token_file`` names it.
    poll_interval : float
        Seconds between checks of the store for changes.
    on_ready : callable, optional
        Called with a :class:`ServerInfo` once the server listens.
    settings : ServeSettings, optional
        Every other option; ``host``, ``port``, ``default_endpoint`` and ``poll_interval``
        override its fields.

    Returns
    -------
    int
        0 after a clean stop.
    """
    base = settings or ServeSettings()
    settings = base.model_copy(update={"host": host, "port": port,
                                       "default_endpoint": default_endpoint or
                                       base.default_endpoint,
                                       "poll_interval": poll_interval})
    settings = ServeSettings.model_validate(settings.model_dump())
    asyncio.run(serve(config, settings, admin_token=admin_token, on_ready=on_ready))
    return 0
