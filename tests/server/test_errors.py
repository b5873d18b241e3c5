"""Library errors become JSON HTTP errors in one place: ``MLPlatHandler``."""

from __future__ import annotations

import json

import pytest
import tornado.web
from pydantic import BaseModel, ValidationError
from tornado.httpclient import HTTPClientError

from jupyter_mlplat.errors import (
    ConflictError,
    InvalidSpecError,
    MLPlatError,
    NotFoundError,
    SerializationError,
    StepFailedError,
    UnsafeArtifactError,
)
from jupyter_mlplat.server.handlers.base import MLPlatHandler, RequestValidationError
from jupyter_mlplat.serving.probe import ServingUnavailableError


class _Body(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Body.model_validate({"n": "not a number"})
    except ValidationError as e:
        return e
    raise AssertionError("expected a ValidationError")


def _request_validation_error() -> RequestValidationError:
    return RequestValidationError.from_pydantic("body", _validation_error())


# kind -> (error a service raises, expected status)
ERRORS: dict[str, tuple[Exception, int]] = {
    "invalid": (InvalidSpecError("bad spec"), 400),
    "request": (_request_validation_error(), 400),
    "notfound": (NotFoundError("no run 7"), 404),
    "conflict": (ConflictError("still running"), 409),
    "unsafe": (UnsafeArtifactError("pickle from another owner"), 403),
    "unavailable": (ServingUnavailableError("serve process gone"), 502),
    # server faults: our own errors keep their message, anything else hides it
    "stepfailed": (StepFailedError("boom", step="a"), 500),
    "serialization": (SerializationError("disk full while saving 'x'"), 500),
    "mlplat": (MLPlatError("generic"), 500),
    "validation": (_validation_error(), 500),  # e.g. an answer built from bad stored data
    "bug": (RuntimeError("secret detail"), 500),
}
HIDDEN = {"validation": "not a number", "bug": "secret detail"}


class _RaisingHandler(MLPlatHandler):
    @tornado.web.authenticated
    async def get(self, kind: str) -> None:
        raise ERRORS[kind][0]


@pytest.fixture
def raising_route(jp_serverapp, jp_base_url):
    jp_serverapp.web_app.add_handlers(
        ".*$", [(rf"{jp_base_url}mlplat/api/_test/raise/(\w+)", _RaisingHandler)]
    )


@pytest.mark.parametrize("kind", sorted(ERRORS))
async def test_error_status(jp_fetch, raising_route, kind):
    error, expected = ERRORS[kind]

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("mlplat", "api", "_test", "raise", kind)

    assert info.value.code == expected
    body = json.loads(info.value.response.body)
    if kind in HIDDEN:
        assert HIDDEN[kind] not in json.dumps(body)
        assert "detail" not in body
    else:
        assert body["error"] == ("ValidationError" if kind == "request"
                                 else type(error).__name__)
        assert body["message"] == str(error)
    if kind == "request":
        assert body["detail"][0]["loc"] == ["n"]
        assert "input" not in body["detail"][0]  # the refused value may be a secret
        assert "not a number" not in json.dumps(body)
