"""``jupyter mlplat service``: the store and the artifact store over HTTP, for hub users.

Routes, under the service prefix (``$JUPYTERHUB_SERVICE_PREFIX``, e.g. ``/services/mlplat/``):

==============================  ======  ===========================================================
``api/health`` (and ``/``)      GET     ``{"status": "ok"}``; no token needed, says nothing else
``api/whoami``                  GET     ``{"owner", "artifacts_prefix", "version", "methods"}``
``api/store/<method>``          POST    one store call (``hub.protocol`` describes the body)
``api/artifacts/exists``        GET     ``?uri=``: ``{"exists": bool}``
``api/artifacts/object``        GET     ``?uri=``: the object's bytes
``api/artifacts/object``        POST    ``?ext=.npy``, body = bytes (``X-MLPlat-SHA256`` checked):
                                        ``{"sha256", "uri", "size"}``
==============================  ======  ===========================================================

Every route but ``health`` needs a hub token with access to the service; the owner of every call
is the token's user. The token is checked as soon as a request's headers arrive, before a byte
of its body is read: the server refuses bodies over ``max_call_size``, and only an upload with a
valid token may send more (up to ``max_upload_size``). Errors are JSON ``{"error", "kind"}``:
400 bad input, 401 no or unknown token, 403 a token that may not use the service, 404 not found
(another owner's rows and objects read as not found), 409 conflict, 413 too large, 429 too many
uploads at once, 501 no such method, 500 the service's own fault (logged). Store calls and file
work (uploads included) run in a thread pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import tornado.web

from ..errors import ConflictError, InvalidSpecError, MLPlatError, NotFoundError
from .artifacts import OwnerArtifacts, open_object
from .auth import HubIdentity, HubUser, NotAuthenticatedError, NotPermittedError
from .dispatch import CallerProcess, StoreDispatcher
from .protocol import SHA256_HEADER, UnknownMethodError, decode, encode
from .schedules import DEFAULT_KERNELS

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class PayloadTooLargeError(MLPlatError):
    """A request body over the service's limit (answered with 413)."""


class TooManyUploadsError(MLPlatError):
    """More uploads at once than the service takes (answered with 429)."""


@dataclass(frozen=True)
class ServiceSettings:
    """Limits of the store service.

    ``max_call_size`` bounds every request body (the HTTP server's own limit); only an upload
    with a valid token may send up to ``max_upload_size``. ``max_uploads`` and
    ``max_uploads_per_user`` bound the uploads in flight at once. ``upload_dir`` is where
    uploads are staged (the service's private folder; default the system's temp folder).
    ``kernels`` and ``webhook_hosts`` say what users' schedules may name
    (:class:`~jupyter_mlplat.hub.schedules.SchedulePolicy`).
    """

    max_call_size: int = 64 * 1024 * 1024  # one store call's JSON body
    max_upload_size: int = 8 * 1024 ** 3  # one artifact
    max_uploads: int = 16
    max_uploads_per_user: int = 4
    threads: int = 8
    upload_dir: str | None = None
    kernels: frozenset[str] = DEFAULT_KERNELS
    webhook_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Any = None) -> ServiceSettings:
        """Settings from ``MLPLAT_SERVICE_*`` variables (defaults where unset).

        ``MLPLAT_SERVICE_MAX_CALL_SIZE`` / ``_MAX_UPLOAD_SIZE`` (bytes),
        ``MLPLAT_SERVICE_KERNELS`` and ``MLPLAT_SERVICE_WEBHOOK_HOSTS`` (comma-separated).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for key, name in (("max_call_size", "MAX_CALL_SIZE"),
                          ("max_upload_size", "MAX_UPLOAD_SIZE")):
            raw = env.get(f"MLPLAT_SERVICE_{name}")
            if raw:
                try:
                    values[key] = int(raw)
                except ValueError:
                    raise InvalidSpecError(f"MLPLAT_SERVICE_{name} must be a number of bytes; "
                                           f"got {raw!r}") from None
                if values[key] <= 0:
                    raise InvalidSpecError(f"MLPLAT_SERVICE_{name} must be positive")
        for key, name in (("kernels", "KERNELS"), ("webhook_hosts", "WEBHOOK_HOSTS")):
            raw = env.get(f"MLPLAT_SERVICE_{name}")
            if raw is not None:
                values[key] = frozenset(v.strip() for v in raw.split(",") if v.strip())
        return cls(**values)


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception raised while answering."""
    if isinstance(exc, tornado.web.HTTPError):
        return exc.status_code
    for cls, code in ((NotAuthenticatedError, 401), (NotPermittedError, 403),
                      (PayloadTooLargeError, 413), (TooManyUploadsError, 429),
                      (UnknownMethodError, 501), (NotFoundError, 404), (ConflictError, 409),
                      (InvalidSpecError, 400)):
        if isinstance(exc, cls):
            return code
    return 500


