"""``MLPlatHandler``: service accessors, JSON in/out, and the one mapping of errors to HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.log import _scrub_uri
from pydantic import BaseModel, ValidationError

from ...config import MLPlat
from ...errors import (
    ConflictError,
    InvalidSpecError,
    MLPlatError,
    NotFoundError,
    UnsafeArtifactError,
)
from ...serving.probe import ServingUnavailableError

if TYPE_CHECKING:
    from ..services import MLPlatServices

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")

#: Query arguments jupyter-server reads itself (``?token=`` logs in); never part of our models.
SERVER_QUERY_ARGS = frozenset({"token", "_xsrf"})


class RequestValidationError(InvalidSpecError):
    """A request body or query string that its ``schemas`` model refused.

    Raised only by :meth:`MLPlatHandler.parse_body` and :meth:`MLPlatHandler.parse_query`, so a
    pydantic error met anywhere else (an answer built from bad stored data) stays a server
    fault. ``problems`` lists each refusal without the refused value (which may be a secret).
    """

    def __init__(self, where: str, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__(f"Invalid request {where}: " + "; ".join(
            f"{'.'.join(str(part) for part in p['loc']) or where}: {p['msg']}"
            for p in problems))

    @classmethod
    def from_pydantic(cls, where: str, error: ValidationError) -> RequestValidationError:
        return cls(where, error.errors(include_url=False, include_context=False,
                                       include_input=False))


# Most specific first: the first class an error is an instance of decides its status. Anything
# else, our own MLPlatErrors included (a disk that is full, a store that is down), is a 500.
ERROR_STATUS: tuple[tuple[type[BaseException], HTTPStatus], ...] = (
    (InvalidSpecError, HTTPStatus.BAD_REQUEST),
    (NotFoundError, HTTPStatus.NOT_FOUND),
    (ConflictError, HTTPStatus.CONFLICT),
    (UnsafeArtifactError, HTTPStatus.FORBIDDEN),
    (ServingUnavailableError, HTTPStatus.BAD_GATEWAY),
)


def status_for(error: BaseException) -> HTTPStatus | None:
    """The HTTP status a client-visible error maps to; ``None`` for a server fault (a 500)."""
    for klass, status in ERROR_STATUS:
        if isinstance(error, klass):
            return status
    return None


class _NotJSONError(ValueError):
    """A JSON constant (NaN, Infinity) that standard JSON does not have."""


def _refuse_constant(name: str) -> Any:
    raise _NotJSONError(f"{name} is not a JSON number; expected a finite number (or a string)")


def _nul_paths(value: Any, where: str, skip: Iterable[str] = ()) -> list[str]:
    """Where ``value`` (parsed JSON) holds a string with a NUL character."""
    found: list[str] = []
    if isinstance(value, str):
        if "\x00" in value:
            found.append(where)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if "\x00" in str(key):
                found.append(path)
            elif path not in skip:
                found.extend(_nul_paths(item, path, skip))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_nul_paths(item, f"{where}[{i}]", skip))
    return found


class MLPlatHandler(APIHandler):
    """Base of every jupyter-mlplat REST handler.

    Services built by ``MLPlatApp.initialize_settings`` are read through typed properties.
    Errors raised by services are turned into JSON HTTP errors here and nowhere else.
    """

    auth_resource = "mlplat"

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate (jupyter-server), then refuse path parameters holding a NUL byte: no
        name or id has one, and some databases fail on them instead of finding nothing."""
        await super().prepare()
        if self._finished:
            return
        bad = [name for name, value in self.path_kwargs.items() if "\x00" in value]
        if bad:
            raise InvalidSpecError(f"the path parameter {bad[0]!r} contains a NUL character; "
                                   "expected a name or id")

    # -- services ---------------------------------------------------------------------------

    @property
    def config_(self) -> MLPlat:
        """The platform settings (``settings["mlplat_config"]``)."""
        return self.settings["mlplat_config"]

    @property
    def mlplat(self) -> MLPlat:
        """Alias of :attr:`config_`."""
        return self.config_

    @property
    def owner(self) -> str:
        """Owner every query of this request is scoped to."""
        return self.config_.owner

    async def services(self) -> MLPlatServices:
        """The services (``settings["mlplat_services"]``), opened on first use off the loop."""
        return await self.settings["mlplat_services"].ready()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking service method in a thread: SQL, files and clusters never block
        the event loop."""
        return await self.settings["mlplat_services"].call(fn, *args, **kwargs)

    # -- JSON in/out ------------------------------------------------------------------------

    def get_json(self) -> Any:
        """The request body parsed as JSON; a malformed body (NaN and Infinity included, which
        are not JSON) is a 400."""
        if not self.request.body:
            return {}
        try:
            return json.loads(self.request.body, parse_constant=_refuse_constant)
        except (json.JSONDecodeError, UnicodeDecodeError, _NotJSONError) as e:
            raise InvalidSpecError(f"Invalid JSON body: {e}") from None

    def parse_body(self, model: type[ModelT], *, nul_allowed: Iterable[str] = ()) -> ModelT:
        """The request body validated by a ``schemas`` model (a refusal is a 400).

        Strings with a NUL character are refused everywhere in the body except under the
        top-level fields named in ``nul_allowed`` (data passed through, never stored).
        """
        body = self.get_json()
        bad = _nul_paths(body, "", skip=tuple(nul_allowed))
        if bad:
            raise InvalidSpecError(f"Invalid request body: {bad[0] or 'body'} contains a NUL "
                                   "character")
        try:
            return model.model_validate(body)
        except ValidationError as e:
            raise RequestValidationError.from_pydantic("body", e) from None

    def parse_query(self, model: type[ModelT]) -> ModelT:
        """The query string validated by a ``schemas`` model (unknown arguments are a 400).

        ``token`` and ``_xsrf`` belong to jupyter-server (``?token=`` logs in) and are left out.
        (tornado already turns control characters in query values, NUL included, into spaces.)
        """
        args = {name: self.get_query_argument(name) for name in self.request.query_arguments
                if name not in SERVER_QUERY_ARGS}
        try:
            return model.model_validate(args)
        except ValidationError as e:
            raise RequestValidationError.from_pydantic("query", e) from None

    def write_json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        """Write ``data`` (a pydantic model or anything JSON-able) as the response body."""
        self.set_status(status)
        if isinstance(data, BaseModel):
            body = data.model_dump_json()
        else:
            body = json.dumps(data, default=str)
        self.finish(body)

    # -- errors -----------------------------------------------------------------------------

    def _request_summary(self) -> str:
        """``METHOD URI (ip)`` for logs, with secrets in the URI (``?token=``) replaced."""
        return f"{self.request.method} {_scrub_uri(self.request.uri or '')} " \
               f"({self.request.remote_ip})"

    def _handle_request_exception(self, e: BaseException) -> None:
        """Map library errors to their status before tornado turns anything else into a 500."""
        if self._finished:
            super()._handle_request_exception(e)
            return
        status = status_for(e)
        if status is not None:
            self.log.info("%s -> %d: %s", self._request_summary(), status, e)
            self.send_error(int(status), exc_info=(type(e), e, e.__traceback__))
            return
        if isinstance(e, MLPlatError):  # ours, but a server fault: logged, message kept
            self.log.error("%s -> 500: %s", self._request_summary(), e,
                           exc_info=(type(e), e, e.__traceback__))
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                            exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)  # logs, then 500 (or the HTTPError's own status)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """tornado's logging of unexpected errors, without the request's repr (its URI may
        hold a token)."""
        if isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)
            return
        self.log.error("Uncaught exception %s", self._request_summary(),
                       exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Render every error as JSON: ``{"message": ..., "reason": ..., "error": <class>}``."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if error is None or isinstance(error, tornado.web.HTTPError) or not (
                isinstance(error, MLPlatError) or status_for(error) is not None):
            # Unexpected errors keep jupyter-server's rendering (message hidden unless debug).
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        body: dict[str, Any] = {
            "message": str(error),
            "reason": self._reason,
            "error": type(error).__name__,
        }
        if isinstance(error, RequestValidationError):
            body["error"] = "ValidationError"
            body["detail"] = error.problems
        self.finish(json.dumps(body, default=str))
