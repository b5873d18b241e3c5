"""Multi-user isolation through a real JupyterHub (``-m hub``): the store service, alice and bob.

The hub runs ``examples/jupyterhub_config.py``; tokens are real hub tokens, the store service is
the hub's managed service, and user processes get only what a user server gets (the service URL
and their token, never the database).
"""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

from jupyter_mlplat.errors import NotFoundError
from jupyter_mlplat.store.remote import ServiceAuthError

from .pipelines import run_cli, write_pipeline
from .walk import check_walk, make_alice

pytestmark = pytest.mark.hub

def _get(hub, path, token=None, **kwargs):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(f"{hub.service_url}/{path}", headers=headers, timeout=30, **kwargs)


def test_the_service_holds_the_shared_store_and_never_shows_its_password(hub):
    announced = [line for line in hub.log_tail(10**7).splitlines()
                 if "store service on" in line and "(store " in line]
    assert announced and f"(store {hub.store_backend}" in announced[0], announced
    if hub.store_backend == "postgresql":  # the team setup: credentials in the service only
        assert ":***@" in announced[0]
    # the hub's cookie secret, databases and artifacts: for the hub's OS user only
    assert hub.state.stat().st_mode & 0o777 == 0o700


def test_the_service_needs_a_users_hub_token_with_access_to_it(hub):
    assert _get(hub, "api/health").json() == {"status": "ok"}
    missing = _get(hub, "api/whoami")
    assert missing.status_code == 401 and "no hub token" in missing.json()["error"]
    assert _get(hub, "api/whoami", "not-a-token").status_code == 401
    no_scope = hub.token("alice", ["read:users!user=alice"])
    refused = _get(hub, "api/whoami", no_scope)
    assert refused.status_code == 403
    assert "access:services!service=mlplat" in refused.json()["error"]
    # a service's token (here the admin service, which may access services) has no owner
    assert _get(hub, "api/whoami", hub.admin_token).status_code == 403
    assert _get(hub, "api/whoami", hub.user("alice")).json()["owner"] == "alice"
    with pytest.raises(ServiceAuthError, match="401"):
        from jupyter_mlplat.store.remote import RemoteStore

        RemoteStore(hub.store_url, token="not-a-token")


def test_bob_walks_every_store_method_through_the_hub_and_reaches_nothing(hub, tmp_path):
    alice_store = hub.store("alice")
    alice = make_alice(alice_store, hub.artifacts("alice", tmp_path))
    check_walk(hub.store("bob"), alice_store, alice, hub.artifacts("bob", tmp_path))


def test_answers_for_alices_ids_and_for_made_up_ones_are_identical(hub, tmp_path):
    alice_store = hub.store("alice")
    alice = make_alice(alice_store, hub.artifacts("alice", tmp_path))
    bob = hub.user("bob")

    def answer(method: str, args: list) -> tuple[int, str]:
        r = requests.post(f"{hub.service_url}/api/store/{method}", timeout=30,
                          headers={"Authorization": f"token {bob}"},
                          json={"args": args, "kwargs": {}, "process": _PROCESS})
        return r.status_code, r.text

    for method, theirs, made_up in [
        ("run_row", [alice.run_id], ["0123456789ab"]),
        ("step_runs", [alice.run_id], ["0123456789ab"]),
        ("model_version_by_id", [alice.model_version_id], [987654]),
        ("schedule_row", [alice.schedule_id], ["ba9876543210"]),
        ("firing_row", [alice.firing_id], [987654]),
        ("artifact_ref", [alice.artifact_id], [987654]),
    ]:
        got, missing = answer(method, theirs), answer(method, made_up)
        assert got[0] == 404, got
        assert got == (missing[0], missing[1].replace(str(made_up[0]), str(theirs[0]))), (
            method, got, missing)


_PROCESS = {"host": "laptop", "pid": 1, "started": 0.0}


def _service_pid(hub) -> int:
    import psutil

    for child in psutil.Process(hub.proc.pid).children(recursive=True):
        cmd = " ".join(child.cmdline())
        if "jupyter-mlplat" in cmd and " service" in cmd:
            return child.pid
    raise AssertionError("the store service process was not found")