class ServiceContext:
    """What the handlers share: the dispatcher, the artifact stores, identity and a pool."""

    def __init__(self, dispatcher: StoreDispatcher, artifacts: OwnerArtifacts,
                 identity: HubIdentity, settings: ServiceSettings) -> None:
        self.dispatcher = dispatcher
        self.artifacts = artifacts
        self.identity = identity
        self.settings = settings
        self.pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="mlplat-service")
        self.uploads: dict[str, int] = {}  # owner -> uploads in flight (event loop only)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(*args))

    def start_upload(self, owner: str) -> None:
        """Count an upload of ``owner``; refused when too many are in flight."""
        if sum(self.uploads.values()) >= self.settings.max_uploads:
            raise TooManyUploadsError(f"the store service takes {self.settings.max_uploads} "
                                      "uploads at once; try again shortly")
        if self.uploads.get(owner, 0) >= self.settings.max_uploads_per_user:
            raise TooManyUploadsError(
                f"you have {self.settings.max_uploads_per_user} uploads in flight, the most "
                "the store service takes from one user; try again when one finished")
        self.uploads[owner] = self.uploads.get(owner, 0) + 1

    def end_upload(self, owner: str) -> None:
        left = self.uploads.get(owner, 0) - 1
        if left > 0:
            self.uploads[owner] = left
        else:
            self.uploads.pop(owner, None)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Hub authentication, JSON answers, the one place errors become status codes.

    Every route streams its request body (``stream_request_body``): ``prepare`` checks the token
    as soon as the headers are in, and a body is only ever taken by a handler that reads one
    (store calls, uploads); any other route drops it unread.
    """

    ctx: ServiceContext
    user: HubUser

    def initialize(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def data_received(self, chunk: bytes) -> None:
        """Routes without a body drop what a client sends anyway."""

    async def prepare(self) -> None:
        self.user = await self.ctx.identity.identify(self.request.headers)
        if self.user.kind != "user" or not self.user.name:
            raise NotPermittedError("the store service serves hub users; a service token "
                                    "has no owner")

    @property
    def owner(self) -> str:
        return self.user.name

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        kind = "MLPlatError"
        if exc is not None:
            status_code = status_for(exc)
            if isinstance(exc, MLPlatError):
                message, kind = str(exc), type(exc).__name__
            elif isinstance(exc, tornado.web.HTTPError):
                message = exc.log_message or self._reason
            else:
                message = "internal error (logged by the store service)"
        else:
            message = self._reason
        self.set_status(status_code)
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'token realm="jupyterhub"')
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "kind": kind}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        code = status_for(value) if value is not None else 500
        if code >= 500:
            log.error("%s %s failed", self.request.method, self.request.path,
                      exc_info=(typ, value, tb))
        else:
            log.info("%s %s -> %d: %s", self.request.method, self.request.path, code, value)

    def _uri(self) -> str:
        uri = self.get_query_argument("uri", "")
        if not uri:
            raise InvalidSpecError("the 'uri' query argument is missing")
        return uri


class HealthHandler(BaseHandler):
    async def prepare(self) -> None:
        """No token needed: the answer says nothing about anyone."""

    def get(self) -> None:
        self.write_json({"status": "ok"})


class WhoAmIHandler(BaseHandler):
    def get(self) -> None:
        from .. import __version__

        self.write_json({"owner": self.owner, "version": __version__,
                         "artifacts_prefix": self.ctx.artifacts.uri_prefix(self.owner),
                         "methods": self.ctx.dispatcher.methods()})


class StoreCallHandler(BaseHandler):
    """One store call; the body is read only after the token was checked (``prepare``)."""

    async def prepare(self) -> None:
        await super().prepare()
        self._chunks: list[bytes] = []
        self._size = 0
        if _declared_length(self.request) > self.ctx.settings.max_call_size:
            raise PayloadTooLargeError(self._too_large())

    def _too_large(self) -> str:
        return f"a store call's body is limited to {self.ctx.settings.max_call_size} bytes"

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.ctx.settings.max_call_size:
            self._chunks = []  # dropped; the answer is 413
        else:
            self._chunks.append(chunk)

    async def post(self, method: str) -> None:
        if self._size > self.ctx.settings.max_call_size:
            raise PayloadTooLargeError(self._too_large())
        raw = b"".join(self._chunks)
        self._chunks = []
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise InvalidSpecError(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidSpecError('expected a JSON object {"args": [...], "kwargs": {...}}')
        args = decode(body.get("args") or [], rows=False)
        kwargs = decode(body.get("kwargs") or {}, rows=False)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise InvalidSpecError("'args' must be an array and 'kwargs' an object")
        process = CallerProcess.parse(body.get("process"))
        result = await self.ctx.run(self.ctx.dispatcher.call, self.owner, method, args,
                                    kwargs, process, self.user.groups)
        self.write_json({"result": encode(result)})


class ExistsHandler(BaseHandler):
    async def get(self) -> None:
        store = self.ctx.artifacts.store(self.owner)
        self.write_json({"exists": await self.ctx.run(store.exists, self._uri())})


class ObjectHandler(BaseHandler):
    """Download (GET) and upload (POST, streamed into a temporary file) of one object."""

    async def prepare(self) -> None:
        await super().prepare()  # the token is checked before a byte of the body is read
        self._tmp: Any = None
        self._counted = False
        self._digest = hashlib.sha256()
        self._size = 0
        if self.request.method != "POST":
            return
        limit = self.ctx.settings.max_upload_size
        if _declared_length(self.request) > limit:
            raise PayloadTooLargeError(f"an artifact is limited to {limit} bytes")
        self._ext = self.get_query_argument("ext", "")
        try:  # the extension is checked before anything is read
            self.ctx.artifacts.store(self.owner).key_for("0" * 64, self._ext)
        except ValueError as exc:
            raise InvalidSpecError(f"{exc}; expected an extension like '.npy' or "
                                   "'.tar.gz' (letters, digits, '_' and '-')") from None
        self.ctx.start_upload(self.owner)
        self._counted = True
        # Only now, for a user with a valid token, may the body exceed the server's limit.
        self.request.connection.set_max_body_size(limit)  # type: ignore[union-attr]
        self._tmp = await self.ctx.run(self._open_tmp)

    def _open_tmp(self) -> Any:
        folder = self.ctx.settings.upload_dir
        if folder:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        return tempfile.NamedTemporaryFile(prefix="mlplat-upload-", dir=folder, delete=False)

    async def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._tmp is None or self._size > self.ctx.settings.max_upload_size:
            return  # dropped; the answer is 413
        await self.ctx.run(self._take, self._tmp, chunk)  # hashing and disk off the loop

    def _take(self, tmp: Any, chunk: bytes) -> None:
        self._digest.update(chunk)
        tmp.write(chunk)

    def on_finish(self) -> None:
        self._discard()

    def on_connection_close(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            self.ctx.end_upload(self.owner)
        tmp, self._tmp = getattr(self, "_tmp", None), None
        if tmp is not None:
            self.ctx.pool.submit(_remove, tmp)

    async def post(self) -> None:
        if self._size > self.ctx.settings.max_upload_size:
            raise PayloadTooLargeError(
                f"an artifact is limited to {self.ctx.settings.max_upload_size} bytes")
        await self.ctx.run(self._tmp.flush)
        sha = self._digest.hexdigest()
        claimed = self.request.headers.get(SHA256_HEADER)
        if claimed and claimed != sha:
            raise InvalidSpecError(f"the upload's content hashes to {sha}, not {claimed} (a "
                                   "transfer error); nothing was stored")
        store = self.ctx.artifacts.store(self.owner)
        info = await self.ctx.run(store.put_file, self._tmp.name, self._ext)
        self.write_json({"sha256": info.sha256, "uri": info.uri, "size": info.size})

    async def get(self) -> None:
        uri = self._uri()
        store = self.ctx.artifacts.store(await self.ctx.run(self._object_owner, uri))
        # refuses URIs outside the owner's folder, links and anything but a regular file
        f = await self.ctx.run(open_object, store, uri)
        try:
            self.set_header("Content-Type", "application/octet-stream")
            while chunk := await self.ctx.run(f.read, _CHUNK):
                self.write(chunk)
                await self.flush()
        finally:
            await self.ctx.run(f.close)
        self.finish()


    def _object_owner(self, uri: str) -> str:
        """Whose folder ``uri`` is read from: the caller's own, or another owner's when it is
        a (not trusted-only) file of a model version shared with the caller's projects.
        Anything else is read from the caller's folder, which refuses it as not found."""
        other = self.ctx.artifacts.owner_of(uri)
        if other is None or other == self.owner:
            return self.owner
        view = self.ctx.dispatcher.view(self.owner, self.user.groups)
        return view.shared_object_owner(uri, [other]) or self.owner


def _declared_length(request: Any) -> int:
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise InvalidSpecError("Content-Length is not a number") from None


def _remove(tmp: Any) -> None:
    tmp.close()
    try:
        os.unlink(tmp.name)
    except OSError:
        pass


def make_app(ctx: ServiceContext, prefix: str = "/") -> tornado.web.Application:
    """The service's tornado application, its routes under ``prefix``.

    Parameters
    ----------
    ctx : ServiceContext
        Dispatcher, artifact stores, hub identity and thread pool.
    prefix : str
        URL prefix (``$JUPYTERHUB_SERVICE_PREFIX``), with a trailing slash.
    """
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    kw = {"ctx": ctx}
    return tornado.web.Application([
        (prefix, HealthHandler, kw),  # the hub looks here to see the service is up
        (f"{prefix}api/health", HealthHandler, kw),
        (f"{prefix}api/whoami", WhoAmIHandler, kw),
        (rf"{prefix}api/store/([a-z][a-z0-9_]*)", StoreCallHandler, kw),
        (f"{prefix}api/artifacts/exists", ExistsHandler, kw),
        (f"{prefix}api/artifacts/object", ObjectHandler, kw),
    ], xsrf_cookies=False)
