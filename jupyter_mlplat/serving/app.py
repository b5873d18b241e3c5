"""The serve process's HTTP front: ``make_app(service, settings)`` and thin tornado handlers.

Routes (``{m}`` is an endpoint's name; ``/versions/{v}`` reaches one version behind it,
``N`` or ``MODEL@N``, bypassing the traffic split):

=========================================  =====  ==========================================
``/v2/health/live``, ``/v2/health/ready``  GET    liveness; readiness (503 until first sync)
``/v2``                                    GET    server metadata
``/v2/models/{m}[/versions/{v}]``          GET    model metadata (endpoint token)
``/v2/models/{m}[/versions/{v}]/ready``    GET    model readiness (200 or 503)
``/v2/models/{m}[/versions/{v}]/infer``    POST   V2 inference (endpoint token)
``/v2/repository/index``                   POST   endpoints and their state (admin token)
``/v2/repository/models/{m}/load|unload``  POST   retry / stop serving {m} here (admin token)
``/v1/models/{m}:predict``                 POST   V1 ``{"instances": [...]}``
``/endpoints/{m}/invocations``             POST   MLflow scoring bodies
``/invocations``                           POST   the same, for the default endpoint
``/metrics``                               GET    Prometheus
=========================================  =====  ==========================================

Every answer to a prediction request carries ``X-Model-Version: MODEL@VERSION`` (the version
that answered, or whose signature refused the input) and ``X-Endpoint-Revision`` (the revision
of the route table that served it). Tokens are checked before the body is read. Errors are JSON
``{"error": "..."}``: 400 bad JSON or input (the message says what was expected), 401 no
token, 403 wrong token, 404 unknown endpoint or version, 413 body over ``max_body_size``, 503
not loaded, 500 the model failed for a server-side reason. Tokens are never logged.

A serve process shared by several users (``jupyter mlplat serve --shared``) sets two checks in
the application's settings: ``mlplat_endpoint_auth`` (a coroutine ``(handler, endpoint,
reading)``) replaces the endpoint-token check of prediction, model metadata and model readiness,
so that a request without the right credential is answered exactly like one naming an endpoint
that does not exist; ``mlplat_private_auth`` (a coroutine ``(handler)``) guards ``/metrics`` and
``/v2/health/ready``. Without them (a user's own serve process) nothing changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import tornado.web

from ..errors import ConflictError, InvalidSpecError, MLPlatError, NotFoundError
from . import protocols
from .metrics import ServingMetrics
from .model import ModelFailedError, ModelUnavailableError
from .service import (
    ForbiddenError,
    InferenceResult,
    ServeSettings,
    ServingService,
    UnauthorizedError,
    is_number,
)

log = logging.getLogger(__name__)

#: Bodies larger than this are parsed, decoded and answered in a thread, off the event loop.
_PARSE_IN_THREAD = 256 * 1024
#: Model version that answered a prediction.
VERSION_HEADER = "X-Model-Version"
REVISION_HEADER = "X-Endpoint-Revision"


class BodyTooLargeError(MLPlatError):
    """The request body is over the server's ``max_body_size`` (answered with 413)."""


