"""The store and the artifact store over HTTP, through ``jupyter mlplat service`` (JupyterHub).

``RemoteStore`` has the interface of :class:`jupyter_mlplat.store.sql.Store`: each public method
the service exposes (``jupyter_mlplat.hub.policy.EXPOSED``) is one HTTP call, and rows come back
as detached ORM instances with timezone-aware datetimes, so the library's services run
unchanged on top of it. ``RemoteArtifactStore`` has the interface of
:class:`jupyter_mlplat.store.artifacts.ArtifactStore`. Both authenticate with the user's hub
token (``MLPLAT_SERVICE_TOKEN``, else ``JUPYTERHUB_API_TOKEN``), so user servers, the CLI and
step kernels hold no database credentials; the owner is whoever the hub says the token belongs
to, never a name the client sends.

A URL ``mlplat+http://HOST[:PORT]/PREFIX`` (or ``mlplat+https://``) selects them, as
``store_url`` or ``artifacts_url`` (``jupyter_mlplat.store.open_store``).

Store calls wait at most ``CALL_TIMEOUT`` for an answer (the heartbeat of a running pipeline
``HEARTBEAT_TIMEOUT``), so a stalled service never holds an executor past the 30 s after which
other processes take its run for dead; artifact transfers, which stream, get
``TRANSFER_TIMEOUT`` between bytes. A method the policy marks idempotent (reads, the heartbeat,
content-addressed uploads and downloads) is retried for up to ``RETRY_FOR`` seconds when the
connection fails or the service answers 502/503/504/429 (a restarted service, a stale
keep-alive socket); any other call is retried only when it failed before it was sent. A method
the service does not have (a client newer than the service) raises ``UnknownMethodError``,
never ``NotFoundError``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from ..errors import InvalidSpecError, MLPlatError, NotFoundError, SerializationError
from ..hub.protocol import (
    ERROR_KINDS,
    SHA256_HEADER,
    UnknownMethodError,
    decode,
    encode,
    http_base,
)
from .artifacts import _CHUNK, _KEY_RE, _SHA_RE, ArtifactInfo, _hash_file, _normalise_ext

log = logging.getLogger(__name__)

TOKEN_VARS = ("MLPLAT_SERVICE_TOKEN", "JUPYTERHUB_API_TOKEN")
#: Seconds to connect, and to wait for the answer of a store call.
CALL_TIMEOUT = (5.0, 30.0)
#: The heartbeat of a running pipeline: well inside the 30 s after which a run counts as dead.
HEARTBEAT_TIMEOUT = (3.0, 8.0)
#: Artifact transfers stream: seconds to connect, and between two reads.
TRANSFER_TIMEOUT = (10.0, 600.0)
#: How long an idempotent request is retried after a transient failure.
RETRY_FOR = 15.0
#: Answers worth retrying an idempotent request after (a proxy or service restarting, busy).
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Files at least this big are looked up before being uploaded (the service may have them).
_ASK_FIRST = 1 << 20


class ServiceAuthError(MLPlatError):
    """The store service refused the token (none, unknown, or without access to it)."""


def service_token(token: str | None = None) -> str:
    """``token``, else ``$MLPLAT_SERVICE_TOKEN``, else ``$JUPYTERHUB_API_TOKEN``."""
    for value in (token, *(os.environ.get(v) for v in TOKEN_VARS)):
        if value:
            return value
    raise ServiceAuthError(
        "the store is a store service (mlplat+http://...) but no hub token was found: set "
        "MLPLAT_SERVICE_TOKEN, or run inside a JupyterHub user server (JUPYTERHUB_API_TOKEN)")


class ServiceClient:
    """HTTP calls to one store service with one token (a connection pool per thread).

    Parameters
    ----------
    url : str
        ``mlplat+http(s)://host[:port]/prefix`` of the service.
    token : str, optional
        Hub token; see :func:`service_token`.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.base = http_base(url)
        self._token = service_token(token)
        self._local = threading.local()
        self._whoami: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ServiceClient({self.url!r})"  # never the token

    def _session(self) -> Any:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        session = getattr(self._local, "session", None)
        if session is None or getattr(self._local, "pid", None) != os.getpid():
            session = requests.Session()
            # Connection failures before a request is sent (a restarted service, a stale
            # keep-alive socket) are retried; nothing is retried once it was sent.
            retry = Retry(total=3, connect=3, read=0, status=0, other=0,
                          allowed_methods=None, backoff_factor=0.3)
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            session.headers["Authorization"] = f"token {self._token}"
            self._local.session, self._local.pid = session, os.getpid()
        return session

    def request(self, method: str, path: str, *, retry: bool = False,
                body: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        """One request to ``<base><path>``; an error answer is raised as the service's error.

        ``retry``: the request is idempotent, so it is sent again (for up to ``RETRY_FOR``
        seconds) after a failed connection, a timeout or a 429/502/503/504 answer. ``body``
        makes a fresh request body for each attempt (a file opened again).
        """
        import requests

        kwargs.setdefault("timeout", CALL_TIMEOUT)
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.25
        while True:
            last = not retry or time.monotonic() + delay > deadline
            data = body() if body is not None else None
            try:
                if data is not None:
                    kwargs["data"] = data
                try:
                    response = self._session().request(method, self.base + path, **kwargs)
                finally:
                    if hasattr(data, "close"):
                        data.close()
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not last:
                    log.info("store service %s %s failed (%s); retrying", method, path,
                             type(exc).__name__)
                    time.sleep(delay)
                    delay = min(delay * 2, 4.0)
                    continue
                raise self._unreachable(exc) from None
            except requests.RequestException as exc:
                raise self._unreachable(exc) from None
            if response.status_code in _RETRY_STATUSES and not last:
                response.close()
                time.sleep(delay)
                delay = min(delay * 2, 4.0)
                continue
            if response.status_code >= 400:
                raise self._error(response)
            return response

    def _unreachable(self, exc: Exception) -> MLPlatError:
        # the socket's own error ("Connection refused"), not urllib3's account of retries
        reason = getattr(exc.args[0] if exc.args else None, "reason", None) or exc
        text = str(reason).splitlines()[0].rsplit("): ", 1)[-1][:300]
        return MLPlatError(
            f"cannot reach the store service at {self.base} ({type(exc).__name__}: {text});"
            " check MLPLAT_STORE_URL and that the hub service is running")

    def _error(self, response: Any) -> MLPlatError:
        try:
            body = response.json()
            message, kind = str(body.get("error")), str(body.get("kind"))
        except ValueError:
            message, kind = response.text[:500] or response.reason, ""
        if response.status_code in (401, 403):
            return ServiceAuthError(f"the store service at {self.base} refused the request "
                                    f"({response.status_code}): {message}")
        cls = ERROR_KINDS.get(kind)
        if cls is None:
            cls = {400: InvalidSpecError, 404: NotFoundError}.get(response.status_code,
                                                                 MLPlatError)
        if response.status_code >= 500:
            message = f"the store service failed ({response.status_code}): {message}"
        return cls(message)

    def whoami(self) -> dict[str, Any]:
        """``{"owner", "artifacts_prefix", "version", "methods"}`` for this token (asked
        once)."""
        if self._whoami is None:
            self._whoami = self.request("GET", "api/whoami", retry=True).json()
        return self._whoami

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run one store method on the service; its result, decoded."""
        from ..hub.policy import EXPOSED

        rule = EXPOSED.get(method)
        body = {"args": encode(list(args)), "kwargs": encode(kwargs), "process": _process()}
        timeout = HEARTBEAT_TIMEOUT if method == "heartbeat" else CALL_TIMEOUT
        answer = self.request("POST", f"api/store/{method}", json=body, timeout=timeout,
                              retry=bool(rule and rule.idempotent))
        return decode(answer.json()["result"])

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None


@functools.lru_cache(maxsize=4)
def _process_of(pid: int) -> dict[str, Any]:
    import psutil

    return {"host": socket.gethostname(), "pid": pid,
            "started": psutil.Process(pid).create_time()}


def _process() -> dict[str, Any]:
    """This process, as the runs it creates or claims record it."""
    return _process_of(os.getpid())


class RemoteStore:
    """``Store``'s interface over HTTP, scoped by the service to the token's hub user.

    Parameters
    ----------
    url : str
        ``mlplat+http(s)://host[:port]/prefix`` of ``jupyter mlplat service``.
    token : str, optional
        Hub token (default ``$MLPLAT_SERVICE_TOKEN``, else ``$JUPYTERHUB_API_TOKEN``).
    sweep : bool
        Mark this owner's runs whose process is gone as ``interrupted`` on open (default True).
    """

    def __init__(self, url: str, *, token: str | None = None, sweep: bool = True) -> None:
        from ..hub.policy import EXPOSED

        self.url = url
        self.client = ServiceClient(url, token)
        whoami = self.client.whoami()
        self.owner: str = whoami["owner"]
        self.host = socket.gethostname()
        self._exposed = frozenset(EXPOSED)
        # what the service has (a service older than this client may lack a method)
        self._offered = frozenset(whoami.get("methods") or EXPOSED)
        self._service_version = str(whoami.get("version") or "?")
        if sweep:
            self.sweep_interrupted()

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r}, owner={self.owner!r})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.__dict__.get("_exposed", ()):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        method = functools.partial(self.client.call, name)
        offered = name in self.__dict__.get("_offered", ())

        def call(*args: Any, **kwargs: Any) -> Any:
            if not offered:
                raise UnknownMethodError(
                    f"the store service at {self.client.base} (jupyter-mlplat "
                    f"{self._service_version}) has no method {name!r}, which this client "
                    "needs: upgrade the service to this client's version")
            return method(args, kwargs)

        call.__name__ = name
        setattr(self, name, call)  # the next lookup finds it without __getattr__
        return call

    def session(self) -> Any:
        raise MLPlatError("a store reached through the store service has no database session; "
                          "use its methods")

    def close(self) -> None:
        self.client.close()


class RemoteArtifactStore:
    """``ArtifactStore``'s interface over HTTP: the user's own part of the shared store.

    Objects are uploaded through the service and downloaded into a local cache, checked against
    their sha256. URIs are the service's own (``.../users/<owner>/objects/ab/cdef....npy``), so
    runs, models and the shared serve process agree on them.

    Parameters
    ----------
    url : str
        ``mlplat+http(s)://host[:port]/prefix`` of ``jupyter mlplat service``.
    token : str, optional
        Hub token (see :class:`RemoteStore`).
    cache_dir : str, optional
        Where downloaded objects are kept; default ``<jupyter data dir>/mlplat/artifact-cache``.
    """

    is_local = False

    def __init__(self, url: str, *, token: str | None = None,
                 cache_dir: str | None = None) -> None:
        self.url = url
        self.client = ServiceClient(url, token)
        self._cache_dir = cache_dir

    def __repr__(self) -> str:
        return f"RemoteArtifactStore({self.url!r})"

    @property
    def owner(self) -> str:
        return self.client.whoami()["owner"]

    @property
    def root(self) -> str:
        """The service-side prefix of this user's objects."""
        return self.client.whoami()["artifacts_prefix"]

    # -- keys and URIs -------------------------------------------------------------------------

    def key_for(self, sha256: str, ext: str) -> str:
        """The object key of content ``sha256`` with extension ``ext``."""
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"objects/{sha256[:2]}/{sha256[2:]}{_normalise_ext(ext)}"

    def uri_for(self, sha256: str, ext: str) -> str:
        """The URI an object with this content and extension has (or would have)."""
        return self.root + self.key_for(sha256, ext)

    def _key_of(self, uri: str) -> str | None:
        prefix = self.root
        if not isinstance(uri, str) or not uri.startswith(prefix):
            return None
        key = uri[len(prefix):]
        return key if _KEY_RE.match(key) else None

    def _shared_key(self, uri: str) -> tuple[str, str] | None:
        """(owner folder, key) of an object in another owner's part of the service's store
        (readable only when that owner shared its model with you; the service decides)."""
        users = self.root.rstrip("/").rsplit("/", 1)[0] + "/"
        if not isinstance(uri, str) or not uri.startswith(users):
            return None
        folder, _, key = uri[len(users):].partition("/")
        if not folder or folder in (".", "..") or "%2F" in folder.upper() \
                or not _KEY_RE.match(key):
            return None
        return folder, key

    # -- writing -------------------------------------------------------------------------------

    def put_file(self, local_path: str | os.PathLike[str], ext: str) -> ArtifactInfo:
        """Store the content of a local file (see ``ArtifactStore.put_file``)."""
        ext = _normalise_ext(ext)
        sha, size = _hash_file(local_path)
        if size >= _ASK_FIRST:
            uri = self.uri_for(sha, ext)
            if self.exists(uri):
                return ArtifactInfo(sha, uri, size)
        # content-addressed, so sending it again is harmless: retried like a read
        answer = self.client.request(
            "POST", "api/artifacts/object", params={"ext": ext},
            body=lambda: open(local_path, "rb"), retry=True,  # noqa: SIM115 - closed per try
            timeout=TRANSFER_TIMEOUT,
            headers={SHA256_HEADER: sha, "Content-Type": "application/octet-stream"},
        ).json()
        return ArtifactInfo(answer["sha256"], answer["uri"], int(answer["size"]))

    def put_bytes(self, data: bytes, ext: str) -> ArtifactInfo:
        """Store ``data`` (see ``ArtifactStore.put_bytes``)."""
        ext = _normalise_ext(ext)
        data = bytes(data)
        answer = self.client.request(
            "POST", "api/artifacts/object", params={"ext": ext}, data=data, retry=True,
            timeout=TRANSFER_TIMEOUT,
            headers={SHA256_HEADER: hashlib.sha256(data).hexdigest(),
                     "Content-Type": "application/octet-stream"},
        ).json()
        return ArtifactInfo(answer["sha256"], answer["uri"], int(answer["size"]))

    # -- reading -------------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names an object of this user that the service holds."""
        if self._key_of(uri) is None:
            return False
        return bool(self.client.request("GET", "api/artifacts/exists", retry=True,
                                         params={"uri": uri}).json()["exists"])

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open an object for reading (``"rb"`` or ``"r"``), from the local cache."""
        if mode not in ("rb", "r"):
            raise ValueError(f"artifacts are read-only; mode {mode!r} is not allowed")
        return open(self.local_path(uri), mode)  # noqa: SIM115 - the caller closes it

    def read_bytes(self, uri: str) -> bytes:
        """The whole content of an object."""
        with self.open(uri, "rb") as f:
            return f.read()

    def local_path(self, uri: str) -> str:
        """A local copy of the object, downloaded once and checked against its sha256."""
        key = self._key_of(uri)
        if key is not None:
            cached = os.path.join(self._cache_root(), *key.split("/"))
        elif (shared := self._shared_key(uri)) is not None:
            key = shared[1]
            cached = os.path.join(self._cache_root(), ".shared", shared[0], *key.split("/"))
        else:
            raise NotFoundError(f"{uri!r} is not an artifact of yours in the store service")
        if os.path.exists(cached):
            return cached
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        m = _KEY_RE.match(key)
        assert m is not None
        expected = m.group(1) + m.group(2)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cached), prefix=".get-", suffix=".tmp")
        try:
            digest = hashlib.sha256()
            response = self.client.request("GET", "api/artifacts/object", params={"uri": uri},
                                           stream=True, retry=True, timeout=TRANSFER_TIMEOUT)
            with response, os.fdopen(fd, "wb") as dst:
                for chunk in response.iter_content(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != expected:
                raise SerializationError(
                    f"artifact {uri!r} arrived corrupt: its content hashes to "
                    f"{digest.hexdigest()}")
            os.replace(tmp, cached)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return cached

    def _cache_root(self) -> str:
        # Under the user's own data folder, not a shared temp folder: a cached copy is trusted
        # without hashing it again, so nobody else may be able to write there.
        if self._cache_dir is None:
            from ..config import data_dir

            tag = hashlib.sha256(f"{self.client.base}\0{self.owner}".encode()).hexdigest()[:16]
            self._cache_dir = str(data_dir() / "artifact-cache" / tag)
            os.makedirs(self._cache_dir, mode=0o700, exist_ok=True)
        return self._cache_dir

    def clear_cache(self) -> None:
        """Remove the local copies :meth:`local_path` downloaded."""
        if self._cache_dir is not None:
            shutil.rmtree(self._cache_dir, ignore_errors=True)

