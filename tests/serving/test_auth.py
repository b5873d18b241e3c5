"""Who may predict and who may administer: public, token, wrong token, admin API."""

from __future__ import annotations

import logging

from .conftest import ADMIN, ROWS

TOKEN = "ep-token-123"


async def test_auth_matrix(world, harness, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    v = world.linear("lin", 2.0)
    world.deploy("open", [("lin", v, 100)], public=True)
    world.deploy("closed", [("lin", v, 100)], public=False, token=TOKEN)
    world.deploy("tokenless", [("lin", v, 100)], public=False)
    body = {"instances": ROWS.tolist()}
    async with harness() as h:
        await h.apply()
        assert (await h.fetch("/v1/models/open:predict", body)).code == 200
        assert (await h.fetch("/v1/models/open:predict", body, token="anything")).code == 200
        for path in ("/v1/models/closed:predict", "/endpoints/closed/invocations",
                     "/v2/models/closed/infer"):
            payload = body if "v2" not in path else {"inputs": [
                {"name": "x", "shape": [3, 2], "datatype": "FP64", "data": ROWS.tolist()}]}
            r = await h.fetch(path, payload)
            assert r.code == 401 and "bearer token" in r.json["error"], path
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            r = await h.fetch(path, payload, token="wrong")
            assert r.code == 403, path
            r = await h.fetch(path, payload, token=TOKEN)
            assert r.code == 200 and r.version == f"lin@{v}", path
        assert (await h.fetch("/v2/models/closed")).code == 401
        assert (await h.fetch("/v2/models/closed", token=TOKEN)).code == 200
        # a private endpoint without a token set: nothing opens it
        assert (await h.fetch("/v1/models/tokenless:predict", body, token="")).code == 401
        assert (await h.fetch("/v1/models/tokenless:predict", body, token="x")).code == 403
        # token rotation applies without a new revision
        world.store.set_endpoint_token("closed", None)
        assert (await h.apply())["closed"] == "updated"
        assert (await h.fetch("/v1/models/closed:predict", body, token=TOKEN)).code == 403
        # the admin API
        for path in ("/v2/repository/index", "/v2/repository/models/open/load",
                     "/v2/repository/models/open/unload"):
            assert (await h.fetch(path, {})).code == 401, path
            assert (await h.fetch(path, {}, token=TOKEN)).code == 403, path
        r = await h.fetch("/v2/repository/index", {}, token=ADMIN)
        assert r.code == 200
        assert {e["name"]: e["state"] for e in r.json} == {
            "open": "READY", "closed": "READY", "tokenless": "READY"}
        r = await h.fetch("/v2/repository/models/open/unload", {}, token=ADMIN)
        assert r.code == 200 and r.json["outcome"] == "unloaded"
        r = await h.fetch("/v1/models/open:predict", body)
        assert r.code == 503
        # server readiness is the first sync with the store, not every endpoint loaded
        assert (await h.fetch("/v2/health/ready")).code == 200
        assert (await h.fetch("/v2/models/open/ready")).code == 503
        r = await h.fetch("/v2/repository/models/open/load", {}, token=ADMIN)
        assert r.code == 200 and r.json["outcome"] == "switched"
        assert (await h.fetch("/v1/models/open:predict", body)).code == 200
        assert (await h.fetch("/v2/repository/models/nope/load", {}, token=ADMIN)).code == 404
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in logged and ADMIN not in logged