def status_for(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and error kind (metrics label) of an exception."""
    if isinstance(exc, tornado.web.HTTPError):
        return exc.status_code, "client" if exc.status_code < 500 else "server"
    for cls, code, kind in ((UnauthorizedError, 401, "auth"), (ForbiddenError, 403, "auth"),
                            (BodyTooLargeError, 413, "client"),
                            (NotFoundError, 404, "not_found"),
                            (ModelUnavailableError, 503, "unavailable"),
                            (ModelFailedError, 500, "server"),
                            (ConflictError, 409, "client"), (InvalidSpecError, 400, "client")):
        if isinstance(exc, cls):
            return code, kind
    return 500, "server"


class RequestTracker:
    """Counts requests being handled, so a stopping server can wait for them."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """A request began."""
        self.active += 1
        self._idle.clear()

    def done(self) -> None:
        """A request ended (answered, or its client went away)."""
        self.active -= 1
        if self.active <= 0:
            self.active = 0
            self._idle.set()

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is being handled; False when ``timeout`` ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class BaseHandler(tornado.web.RequestHandler):
    """JSON in and out, bearer tokens, the one place exceptions become status codes."""

    service: ServingService
    serve_settings: ServeSettings
    metrics: ServingMetrics
    requests: RequestTracker

    def initialize(self, service: ServingService, settings: ServeSettings,
                   metrics: ServingMetrics, requests: RequestTracker) -> None:
        self.service = service
        self.serve_settings = settings
        self.metrics = metrics
        self.requests = requests
        self._tracked = False
        self.endpoint: str | None = None
        self.answered_by: tuple[str, int] | None = None
        self.error_kind: str | None = None

    def prepare(self) -> Any:
        self.requests.start()
        self._tracked = True

    def on_finish(self) -> None:
        self._untrack()

    def on_connection_close(self) -> None:
        self._untrack()

    def _untrack(self) -> None:
        if self._tracked:
            self._tracked = False
            self.requests.done()

    @property
    def hides_endpoints(self) -> bool:
        """Whether this is a shared serve process (see the module docstring)."""
        return self.application.settings.get("mlplat_endpoint_auth") is not None

    async def authorize_endpoint(self, endpoint: str, *, reading: bool = False) -> None:
        """Check the request's credential for ``endpoint``: its token (``reading``: for
        metadata or readiness rather than a prediction); the shared process's own check when
        one is set."""
        hook = self.application.settings.get("mlplat_endpoint_auth")
        if hook is not None:
            await hook(self, endpoint, reading)
            return
        self.service.authorize(endpoint, self.bearer())

    async def authorize_private(self) -> None:
        """Check the credential of a route that tells about every endpoint (metrics, readiness):
        open in a user's own serve process, the owner's in a shared one."""
        hook = self.application.settings.get("mlplat_private_auth")
        if hook is not None:
            await hook(self)

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, or None."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            return None
        return token.strip()

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if exc is not None:
            status_code, self.error_kind = status_for(exc)
            if isinstance(exc, MLPlatError):
                message = str(exc)
            elif isinstance(exc, tornado.web.HTTPError):
                message = exc.log_message or self._reason
            else:
                message = "internal error (logged by the server)"
            served = getattr(exc, "mlplat_served", None)
            if served is not None:  # the version picked refused the input
                self.answered_by = served
                self.set_header(VERSION_HEADER, f"{served[0]}@{served[1]}")
        else:
            self.error_kind = "client" if status_code < 500 else "server"
        self.set_status(status_code)
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="mlplat"')
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        code, _ = status_for(value) if value is not None else (500, "server")
        if isinstance(value, ModelFailedError):  # the model logged its traceback already
            log.info("%s %s -> %d: %s", self.request.method, self.request.path, code, value)
        elif code >= 500 and code != 503:
            log.error("%s %s failed", self.request.method, self.request.path,
                      exc_info=(typ, value, tb))
        else:  # the client's mistake: one line, no traceback
            log.info("%s %s -> %d: %s", self.request.method, self.request.path, code, value)


@tornado.web.stream_request_body
class BodyHandler(BaseHandler):
    """A POST handler that reads at most ``max_body_size`` bytes of body (else 413)."""

    async def prepare(self) -> None:  # type: ignore[override]
        super().prepare()
        self._chunks: list[bytes] = []
        self._size = 0
        limit = self.serve_settings.max_body_size
        hard = max(4 * limit, limit + 64 * 1024 * 1024)  # drained and refused up to here
        self.request.connection.set_max_body_size(hard)  # type: ignore[union-attr]
        length = self.request.headers.get("Content-Length")
        if length and is_number(length) and int(length) > hard:
            raise BodyTooLargeError(self._too_large_message())

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.serve_settings.max_body_size:
            self._chunks = []  # keep reading (and dropping) so the client gets the 413
        else:
            self._chunks.append(chunk)

    def _too_large_message(self) -> str:
        return (f"the request body is larger than this server's limit of "
                f"{self.serve_settings.max_body_size} bytes; send fewer rows per request")

    async def json_body(self) -> Any:
        """The parsed JSON body (400 when not JSON, 413 when over the limit)."""
        if self._size > self.serve_settings.max_body_size:
            raise BodyTooLargeError(self._too_large_message())
        body = b"".join(self._chunks)
        if self.large:
            return await asyncio.to_thread(protocols.parse_json, body)
        return protocols.parse_json(body)

    @property
    def large(self) -> bool:
        """Whether the body is large enough to be handled in a thread."""
        return self._size > _PARSE_IN_THREAD



class PredictHandler(BodyHandler):
    """Shared flow of the prediction routes: auth, decode, infer, header, metrics."""

    start_time: float | None = None
    _counted = False

    async def prepare(self) -> None:
        self.start_time = time.perf_counter()
        await super().prepare()
        endpoint = self.target()
        if endpoint in self.service.endpoint_names():
            self.endpoint = endpoint
            self.metrics.inflight.labels(endpoint=endpoint).inc()
            self._counted = True
        await self.authorize_endpoint(endpoint)  # before a byte of the body is read

    def target(self) -> str:
        """The endpoint named by the path (overridden where it is not the first argument)."""
        return self.path_args[0]

    async def predict(self, endpoint: str, decode: Callable[[Any, dict[str, Any]], Any], *,
                      version: str | None = None) -> tuple[InferenceResult, Any]:
        """Run one prediction; returns the InferenceResult and what ``decode`` gave."""
        await self.authorize_endpoint(endpoint)  # again: the token may have rotated
        body = await self.json_body()
        model = self.service.decoding_model(endpoint, version)
        try:
            if self.large:
                decoded = await asyncio.to_thread(decode, body, model.signature)
            else:
                decoded = decode(body, model.signature)
        except MLPlatError as exc:
            exc.mlplat_served = model.key  # type: ignore[attr-defined]  # for the header
            raise
        X = decoded[0] if isinstance(decoded, tuple) else decoded
        result = await self.service.infer(endpoint, X, version=version,
                                          headers=self.request.headers)
        self.answered_by = (result.model, result.version)
        self.set_header(VERSION_HEADER, result.ref)
        if result.revision is not None:
            self.set_header(REVISION_HEADER, str(result.revision))
        return result, decoded

    async def answer(self, encode: Callable[[], Any]) -> None:
        """Write ``encode()`` as JSON; encoded in a thread when the request was large."""
        if self.large:
            text = await asyncio.to_thread(lambda: json.dumps(encode(), default=str))
        else:
            text = json.dumps(encode(), default=str)
        self.set_header("Content-Type", "application/json")
        self.finish(text)

    def on_finish(self) -> None:
        self._uncount()
        started = self.start_time
        if started is not None:
            model, version = self.answered_by or (None, None)
            status = self.get_status()
            self.metrics.observe_request(self.endpoint, model, version, status,
                                         time.perf_counter() - started,
                                         self.error_kind if status >= 400 else None)
            self.start_time = None
        super().on_finish()

    def on_connection_close(self) -> None:
        self._uncount()
        super().on_connection_close()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.metrics.inflight.labels(endpoint=self.endpoint).dec()


# -- health and metadata ---------------------------------------------------------------------


class LiveHandler(BaseHandler):
    def get(self) -> None:
        self.write_json({"live": True})


class ReadyHandler(BaseHandler):
    async def get(self) -> None:
        await self.authorize_private()
        ready = self.service.ready()
        self.write_json({"ready": ready}, 200 if ready else 503)


class ServerMetadataHandler(BaseHandler):
    def get(self) -> None:
        self.write_json(self.service.server_metadata())


class ModelMetadataHandler(BaseHandler):
    async def get(self, endpoint: str, version: str | None) -> None:
        await self.authorize_endpoint(endpoint, reading=True)
        self.write_json(self.service.metadata(endpoint, version))


class ModelReadyHandler(BaseHandler):
    """Readiness of an endpoint or version; needs no token in a user's own serve process, so
    it says nothing else (a shared one asks for the endpoint's token or its owner's)."""

    async def get(self, endpoint: str, version: str | None) -> None:
        if self.hides_endpoints:
            await self.authorize_endpoint(endpoint, reading=True)
        ready = self.service.endpoint_ready(endpoint, version)
        self.write_json({"name": endpoint, "ready": ready}, 200 if ready else 503)


class MetricsHandler(BaseHandler):
    async def get(self) -> None:
        await self.authorize_private()
        data, content_type = self.metrics.render()
        self.set_header("Content-Type", content_type)
        self.finish(data)


# -- prediction ------------------------------------------------------------------------------


class V2InferHandler(PredictHandler):
    async def post(self, endpoint: str, version: str | None) -> None:
        result, (_, request_id) = await self.predict(endpoint, protocols.decode_v2,
                                                     version=version)
        await self.answer(lambda: protocols.encode_v2(
            result.outputs, model_name=endpoint, model_version=result.ref,
            request_id=request_id, signature=result.signature))


class V1PredictHandler(PredictHandler):
    async def post(self, endpoint: str) -> None:
        result, _ = await self.predict(endpoint, lambda body, _sig: protocols.decode_v1(body))
        await self.answer(lambda: protocols.encode_predictions(result.outputs))


class _CsvBody:
    """A ``text/csv`` body, already parsed (MLflow's servers accept CSV too)."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame


#: What plain ``/invocations`` answers in a shared serve process when it cannot be served, be
#: there no endpoint, several, or one the caller has no token for (nothing more is said).
NO_DEFAULT_ENDPOINT = ("no default endpoint for this request; post to "
                       "endpoints/<name>/invocations with the endpoint's token")


class InvocationsHandler(PredictHandler):
    def target(self) -> str:
        return self.path_args[0] if self.path_args else self.service.default_endpoint()

    async def prepare(self) -> None:
        try:
            await super().prepare()
        except NotFoundError:
            if self.path_args or not self.hides_endpoints:
                raise
            raise NotFoundError(NO_DEFAULT_ENDPOINT) from None

    async def json_body(self) -> Any:
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.split(";")[0].strip().lower() == "text/csv":
            return await super().json_body()
        if self._size > self.serve_settings.max_body_size:
            raise BodyTooLargeError(self._too_large_message())
        raw = b"".join(self._chunks)
        if self.large:
            return _CsvBody(await asyncio.to_thread(protocols.parse_csv, raw))
        return _CsvBody(protocols.parse_csv(raw))

    async def post(self, endpoint: str | None = None) -> None:
        if endpoint is None:
            endpoint = self.target()
        result, _ = await self.predict(
            endpoint, lambda body, _sig: body.frame if isinstance(body, _CsvBody)
            else protocols.decode_mlflow(body))
        await self.answer(lambda: protocols.encode_predictions(result.outputs))


# -- repository extension (admin) ------------------------------------------------------------


class AdminHandler(BodyHandler):
    """An admin API route: the admin credential is checked before the body is read.

    The credential is the server's admin token; a shared serve process under JupyterHub
    (``jupyter mlplat serve --shared``) also accepts the hub token of the owner of the
    endpoints, checked by the ``mlplat_admin_auth`` coroutine in the application's settings
    (``jupyter_mlplat.hub.serving``).
    """

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        await self.authorize_admin()

    async def authorize_admin(self) -> None:
        """Raise unless the request carries an admin credential of this server."""
        hub_auth = self.application.settings.get("mlplat_admin_auth")
        if hub_auth is not None:
            await hub_auth(self)
            return
        self.service.authorize_admin(self.bearer())


class RepositoryIndexHandler(AdminHandler):
    async def post(self) -> None:
        await self.authorize_admin()
        self.write_json(self.service.index())


class RepositoryModelHandler(AdminHandler):
    async def post(self, endpoint: str, action: str) -> None:
        await self.authorize_admin()
        if action == "load":
            outcome = await self.service.reload(endpoint)
            if outcome.startswith("failed"):
                raise ModelUnavailableError(f"endpoint {endpoint!r}: {outcome}")
        else:
            await self.service.unload(endpoint)
            outcome = "unloaded"
        self.write_json({"name": endpoint, "outcome": outcome})


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        raise NotFoundError(f"no route {self.request.method} {self.request.path}; see "
                            "/v2/models/<endpoint>/infer, /v1/models/<endpoint>:predict or "
                            "/invocations")


def make_app(service: ServingService, settings: ServeSettings | None = None, *,
             metrics: ServingMetrics | None = None,
             requests: RequestTracker | None = None) -> tornado.web.Application:
    """The serve process's tornado application.

    Parameters
    ----------
    service : ServingService
        What every handler calls.
    settings : ServeSettings, optional
        ``max_body_size``, ``default_endpoint``; default: the service's settings.
    metrics : ServingMetrics, optional
        The collectors ``/metrics`` renders; default the service's, or new ones.
    requests : RequestTracker, optional
        Counts requests in flight (the server waits on it when stopping); default a new one,
        also reachable as ``app.settings["mlplat_requests"]``.

    Returns
    -------
    tornado.web.Application
    """
    settings = settings or service.settings
    metrics = metrics or service.metrics or ServingMetrics()
    requests = requests or RequestTracker()
    kw = {"service": service, "settings": settings, "metrics": metrics, "requests": requests}
    m = r"([^/]+)"
    v = r"(?:/versions/([^/]+))?"
    routes: list[Any] = [
        (r"/v2/health/live", LiveHandler, kw),
        (r"/v2/health/ready", ReadyHandler, kw),
        (r"/v2/?", ServerMetadataHandler, kw),
        (rf"/v2/models/{m}{v}/ready", ModelReadyHandler, kw),
        (rf"/v2/models/{m}{v}/infer", V2InferHandler, kw),
        (rf"/v2/models/{m}{v}/?", ModelMetadataHandler, kw),
        (r"/v2/repository/index", RepositoryIndexHandler, kw),
        (rf"/v2/repository/models/{m}/(load|unload)", RepositoryModelHandler, kw),
        (r"/v1/models/([^/:]+):predict", V1PredictHandler, kw),
        (rf"/endpoints/{m}/invocations", InvocationsHandler, kw),
        (r"/invocations", InvocationsHandler, kw),
        (r"/metrics", MetricsHandler, kw),
    ]
    return tornado.web.Application(routes, default_handler_class=NotFoundHandler,
                                   default_handler_args=kw, mlplat_requests=requests,
                                   mlplat_serving=service)
