"""Every route, from the one route table: registered, documented in the OpenAPI document,
reachable, refused without credentials (401/403) and refused when not authorised (403)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import tornado.web
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.decorator import authorized

from jupyter_mlplat.server.extension import ROUTES
from jupyter_mlplat.server.handlers.base import MLPlatHandler
from jupyter_mlplat.server.openapi import API_PREFIX, VERBS, Route, api

#: A value for every path parameter of the route table.
SAMPLE = {"run_id": "0000", "step": "s", "name": "m", "version": "1", "alias": "a",
          "schedule_id": "0000", "project": "p", "user": "u", "kind": "model", "owner": "o"}
#: Required query arguments.
QUERIES = {"pipelines": {"notebook": "missing.ipynb"}, "compare": {"runs": "0000,0001"},
           "schedules/preview": {"cron": "@daily"}}


def _calls() -> list[tuple[str, str, tuple[str, ...]]]:
    """(verb, template, path parts) for every implemented verb of every route."""
    out = []
    for route in ROUTES:
        path = route.template.format(**{p: SAMPLE[p] for p in route.params})
        for verb in route.verbs():
            out.append((verb.upper(), route.template, tuple(path.split("/"))))
    return out


CALLS = _calls()


def _registered(app: Any) -> set[str]:
    """Patterns of the tornado rules under mlplat/api/ (nested routers included)."""
    found: set[str] = set()

    def walk(router: Any) -> None:
        for rule in getattr(router, "rules", []):
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and f"/{API_PREFIX}/" in regex.pattern:
                found.add(regex.pattern)
            walk(rule.target)

    walk(app.default_router)
    walk(app.wildcard_router)
    return found


def _noop(self: Any) -> None:
    return None


#: The code of each decorator's wrapper: a verb wrapped by one has it in its ``__wrapped__`` chain.
AUTHENTICATED = tornado.web.authenticated(_noop).__code__
AUTHORIZED = authorized(_noop).__code__


def missing_auth(handler: type, verb: str) -> list[str]:
    """The auth decorators the verb lacks (``[]``: both there, authenticated outermost).

    A request test cannot tell: with unauthenticated access disallowed, jupyter-server's own
    ``prepare`` refuses anonymous requests before any verb runs, and ``@authorized`` refuses
    them too. So the wrapper chain is read instead.
    """
    chain, method = [], getattr(handler, verb)
    while method is not None:
        chain.append(getattr(method, "__code__", None))
        method = getattr(method, "__wrapped__", None)
    missing = [name for name, code in (("@tornado.web.authenticated", AUTHENTICATED),
                                       ("@authorized", AUTHORIZED)) if code not in chain]
    if not missing and chain.index(AUTHENTICATED) > chain.index(AUTHORIZED):
        missing.append("@tornado.web.authenticated outside @authorized")
    return missing


def test_route_table_is_well_formed():
    templates = [r.template for r in ROUTES]
    assert len(templates) == len(set(templates)), "a template twice in the route table"
    for route in ROUTES:
        verbs = route.verbs()
        assert verbs, f"{route.template}: no verb"
        for verb, doc in verbs.items():
            assert doc is not None, f"{route.handler.__name__}.{verb} has no @api(...)"
            assert verb in VERBS
            assert not missing_auth(route.handler, verb), (
                f"{route.handler.__name__}.{verb}: missing {missing_auth(route.handler, verb)}")


class _Unguarded(MLPlatHandler):
    @api("no authentication")
    @authorized
    async def get(self) -> None: ...

    @api("no authorisation")
    @tornado.web.authenticated
    async def post(self) -> None: ...

    @api("wrong order")
    @authorized
    @tornado.web.authenticated
    async def put(self) -> None: ...

    @api("both")
    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None: ...


def test_the_auth_check_catches_a_missing_decorator():
    assert missing_auth(_Unguarded, "get") == ["@tornado.web.authenticated"]
    assert missing_auth(_Unguarded, "post") == ["@authorized"]
    assert missing_auth(_Unguarded, "put") == ["@tornado.web.authenticated outside @authorized"]
    assert missing_auth(_Unguarded, "delete") == []


async def test_openapi_documents_every_route_and_only_those(api, jp_serverapp, jp_base_url):
    doc = await api.ok("GET", "openapi.json")

    assert doc["openapi"].startswith("3.1")
    documented = {(path, verb) for path, item in doc["paths"].items() for verb in item}
    in_table = {(route.path, verb) for route in ROUTES for verb in route.verbs()}
    assert documented == in_table
    # every route of the table is registered with tornado, and nothing else under mlplat/api
    expected = {f"{jp_base_url.rstrip('/')}{route.pattern}$" for route in ROUTES}
    registered = {p for p in _registered(jp_serverapp.web_app) if "_test" not in p}
    assert registered == expected
    # every $ref resolves; bodies and answers name the schemas.py models
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in doc["components"]["schemas"], ref
    runs = doc["paths"][f"/{API_PREFIX}/runs"]
    assert runs["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateRun"}
    assert "202" in runs["post"]["responses"]
    assert {p["name"] for p in runs["get"]["parameters"]} == {"pipeline", "status", "limit"}
    for path, item in doc["paths"].items():
        for verb, op in item.items():
            assert {"401", "403"} <= set(op["responses"]), (path, verb)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (path, verb)


@pytest.mark.parametrize(("verb", "template", "parts"), CALLS,
                         ids=[f"{v} {t}" for v, t, _ in CALLS])
async def test_documented_route_exists(api, verb, template, parts, jp_http_port, jp_base_url,
                                       jp_auth_header):
    """With credentials every documented verb reaches our handler: never tornado's own 404
    (no route) or 405 (no such verb). Sample ids do not exist, so 404s must be ours. The event
    stream never ends: its head is read, then it is hung up (its events: test_runs.py)."""
    if template == "events":
        from .conftest import EventStream

        async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events",
                               jp_auth_header) as stream:
            assert stream.status == 200, stream.head
            assert "text/event-stream" in stream.head
        return
    answer = await api(verb, *parts, body={} if verb in ("POST", "PUT") else None,
                       params=QUERIES.get(template))

    assert answer.code != 405, answer.body
    assert answer.code < 500 or answer.code == 502, (answer.code, answer.body)
    if answer.code == 404:
        body = answer.json
        assert body.get("error") == "NotFoundError", body


@pytest.mark.parametrize(("verb", "template", "parts"), CALLS,
                         ids=[f"{v} {t}" for v, t, _ in CALLS])
async def test_every_route_refuses_requests_without_credentials(api, verb, template, parts):
    answer = await api(verb, *parts, headers={"Authorization": ""}, body={} if verb in (
        "POST", "PUT") else None)

    assert answer.code in (401, 403), (verb, template, answer.code)


class DenyMlplat(Authorizer):
    """Authenticated users may use Jupyter, but nothing of the resource 'mlplat'."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "mlplat"


class TestNotAuthorized:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        return {**jp_server_config, "ServerApp": {**jp_server_config["ServerApp"],
                                                  "authorizer_class": DenyMlplat}}

    @pytest.mark.parametrize(("verb", "template", "parts"), CALLS,
                             ids=[f"{v} {t}" for v, t, _ in CALLS])
    async def test_every_route_is_authorised_with_resource_mlplat(self, api, verb, template,
                                                                  parts):
        answer = await api(verb, *parts, body={} if verb in ("POST", "PUT") else None)

        assert answer.code == 403, (verb, template, answer.code, answer.body[:300])

    async def test_other_jupyter_routes_still_work(self, jp_fetch):
        response = await jp_fetch("api", "status")
        assert response.code == 200


def test_route_patterns_take_one_path_segment_per_parameter():
    route = Route("runs/{run_id}/steps/{step}/log", object)
    pattern = re.compile(route.pattern + "$")
    match = pattern.match(f"/{API_PREFIX}/runs/abc/steps/train/log")
    assert match is not None and match.groupdict() == {"run_id": "abc", "step": "train"}
    assert pattern.match(f"/{API_PREFIX}/runs/a/b/steps/train/log") is None
    assert Route("openapi.json", object).pattern.endswith(r"openapi\.json")
