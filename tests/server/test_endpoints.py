"""Models and endpoints through the REST API, against the real ``jupyter mlplat serve`` child
process the extension starts on first use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.serving.deploy import DeployService
from jupyter_mlplat.serving.probe import ServingUnavailableError
from tests.cli.test_deploy_cli import _version

from .conftest import EventStream, wait_watched

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def churn() -> Any:
    """Model "churn": v1 blessed, v2 rejected by its policy (registered like a run would)."""
    service = DeployService(MLPlat())
    versions = (_version(service, 0.5), _version(service, 0.999))
    service.store.close()
    return versions


async def test_models_versions_verdicts_lineage_and_aliases(api, churn):
    v1, v2 = churn
    listing = await api.ok("GET", "models")
    assert [(m["name"], m["versions"], m["latest"], m["latest_verdict"])
            for m in listing["models"]] == [("churn", 2, v2, "rejected")]
    model = await api.ok("GET", "models", "churn")
    verdicts = {v["version"]: v["verdict_status"] for v in model["versions"]}
    assert verdicts == {v1: "blessed", v2: "rejected"}
    rejected = model["versions"][1]["verdict"]
    assert rejected["checks"] and any(c["status"] == "failed" for c in rejected["checks"])
    assert all(c["reason"] for c in rejected["checks"])
    assert model["policy"]["metric"] == "accuracy"

    moved = await api.ok("PUT", "models", "churn", "aliases", "production",
                         body={"version": v1, "reason": "first"})
    assert moved["aliases"] == {"production": v1}
    assert moved["alias_history"][-1]["reason"] == "first"
    by_alias = await api.ok("GET", "models", "churn", "versions", "production")
    assert by_alias["version"] == v1 and by_alias["aliases"] == ["production"]
    lineage = await api.ok("GET", "models", "churn", "versions", str(v1), "lineage")
    assert lineage["model"] == "churn" and lineage["version"] == v1 and lineage["run"]
    removed = await api.ok("DELETE", "models", "churn", "aliases", "production")
    assert removed["aliases"] == {}
    await api.error("GET", "models", "churn", "versions", "9", expect=404)
    error = await api.error("PUT", "models", "churn", "aliases", "production",
                            body={"version": 9}, expect=404)
    assert "no version 9" in error["message"]


async def test_deploy_try_traffic_rollback_undeploy(api, churn, jp_serverapp, jp_http_port,
                                                    jp_base_url, jp_auth_header):
    v1, v2 = churn
    services = jp_serverapp.web_app.settings["mlplat_services"]

    error = await api.error("POST", "endpoints", body={"model": "churn", "version": v2},
                            expect=409)
    assert "not blessed" in error["message"] and error["error"] == "NotBlessedError"
    error = await api.error("POST", "endpoints", body={"model": "churn", "version": v2,
                                                      "force": True}, expect=400)
    assert "reason" in error["message"]

    async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events",
                           jp_auth_header) as stream:
        await wait_watched(services.events)  # the watcher's first look (its baseline)
        deployed = await api.ok("POST", "endpoints", body={"model": "churn"}, expect=201)
        seen = await stream.events(lambda kind, data: kind == "endpoint"
                                   and data["name"] == "churn" and data["deployed"])
    assert seen[-1][1]["revision"] == deployed["endpoint"]["revision"]

    token = deployed["token"]
    endpoint = deployed["endpoint"]
    assert token and not deployed["forced"]
    assert [(r["model"], r["version"], r["weight"]) for r in endpoint["routes"]] == [
        ("churn", v1, 100)]
    child = services.endpoints.child
    assert child.running and endpoint["url"].startswith(child.url)
    assert endpoint["curl"].startswith("curl ") and "$MLPLAT_ENDPOINT_TOKEN" in endpoint["curl"]
    assert token not in json.dumps(endpoint)

    tried = await api.ok("POST", "endpoints", "churn", "try", body={})
    assert tried["ok"] and tried["status"] == 200, tried
    assert tried["model_version"] == f"churn@{v1}"
    assert len(tried["response"]["predictions"]) == len(tried["request"]["inputs"]) == 3
    if shutil.which("curl"):  # the copyable curl works as printed
        out = subprocess.run(["bash", "-c", endpoint["curl"]], capture_output=True, text=True,
                             timeout=30, env={**os.environ, "MLPLAT_ENDPOINT_TOKEN": token})
        assert json.loads(out.stdout) == tried["response"], out
    wrong = await api.ok("POST", "endpoints", "churn", "try",
                         body={"inputs": {"inputs": [[1.0, 2.0, 3.0]]}})
    assert wrong["status"] == 400 and not wrong["ok"]
    assert "expected" in json.dumps(wrong["response"])
    refused = await api.ok("POST", "endpoints", "churn", "try",
                           body={"token": "not-the-token"})
    assert refused["status"] == 403

    canary = await api.ok("POST", "endpoints", body={
        "model": "churn", "version": v2, "canary": 20, "force": True, "reason": "see"},
        expect=201)
    assert canary["forced"] and canary["token"] is None
    assert [(r["version"], r["weight"]) for r in canary["endpoint"]["routes"]] == [(v1, 80),
                                                                                   (v2, 20)]
    split = await api.ok("PUT", "endpoints", "churn", "traffic",
                         body={"traffic": {f"churn@{v1}": 50, f"churn@{v2}": 50}})
    assert [(r["version"], r["weight"]) for r in split["routes"]] == [(v1, 50), (v2, 50)]
    error = await api.error("PUT", "endpoints", "churn", "traffic",
                            body={"traffic": {f"churn@{v1}": 60}}, expect=400)
    assert "sum to 100" in error["message"]
    back = await api.ok("POST", "endpoints", "churn", "rollback")
    assert [(r["version"], r["weight"]) for r in back["routes"]] == [(v1, 80), (v2, 20)]
    described = await api.ok("GET", "endpoints", "churn")
    assert [r["action"] for r in described["revisions"]] == ["deploy", "traffic", "traffic",
                                                             "rollback"]
    listed = await api.ok("GET", "endpoints")
    assert [(e["name"], e["deployed"], bool(e["curl"])) for e in listed["endpoints"]] == [
        ("churn", True, True)]
    tried = await api.ok("POST", "endpoints", "churn", "try", body={})
    assert tried["ok"] and tried["revision"] == described["revision"]

    gone = await api.ok("DELETE", "endpoints", "churn")
    assert not gone["deployed"] and gone["routes"] == []
    error = await api.error("POST", "endpoints", "churn", "try", body={}, expect=409)
    assert "not deployed" in error["message"]
    await api.error("DELETE", "endpoints", "churn", expect=409)
    rotated = await api.ok("POST", "endpoints", "churn", "token")
    assert rotated["token"] and rotated["token"] != token

    # the serve process goes away with the server, and nothing starts it again
    proc = child._proc
    await jp_serverapp._cleanup()  # what stopping the server does (stop_extension included)
    assert proc is not None and proc.poll() is not None
    assert not child.running
    with pytest.raises(ServingUnavailableError, match="shutting down"):
        services.endpoints.serving_url()


async def test_reading_endpoints_and_refused_requests_start_no_serve_process(api, churn,
                                                                              jp_serverapp):
    v1, v2 = churn
    assert (await api.ok("GET", "endpoints"))["endpoints"] == []
    await api.error("GET", "endpoints", "nope", expect=404)
    await api.error("POST", "endpoints", "nope", "try", body={}, expect=404)
    await api.error("POST", "endpoints", "nope", "rollback", expect=404)
    await api.error("POST", "endpoints", body={"model": "churn", "version": v2}, expect=409)

    child = jp_serverapp.web_app.settings["mlplat_services"].endpoints.child
    assert child._proc is None and not child.running
