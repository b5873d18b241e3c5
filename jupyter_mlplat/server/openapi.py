"""The route table's vocabulary and the OpenAPI document generated from it.

A route is a path template under ``mlplat/api/`` (``runs/{run_id}/cancel``) and a handler
class. Each verb of a handler carries an :class:`ApiDoc` (the :func:`api` decorator): its
summary, body, query and answer models from ``schemas.py``. The tornado patterns and the OpenAPI
document are both made from that one table, so they cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

#: URL prefix of every REST route, below the server's base_url.
API_PREFIX = "mlplat/api"
#: Verbs a handler may implement.
VERBS = ("get", "post", "put", "patch", "delete")

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ApiDoc:
    """What the OpenAPI document says about one verb of one route."""

    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = HTTPStatus.OK
    content_type: str = "application/json"
    #: Statuses besides the success one and the ones every route has (401, 403, 500).
    errors: tuple[int, ...] = ()
    description: str = ""


def api(summary: str, **kwargs: Any) -> Callable[[F], F]:
    """Attach an :class:`ApiDoc` to a handler verb (the outermost decorator)."""
    doc = ApiDoc(summary=summary, **kwargs)

    def mark(method: F) -> F:
        method.__mlplat_api__ = doc  # type: ignore[attr-defined]
        return method

    return mark


@dataclass(frozen=True)
class Route:
    """A path template under :data:`API_PREFIX` and the handler serving it."""

    template: str
    handler: type
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.template)

    @property
    def pattern(self) -> str:
        """The tornado pattern (``{name}`` becomes a named group of one path segment)."""
        out, last = [], 0
        for m in _PARAM.finditer(self.template):
            out.append(re.escape(self.template[last:m.start()]))
            out.append(f"(?P<{m.group(1)}>[^/]+)")
            last = m.end()
        out.append(re.escape(self.template[last:]))
        return f"/{API_PREFIX}/{''.join(out)}"

    @property
    def path(self) -> str:
        """The OpenAPI path."""
        return f"/{API_PREFIX}/{self.template}"

    def verbs(self) -> dict[str, ApiDoc | None]:
        """Implemented verbs and their docs (None: a verb without :func:`api`)."""
        out: dict[str, ApiDoc | None] = {}
        for verb in VERBS:
            method = getattr(self.handler, verb, None)
            if method is None or _is_default(self.handler, verb):
                continue
            out[verb] = getattr(method, "__mlplat_api__", None)
        return out


def _is_default(handler: type, verb: str) -> bool:
    """True when ``verb`` is tornado's own (405) implementation, not one of ours."""
    import tornado.web

    return getattr(handler, verb) is getattr(tornado.web.RequestHandler, verb)


def build_openapi(routes: Sequence[Route], *, version: str, base_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``.

    Parameters
    ----------
    routes : sequence of Route
        The extension's route table.
    version : str
        The API's version (the package's).
    base_url : str
        The Jupyter server's base URL (the document's server).

    Returns
    -------
    dict
        The document; every implemented verb of every route is in it, schemas in
        ``components.schemas``.

    Raises
    ------
    TypeError
        When a verb has no :class:`ApiDoc` (a route would be undocumented).
    """
    models: dict[tuple[type[BaseModel], str], None] = {}
    for route in routes:
        for verb, doc in route.verbs().items():
            if doc is None:
                raise TypeError(f"{route.handler.__name__}.{verb} has no @api(...) "
                                "documentation")
            for model, mode in ((doc.body, "validation"), (doc.query, "validation"),
                                (doc.response, "serialization")):
                if model is not None:
                    models[(model, mode)] = None
    refs, top = models_json_schema(list(models), ref_template="#/components/schemas/{model}")
    schemas = dict(top.get("$defs", {}))
    paths: dict[str, Any] = {}
    for route in routes:
        item: dict[str, Any] = {}
        path_params = [{"name": name, "in": "path", "required": True,
                        "schema": {"type": "string"}} for name in route.params]
        for verb, doc in route.verbs().items():
            assert doc is not None
            item[verb] = _operation(route, verb, doc, path_params, refs, schemas)
        paths[route.path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jupyter-mlplat",
            "version": version,
            "description": "REST API of the jupyter-mlplat server extension. Every route needs "
            "Jupyter server authentication and is authorised with the resource 'mlplat'.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "jupyterToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                                 "description": "token <jupyter server token>"},
            },
        },
        "security": [{"jupyterToken": []}],
    }


def _operation(route: Route, verb: str, doc: ApiDoc, path_params: list[dict[str, Any]],
               refs: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": _operation_id(route, verb),
        "summary": doc.summary,
        "tags": [route.template.split("/")[0].split(".")[0]],
    }
    if doc.description:
        op["description"] = doc.description
    params = list(path_params)
    if doc.query is not None:
        schema = schemas.get(doc.query.__name__) or doc.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if params:
        op["parameters"] = params
    if doc.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(doc.body, "validation")]}}}
    success: dict[str, Any] = {"description": HTTPStatus(doc.status).phrase}
    if doc.response is not None:
        success["content"] = {doc.content_type: {
            "schema": refs[(doc.response, "serialization")]}}
    elif doc.content_type == "text/plain":
        success["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif doc.content_type == "text/event-stream":
        success["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    else:
        success["content"] = {doc.content_type: {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(int(doc.status)): success}
    error = {"description": "", "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    statuses: Iterable[int] = sorted({*doc.errors, *(
        (HTTPStatus.BAD_REQUEST,) if doc.body or doc.query or route.params else ()),
        HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})
    for status in statuses:
        responses[str(int(status))] = {**error, "description": HTTPStatus(status).phrase}
    op["responses"] = responses
    return op


def _operation_id(route: Route, verb: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", _PARAM.sub(r"by_\1", route.template)) if w]
    return verb + "".join(w[:1].upper() + w[1:] for w in words)


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "reason": {"type": ["string", "null"]},
        "error": {"type": "string", "description": "The library error's class"},
        "detail": {"type": "array", "description": "Validation problems, field by field"},
    },
    "required": ["message"],
}
