"""Running ``jupyter mlplat service``: where it listens, its store, signals and shutdown.

Started by JupyterHub as a managed service, it reads where to listen from the hub's environment
(``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``) and how to check tokens from
``JUPYTERHUB_API_URL`` / ``JUPYTERHUB_API_TOKEN``; the store and the artifacts are the
process's own ``MLPLAT_STORE_URL`` / ``MLPLAT_ARTIFACTS_URL`` (credentials that only this process
holds).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from ..errors import InvalidSpecError
from .protocol import is_service_url

log = logging.getLogger(__name__)

#: The placeholder owner of the service's own store object; never used for a call.
SERVICE_OWNER = "mlplat-service"


@dataclass(frozen=True)
class ServiceAddress:
    """Where the service listens and under which URL prefix."""

    host: str
    port: int
    prefix: str


def service_address(host: str | None = None, port: int | None = None,
                    prefix: str | None = None) -> ServiceAddress:
    """Explicit values, else JupyterHub's ``JUPYTERHUB_SERVICE_URL`` and
    ``JUPYTERHUB_SERVICE_PREFIX``, else 127.0.0.1:8765 under ``/``."""
    url = os.environ.get("JUPYTERHUB_SERVICE_URL", "")
    parsed = urlparse(url) if url else None
    if host is None:
        host = (parsed.hostname if parsed else None) or "127.0.0.1"
    if port is None:
        port = (parsed.port if parsed else None) or 8765
    if prefix is None:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    if not 0 <= port <= 65535:
        raise InvalidSpecError(f"port must be 0-65535; got {port}")
    return ServiceAddress(host, port, prefix)


async def serve_service(store_url: str, artifacts_url: str, address: ServiceAddress, *,
                        settings: object | None = None, identity: object | None = None,
                        on_ready: Callable[[str], None] | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """Serve the store service until ``stop`` is set (or SIGTERM/SIGINT).

    Parameters
    ----------
    store_url : str
        SQLAlchemy URL of the shared store (never a service URL: the service is the one that
        holds the database).
    artifacts_url : str
        Root of the shared artifact store; each owner gets ``users/<owner>/`` under it.
    address : ServiceAddress
        Where to listen (port 0: a free one; ``on_ready`` gets the URL).
    settings : ServiceSettings, optional
        Body limits, thread count, what schedules may name; default from ``MLPLAT_SERVICE_*``
        (:meth:`ServiceSettings.from_env`).
    identity : HubIdentity, optional
        Default: from the hub's environment.
    on_ready : callable, optional
        Called with the service's base URL once it listens.
    stop : asyncio.Event, optional
        Set to stop.
    """
    from dataclasses import replace

    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from ..config import data_dir
    from ..store.sql import Store
    from .artifacts import OwnerArtifacts, private_dir
    from .auth import HubIdentity
    from .dispatch import StoreDispatcher
    from .schedules import SchedulePolicy
    from .service import ServiceContext, ServiceSettings, make_app

    if is_service_url(store_url) or is_service_url(artifacts_url):
        raise InvalidSpecError(
            "the store service needs the database and the artifact folder themselves: set "
            "MLPLAT_STORE_URL to a SQLAlchemy URL (postgresql+psycopg://... or sqlite:///...) "
            "and MLPLAT_ARTIFACTS_URL to a folder or fsspec URL, not a mlplat+http:// URL")
    settings = settings or ServiceSettings.from_env()
    # The service's own folder (mode 0700): staged uploads and copies of remote objects.
    private = private_dir(data_dir() / "service")
    if settings.upload_dir is None:
        settings = replace(settings, upload_dir=private_dir(os.path.join(private, "uploads")))
    store = await asyncio.to_thread(Store, store_url, SERVICE_OWNER, sweep=False)
    artifacts = OwnerArtifacts(artifacts_url, cache_dir=os.path.join(private, "cache"))
    schedules = SchedulePolicy(kernels=settings.kernels, webhook_hosts=settings.webhook_hosts)
    ctx = ServiceContext(StoreDispatcher(store, artifacts, schedules), artifacts,
                         identity or HubIdentity(service_name="mlplat"), settings)
    app = make_app(ctx, address.prefix)
    # Every body is limited to a store call's size; an upload raises its own limit once its
    # token was checked (ObjectHandler.prepare), so nobody without one can send more.
    server = HTTPServer(app, max_body_size=settings.max_call_size)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        sockets = bind_sockets(address.port, address.host)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        host = address.host if ":" not in address.host else f"[{address.host}]"
        url = f"http://{host}:{port}{'/' + address.prefix.strip('/') if address.prefix.strip('/') else ''}/"
        log.info("store service on %s (store %s)", url, _redacted(store_url))
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        server.stop()
        await server.close_all_connections()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        ctx.close()
        store.close()


def _redacted(url: str) -> str:
    from ..store.engine import redact_url

    return redact_url(url)


def run_service(store_url: str, artifacts_url: str, address: ServiceAddress, *,
                on_ready: Callable[[str], None] | None = None) -> int:
    """Blocking :func:`serve_service`; returns 0 after SIGTERM/SIGINT."""
    asyncio.run(serve_service(store_url, artifacts_url, address, on_ready=on_ready))
    return 0