def _post_stream(url: str, total: int, headers: dict[str, str]) -> int | None:
    """POST ``total`` bytes in chunks; the status, or None when the server hung up first."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    chunk = b"0" * (1 << 20)
    try:
        conn.request("POST", parts.path, body=(chunk for _ in range(total >> 20)),
                     headers=headers, encode_chunked=True)
        return conn.getresponse().status
    except OSError:  # the server closed the connection while we were still sending
        return None
    finally:
        conn.close()


def test_bodies_are_never_read_before_the_token_is_checked(hub, tmp_path):
    import http.client

    import psutil

    service = psutil.Process(_service_pid(hub))
    before = service.memory_info().rss
    for path in ("api/store/runs", "api/artifacts/object?ext=.bin", "api/whoami"):
        status = _post_stream(f"{hub.service_url}/{path}", 200 << 20, {})
        assert status in (401, 405, None), (path, status)
    grown = service.memory_info().rss - before
    assert grown < 48 << 20, f"the service grew by {grown >> 20} MiB reading unauthenticated bodies"
    # with a token, a store call may not exceed its limit (refused from its headers), while an
    # upload may (it streams to disk)
    alice = hub.user("alice")
    parts = hub.service_url.split("/", 3)[2].split(":")
    conn = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=30)
    conn.putrequest("POST", "/services/mlplat/api/store/runs")
    conn.putheader("Authorization", f"token {alice}")
    conn.putheader("Content-Length", str(65 << 20))
    conn.endheaders()
    refused = conn.getresponse()
    assert refused.status == 413 and b"limited to" in refused.read()
    conn.close()
    files = hub.artifacts("alice", tmp_path)
    big = files.put_bytes(b"x" * (65 << 20), ".bin")
    assert big.size == 65 << 20 and files.exists(big.uri)


def test_client_mistakes_are_400s_and_unknown_methods_501(hub):
    alice = hub.user("alice")
    headers = {"Authorization": f"token {alice}"}
    bad = requests.post(f"{hub.service_url}/api/artifacts/object", params={"ext": "../x"},
                        data=b"x", headers=headers, timeout=30)
    assert bad.status_code == 400 and "invalid artifact extension" in bad.json()["error"]
    for body, message in [
        ({"args": [], "kwargs": {"name": "n"}, "process": _PROCESS}, "missing required"),
        ({"args": [], "kwargs": {"$row": "Schedule", "columns": {}}}, "store rows are never"),
    ]:
        r = requests.post(f"{hub.service_url}/api/store/add_schedule", json=body,
                          headers=headers, timeout=30)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    unknown = requests.post(f"{hub.service_url}/api/store/drop_everything", json={},
                            headers=headers, timeout=30)
    assert unknown.status_code == 501 and unknown.json()["kind"] == "UnknownMethodError"
    methods = _get(hub, "api/whoami", alice).json()["methods"]
    assert "run_row" in methods and "due_schedules" not in methods


def test_a_service_the_hub_does_not_start_still_needs_its_scope(hub, tmp_path):
    import subprocess
    import sys

    from .conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "JUPYTERHUB_"))}
    env.update({"JUPYTERHUB_API_URL": f"{hub.url}hub/api",
                "JUPYTERHUB_API_TOKEN": hub.admin_token, "JUPYTER_DATA_DIR": str(tmp_path),
                "MLPLAT_STORE_URL": f"sqlite:///{tmp_path / 'own.db'}",
                "MLPLAT_ARTIFACTS_URL": str(tmp_path / "artifacts")})
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlplat.cli.main", "service",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "api/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        narrow = hub.token("alice", ["read:users!user=alice"])
        refused = requests.get(base + "api/whoami", timeout=30,
                               headers={"Authorization": f"token {narrow}"})
        assert refused.status_code == 403, refused.text
        assert "access:services!service=mlplat" in refused.json()["error"]
        mine = requests.get(base + "api/whoami", timeout=30,
                            headers={"Authorization": f"token {hub.user('alice')}"})
        assert mine.status_code == 200 and mine.json()["owner"] == "alice"
    finally:
        proc.terminate()
        proc.wait(30)


def test_bob_cannot_read_or_record_alices_artifacts(hub, tmp_path):
    alice_files = hub.artifacts("alice", tmp_path)
    secret = alice_files.put_bytes(b"alice's weights", ".bin")
    assert alice_files.read_bytes(secret.uri) == b"alice's weights"
    bob = hub.user("bob")
    for path in ("api/artifacts/object", "api/artifacts/exists"):
        answer = _get(hub, path, bob, params={"uri": secret.uri})
        if path.endswith("exists"):
            assert answer.json() == {"exists": False}
        else:
            assert answer.status_code == 404, answer.text
    # the same bytes uploaded by bob land in bob's own folder, not alice's
    mine = hub.artifacts("bob", tmp_path).put_bytes(b"alice's weights", ".bin")
    assert mine.sha256 == secret.sha256 and mine.uri != secret.uri and "/users/bob/" in mine.uri
    with pytest.raises(NotFoundError):
        hub.artifacts("bob", tmp_path).local_path(secret.uri)
    # a corrupted upload is refused
    bad = requests.post(f"{hub.service_url}/api/artifacts/object", params={"ext": ".bin"},
                        data=b"x", headers={"Authorization": f"token {bob}",
                                            "X-MLPlat-SHA256": "0" * 64}, timeout=30)
    assert bad.status_code == 400 and "hashes to" in bad.json()["error"]


def test_alices_pipeline_runs_through_the_service_and_bob_sees_none_of_it(hub, tmp_path):
    notebook = tmp_path / "pipeline.ipynb"
    write_pipeline(notebook)
    # alice's process knows the service URL and her token, nothing about the database
    env = hub.user_env("alice", tmp_path)
    assert not any(str(hub.state) in value or "postgresql" in value or "sqlite" in value
                   for value in env.values())
    run = json.loads(run_cli(hub, "alice", tmp_path, "run", str(notebook), "--json").stdout)
    assert run["status"] == "succeeded", run
    steps = {s["name"]: s["status"] for s in run["steps"]}
    assert steps == {"load": "succeeded", "train": "succeeded", "use": "succeeded"}

    alice = hub.store("alice")
    row = alice.run_row(run["id"])
    assert row.owner == "alice" and row.status == "succeeded"
    for step in alice.step_runs(run["id"]):
        assert step.owner == "alice"
        assert "/users/alice/" in step.executed_notebook
        for ref in alice.step_io(step.id).values():
            assert "/users/alice/" in ref["uri"]
    (name, version), = [(n, mv) for n, mv in alice.run_model_versions(run["id"])]
    assert name == "tiny" and version.owner == "alice" and version.created_by == "alice"
    # a second run: every step from the cache, described through the service
    again = json.loads(run_cli(hub, "alice", tmp_path, "run", str(notebook), "--json").stdout)
    assert {s["status"] for s in again["steps"]} == {"cached"}

    # bob, with the same CLI and his own token, sees nothing and can touch nothing
    bobs = json.loads(run_cli(hub, "bob", tmp_path, "runs", "--json").stdout)["runs"]
    assert run["id"] not in {r["id"] for r in bobs} and {r["owner"] for r in bobs} <= {"bob"}
    shown = run_cli(hub, "bob", tmp_path, "show", run["id"], expect=2)
    assert f"no run {run['id']!r}" in shown.stderr
    run_cli(hub, "bob", tmp_path, "cancel", run["id"], expect=2)
    run_cli(hub, "bob", tmp_path, "resume", run["id"], expect=2)
    run_cli(hub, "bob", tmp_path, "logs", run["id"], expect=2)
    assert "tiny" not in run_cli(hub, "bob", tmp_path, "models").stdout
    assert alice.run_row(run["id"]).status == "succeeded"


def test_a_user_server_reaches_the_store_through_the_service(hub, tmp_path):
    token = hub.user("alice")
    headers = {"Authorization": f"token {token}"}
    home = hub.homes / "alice"
    home.mkdir(parents=True, exist_ok=True)
    write_pipeline(home / "served.ipynb")
    hub.api("POST", "users/alice/server", expect=(201, 202, 400))  # 400: already running
    base = f"{hub.url}user/alice/"
    deadline = time.monotonic() + 90
    while True:
        ready = hub.api("GET", "users/alice")["servers"].get("", {}).get("ready")
        if ready:
            break
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.3)
    try:
        started = requests.post(f"{base}mlplat/api/runs", headers=headers, timeout=60,
                                json={"notebook": "served.ipynb"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        deadline = time.monotonic() + 180
        while True:
            run = requests.get(f"{base}mlplat/api/runs/{run_id}", headers=headers,
                               timeout=60).json()
            if run["status"] not in ("pending", "running"):
                break
            assert time.monotonic() < deadline, run
            time.sleep(0.5)
        assert run["status"] == "succeeded", run
        # written through the service with the server's own hub token: alice's, in her folder
        row = hub.store("alice").run_row(run_id)
        assert row.owner == "alice"
        assert "/users/alice/" in hub.store("alice").step_runs(run_id)[0].executed_notebook
        # bob's token opens nothing of alice's server
        bob = requests.get(f"{base}mlplat/api/runs/{run_id}", timeout=30,
                           headers={"Authorization": f"token {hub.user('bob')}"},
                           allow_redirects=False)
        assert bob.status_code in (302, 403, 404)
        with pytest.raises(NotFoundError):
            hub.store("bob").run_row(run_id)
    finally:
        hub.api("DELETE", "users/alice/server", expect=(202, 204))
