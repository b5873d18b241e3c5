"""``MLPlatHandler``: service accessors, JSON in/out, and the one mapping of errors to HTTP."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError

from ...config import MLPlat
from ...errors import (
    ConflictError,
    InvalidSpecError,
    MLPlatError,
    NotFoundError,
    UnsafeArtifactError,
)

ModelT = TypeVar("ModelT", bound=BaseModel)

# Most specific first: the first class an error is an instance of decides its status.
ERROR_STATUS: tuple[tuple[type[BaseException], HTTPStatus], ...] = (
    (InvalidSpecError, HTTPStatus.BAD_REQUEST),
    (NotFoundError, HTTPStatus.NOT_FOUND),
    (ConflictError, HTTPStatus.CONFLICT),
    (UnsafeArtifactError, HTTPStatus.FORBIDDEN),
    (ValidationError, HTTPStatus.BAD_REQUEST),
    (MLPlatError, HTTPStatus.BAD_REQUEST),
)


def status_for(error: BaseException) -> HTTPStatus | None:
    """The HTTP status an error maps to; ``None`` for unexpected errors (a 500)."""
    for klass, status in ERROR_STATUS:
        if isinstance(error, klass):
            return status
    return None


class MLPlatHandler(APIHandler):
    """Base of every jupyter-mlplat REST handler.

    Services built by ``MLPlatApp.initialize_settings`` are read through typed properties.
    Errors raised by services are turned into JSON HTTP errors here and nowhere else.
    """

    auth_resource = "mlplat"

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

    # -- JSON in/out ------------------------------------------------------------------------

    def get_json(self) -> Any:
        """The request body parsed as JSON; a malformed body is a 400."""
        if not self.request.body:
            return {}
        try:
            return json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST, f"Invalid JSON body: {e}") from e

    def parse_body(self, model: type[ModelT]) -> ModelT:
        """The request body validated by a ``schemas`` model (a ValidationError becomes a 400)."""
        return model.model_validate(self.get_json())

    def write_json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        """Write ``data`` (a pydantic model or anything JSON-able) as the response body."""
        self.set_status(status)
        if isinstance(data, BaseModel):
            body = data.model_dump_json()
        else:
            body = json.dumps(data, default=str)
        self.finish(body)

    # -- errors -----------------------------------------------------------------------------

    def _handle_request_exception(self, e: BaseException) -> None:
        """Map library errors to their status before tornado turns anything else into a 500."""
        status = status_for(e)
        if status is not None and not self._finished:
            self.log.info("%s %s -> %d: %s", self.request.method, self.request.uri, status, e)
            self.send_error(int(status), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)  # logs, then 500 (or the HTTPError's own status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Render every error as JSON: ``{"message": ..., "reason": ..., "error": <class>}``."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if error is None or isinstance(error, tornado.web.HTTPError) or status_for(error) is None:
            # Unexpected errors keep jupyter-server's rendering (message hidden unless debug).
            super().write_error(status_code, **kwargs)
            return
        self.set_header("Content-Type", "application/json")
        body: dict[str, Any] = {
            "message": str(error),
            "reason": self._reason,
            "error": type(error).__name__,
        }
        if isinstance(error, ValidationError):
            body["message"] = "Invalid request"
            body["detail"] = error.errors(include_url=False, include_context=False)
        self.finish(json.dumps(body, default=str))
