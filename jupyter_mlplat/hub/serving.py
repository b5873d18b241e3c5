"""``jupyter mlplat serve --shared``: one serve process for every user of a JupyterHub.

A hub service that holds the store itself and serves each user's endpoints under the user's
own path, ``<prefix>users/<name>/`` + the usual protocol routes (``v2/models/{m}/infer``,
``v1/models/{m}:predict``, ``invocations``, ...), so two users' endpoints of one name never meet.
Behind each user's path is a serving service of its own: that user's endpoints, models read
from that user's part of the artifact store, in safe formats only (it is not the owner's own
process: skops with the project's trusted types). Pickled and tree models, and torch models
(TorchScript can call operators that read this process's files, such as ``torch.from_file``),
are refused before a byte is decoded: serve those from the owner's own serve process.

Nothing says whether a user has an endpoint to anyone without its credential. Prediction needs
the endpoint's token (a public endpoint none); model metadata and readiness the endpoint's
token or the owner's hub token. A request without the right credential gets exactly the answer
(404, same body) of a request naming an endpoint that does not exist, on any user's path.
``metrics`` and ``v2/health/ready`` need the owner's hub token (or the process's admin token);
``v2/health/live`` and ``v2`` say nothing about anyone and stay open.

The admin API of a user's path (``v2/repository/...`` and ``admin/endpoints...``) accepts the
hub token of that user when it holds the scope ``custom:mlplat:deploy``: a user's server deploys
on the shared service as that user. Another user's token gets 404 (nothing says whether the
path has endpoints), a token without the scope 403, none 401. The serve process's own admin
token (``--admin-token-file``) is accepted too.

========================================  ======  ===========================================
``admin/endpoints``                       GET     the user's endpoints
``admin/endpoints``                       POST    deploy (``CreateDeployment``): 201 + token once
``admin/endpoints/{name}``                GET     one endpoint
``admin/endpoints/{name}``                DELETE  undeploy
``admin/endpoints/{name}/traffic``        PUT     new weights (``UpdateTraffic``)
``admin/endpoints/{name}/rollback``       POST    back to the previous revision
``admin/endpoints/{name}/token``          POST    a new token (returned once)
========================================  ======  ===========================================
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import signal
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import tornado.routing
import tornado.web

from ..errors import InvalidSpecError, MLPlatError, NotFoundError
from ..serving.app import AdminHandler, RequestTracker, make_app
from ..serving.service import ForbiddenError, ServeSettings, UnauthorizedError
from .artifacts import OwnerArtifacts
from .auth import HubIdentity, NotAuthenticatedError, NotPermittedError, request_token

log = logging.getLogger(__name__)

#: The hub scope a user's token needs for the admin API of their own path.
DEPLOY_SCOPE = "custom:mlplat:deploy"
#: Seconds between looks for users who deployed their first endpoint.
OWNERS_EVERY = 2.0


class HubAdminAuth:
    """The admin credential of one user's path: that user's hub token with ``DEPLOY_SCOPE``
    (or the serve process's own admin token)."""

    def __init__(self, owner: str, identity: HubIdentity, admin_hash: str | None) -> None:
        self.owner = owner
        self.identity = identity
        self.admin_hash = admin_hash

    async def __call__(self, handler: Any) -> None:
        import hashlib

        token = request_token(handler.request.headers)
        if token and self.admin_hash and hmac.compare_digest(
                hashlib.sha256(token.encode()).hexdigest(), self.admin_hash):
            return
        try:
            user = await self.identity.identify(handler.request.headers)
        except NotAuthenticatedError as exc:
            raise UnauthorizedError(str(exc)) from None
        except NotPermittedError as exc:
            raise ForbiddenError(str(exc)) from None
        if user.kind != "user" or user.name != self.owner:
            # Not whether this user has endpoints, nor whether the path exists.
            raise NotFoundError(f"no route {handler.request.method} {handler.request.path}")
        if not user.has(DEPLOY_SCOPE):
            raise ForbiddenError(f"the admin API needs a hub token with the scope "
                                 f"{DEPLOY_SCOPE!r}")


class HiddenEndpointAuth:
    """The endpoint check of a user's path: the endpoint's token, or (``reading``) the owner's
    admin credential; anything else is answered as an endpoint that does not exist."""

    def __init__(self, admin: HubAdminAuth) -> None:
        self.admin = admin

    async def __call__(self, handler: Any, endpoint: str, reading: bool) -> None:
        missing = NotFoundError(f"no endpoint {endpoint!r} is deployed here")
        try:
            handler.service.authorize(endpoint, handler.bearer())
            return
        except (NotFoundError, UnauthorizedError, ForbiddenError):
            if not reading or not handler.bearer():
                raise missing from None
        try:
            await self.admin(handler)
        except MLPlatError:
            raise missing from None
        handler.service.state(endpoint)  # the owner asking about an endpoint they lack: 404


class OwnerServing:
    """One user's endpoints in the shared process: their service, poller and application."""

    def __init__(self, owner: str, store: Any, artifacts: Any, settings: ServeSettings,
                 auth: HubAdminAuth, base_url: str, requests: RequestTracker) -> None:
        from ..config import MLPlat
        from ..serving.server import StatePoller, build_service
        from ..tracking.registry import ModelRegistry

        self.owner = owner
        self.store = store
        self.artifacts = artifacts
        self.config = MLPlat(owner=owner, serving_url=base_url)
        self.service = build_service(ModelRegistry(store, artifacts), settings)
        self.poller = StatePoller(store, self.service, settings.poll_interval)
        self.app = make_app(self.service, settings, metrics=self.service.metrics,
                            requests=requests)
        self.app.settings["mlplat_admin_auth"] = auth
        self.app.settings["mlplat_endpoint_auth"] = HiddenEndpointAuth(auth)
        self.app.settings["mlplat_private_auth"] = auth
        kw = {"service": self.service, "settings": settings, "metrics": self.service.metrics,
              "requests": requests, "owner": self}
        name = r"([^/]+)"
        self.app.add_handlers(".*", [
            (r"/admin/endpoints/?", EndpointsAdminHandler, kw),
            (rf"/admin/endpoints/{name}/?", EndpointAdminHandler, kw),
            (rf"/admin/endpoints/{name}/(traffic|rollback|token)", EndpointActionHandler, kw),
        ])

    def deploys(self) -> Any:
        from ..serving.deploy import DeployService

        return DeployService(self.config, store=self.store, artifacts=self.artifacts)

    async def start(self) -> None:
        try:
            await self.poller.poll_once()
        except Exception as exc:  # noqa: BLE001 - the poller retries
            log.warning("cannot read %s's deployments yet (%s)", self.owner, exc)
        self.poller.start()

    async def close(self) -> None:
        await self.poller.stop()
        await self.service.close()


class _OwnerAdminHandler(AdminHandler):
    """Admin routes that change the user's endpoints (rows in the store, as that user)."""

    def initialize(self, owner: OwnerServing, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(**kwargs)
        self.owner_serving = owner

    async def body_as(self, model: Any) -> Any:
        from pydantic import ValidationError

        data = await self.json_body() if self._size else {}
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                 for e in exc.errors())
            raise InvalidSpecError(f"bad request body: {problems}") from None

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def answer(self, model: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(model.model_dump_json())


class EndpointsAdminHandler(_OwnerAdminHandler):
    async def get(self) -> None:
        self.answer(await self.run(self.owner_serving.deploys().list))

    async def post(self) -> None:
        from ..schemas import CreateDeployment

        request = await self.body_as(CreateDeployment)
        result = await self.run(
            self.owner_serving.deploys().deploy, request.model, request.version,
            endpoint=request.endpoint, traffic=request.canary, shadow=request.shadow,
            shadow_share=request.shadow_share, force=request.force, reason=request.reason,
            public=request.public)
        self.answer(result, 201)


class EndpointAdminHandler(_OwnerAdminHandler):
    async def get(self, name: str) -> None:
        self.answer(await self.run(self.owner_serving.deploys().describe, name))

    async def delete(self, name: str) -> None:
        self.answer(await self.run(self.owner_serving.deploys().undeploy, name))


class EndpointActionHandler(_OwnerAdminHandler):
    async def put(self, name: str, action: str) -> None:
        from ..schemas import UpdateTraffic

        if action != "traffic":
            raise NotFoundError(f"no route PUT {self.request.path}")
        request = await self.body_as(UpdateTraffic)
        self.answer(await self.run(self.owner_serving.deploys().set_traffic, name,
                                   request.traffic, force=request.force,
                                   reason=request.reason))

    async def post(self, name: str, action: str) -> None:
        deploys = self.owner_serving.deploys()
        if action == "rollback":
            self.answer(await self.run(deploys.rollback, name))
        elif action == "token":
            self.answer(await self.run(deploys.rotate_token, name))
        else:
            raise NotFoundError(f"no route POST {self.request.path}")


class _Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish('{"status": "ok"}')


class _NotFound(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish('{"error": "no such route; endpoints are under users/<name>/"}')


class SharedServing(tornado.routing.Router):
    """Routes ``<prefix>users/<name>/...`` to that user's application; ``<prefix>`` and
    ``<prefix>health`` answer the hub's checks; anything else is 404.

    Parameters
    ----------
    store : Store
        The shared SQL store (its owner a placeholder).
    artifacts : OwnerArtifacts
        The per-user artifact stores.
    settings : ServeSettings
        Limits and batching; ``trusted`` is forced off.
    identity : HubIdentity
        Checks hub tokens for the admin API.
    prefix : str
        ``$JUPYTERHUB_SERVICE_PREFIX``.
    public_url : str
        Where users reach the service (for the endpoint URLs the admin API answers with).
    admin_token : str, optional
        The serve process's own admin credential.
    """

    def __init__(self, store: Any, artifacts: OwnerArtifacts, settings: ServeSettings,
                 identity: HubIdentity, prefix: str = "/", public_url: str = "",
                 admin_token: str | None = None) -> None:
        import hashlib

        self.store = store
        self.artifacts = artifacts
        self.settings = settings.model_copy(update={"trusted": False})
        self.identity = identity
        self.prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        self.public_url = public_url.rstrip("/")
        self.admin_hash = (hashlib.sha256(admin_token.encode()).hexdigest()
                           if admin_token else None)
        self.requests = RequestTracker()
        self.owners: dict[str, OwnerServing] = {}
        self._pattern = re.compile(rf"^{re.escape(self.prefix)}users/([^/]+)(/.*)?$")
        self._fallback = tornado.web.Application([
            (rf"{re.escape(self.prefix)}(?:health)?", _Health),
        ], default_handler_class=_NotFound)
        self._task: asyncio.Task[None] | None = None

    # -- routing -----------------------------------------------------------------------------

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        match = self._pattern.match(request.path)
        if match is not None:
            name = unquote(match.group(1))
            # A user without endpoints yet gets a serving of their own for this request only:
            # its admin API takes their first deploy (the owners loop then serves it), and any
            # other path answers like one whose endpoints are all gone, so nothing says whether
            # a user has deployed anything.
            owner = self.owners.get(name) or self._serving(name, keep=False)
            rest = match.group(2) or "/"
            query = request.uri.partition("?")[2]
            request.path = rest
            request.uri = rest + (f"?{query}" if query else "")
            return owner.app.find_handler(request, **kwargs)
        return self._fallback.find_handler(request, **kwargs)

    # -- owners ------------------------------------------------------------------------------

    def _owners_with_endpoints(self) -> list[str]:
        from sqlalchemy import select

        from ..store import orm

        with self.store.session() as s:
            return list(s.scalars(select(orm.Endpoint.owner).distinct()).all())

    def _view(self, owner: str) -> Any:
        import copy

        scoped = copy.copy(self.store)
        scoped.owner = owner
        return scoped

    async def refresh(self) -> list[str]:
        """Start serving the users who have endpoints and are not served yet; their names."""
        owners = await asyncio.to_thread(self._owners_with_endpoints)
        added = []
        for owner in owners:
            if owner in self.owners:
                continue
            served = self._serving(owner)
            self.owners[owner] = served
            await served.start()
            added.append(owner)
            log.info("serving the endpoints of %s", owner)
        return added

    def _serving(self, owner: str, *, keep: bool = True) -> OwnerServing:
        from urllib.parse import quote

        # Only a user who has endpoints gets a folder in the artifact store opened for them.
        artifacts = self.artifacts.store(owner) if keep else None
        return OwnerServing(owner, self._view(owner), artifacts, self.settings,
                            HubAdminAuth(owner, self.identity, self.admin_hash),
                            f"{self.public_url}/users/{quote(owner, safe='')}", self.requests)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep serving what is loaded
                log.warning("cannot list the users with endpoints (%s); retrying", exc)
            await asyncio.sleep(OWNERS_EVERY)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="mlplat-owners")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for owner in self.owners.values():
            await owner.close()


async def serve_shared(store_url: str, artifacts_url: str, address: Any, settings: ServeSettings,
                       *, admin_token: str | None = None, public_url: str = "",
                       on_ready: Callable[[str], None] | None = None,
                       stop: asyncio.Event | None = None) -> None:
    """Serve every user's endpoints until ``stop`` is set (or SIGTERM/SIGINT).

    Parameters
    ----------
    store_url, artifacts_url : str
        The shared store and artifact root (not ``mlplat+http``: this process holds them).
    address : ServiceAddress
        Where to listen and the URL prefix.
    settings : ServeSettings
        Batching and limits; models load in safe formats only whatever ``trusted`` says
        (never pickles, tree models or torch models).
    admin_token : str, optional
        Also accepted by every user's admin API (the operator's credential).
    public_url : str
        The URL users reach the service at (endpoint URLs in admin answers).
    """
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from ..config import data_dir
    from ..store.sql import Store
    from .artifacts import private_dir
    from .protocol import is_service_url
    from .server import SERVICE_OWNER

    if is_service_url(store_url) or is_service_url(artifacts_url):
        raise InvalidSpecError(
            "a shared serve process reads the store and the artifacts itself: set "
            "MLPLAT_STORE_URL / MLPLAT_ARTIFACTS_URL to the database and the folder, not to "
            "the store service")
    store = await asyncio.to_thread(Store, store_url, SERVICE_OWNER, sweep=False)
    cache = private_dir(data_dir() / "shared-serving" / "cache")  # copies of remote objects
    router = SharedServing(store, OwnerArtifacts(artifacts_url, cache_dir=cache), settings,
                           HubIdentity(service_name="mlplat-serve"), address.prefix, public_url,
                           admin_token)
    server = HTTPServer(router, max_body_size=4 * settings.max_body_size + 64 * 1024 * 1024)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await router.refresh()
        sockets = bind_sockets(address.port, address.host)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        url = f"http://{address.host}:{port}{router.prefix}"
        router.start()
        log.info("shared serving on %s (%d users with endpoints)", url, len(router.owners))
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        server.stop()
        if not await router.requests.wait_idle(settings.drain_timeout):
            log.warning("stopped with %d requests unfinished", router.requests.active)
        await server.close_all_connections()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await router.close()
        store.close()
