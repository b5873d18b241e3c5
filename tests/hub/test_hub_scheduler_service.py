"""The scheduler as the hub's service ``mlplat-scheduler`` (``examples/jupyterhub_config.py``):
alice's schedule, made from her server, fires while her server is stopped, and its run is hers.

The hub, the store service and the scheduler service are real processes; the firing runs a real
kernel started by the scheduler service. Its notebook looks up its process's ancestors and tries
to read their environment: the scheduler and the hub are non-dumpable, so neither the database
URL nor a hub token is within its reach.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

from jupyter_mlplat.errors import NotFoundError
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.schemas import ScheduleNotify

from .pipelines import run_cli

pytestmark = pytest.mark.hub

#: The firing's notebook: its store, and what it can read of its ancestors (each value of a
#: readable environment only as a digest: the test compares them with the secrets).
PROBE = '''import hashlib, os
import jupyter_mlplat as mlp
from jupyter_mlplat.store import open_store


def _digest(value):
    return hashlib.sha256(value).hexdigest()[:16]


chain, pid = [], os.getppid()
while pid > 1 and len(chain) < 4:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmd = [a.decode(errors="replace") for a in f.read().split(b"\\0") if a]
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = sorted(_digest(item.partition(b"=")[2])
                             for item in f.read().split(b"\\0") if item)
    except PermissionError:
        environ = "PermissionError"
    try:
        open(f"/proc/{pid}/mem", "rb").close()
        mem = "opened"
    except PermissionError:
        mem = "PermissionError"
    chain.append([pid, cmd[:6], environ, mem])
    with open(f"/proc/{pid}/status") as f:
        pid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
mlp.log_param("chain", chain)
store = open_store()
mlp.log_param("store", [type(store).__name__, store.owner])
mlp.log_metric("answer", 42.0)'''


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _notebook(path: Path, source: str, kernel: str = "python3") -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _wait_server(hub: Any, ready: bool, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        servers = hub.api("GET", "users/alice")["servers"]
        if (servers.get("", {}).get("ready") is True) if ready else not servers:
            return
        assert time.monotonic() < deadline, (servers, hub.log_tail())
        time.sleep(0.3)


def _finished(store: Any, firing_ids: dict[str, int], timeout: float) -> dict[str, Any]:
    """Each firing once it is neither pending nor running (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = {name: store.firing_row(fid) for name, fid in firing_ids.items()}
        if all(r.status not in ("pending", "running") for r in rows.values()):
            return rows
        assert time.monotonic() < deadline, {n: (r.status, r.error) for n, r in rows.items()}
        time.sleep(0.5)


def _scheduler_secrets(hub: Any, pid: int, db_url: str) -> set[str]:
    """What no kernel may see: the database URL, the admin token and, where this process may
    read it, the scheduler's own hub token and store URL."""
    secrets = {db_url, hub.admin_token}
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = dict(item.decode().partition("=")[::2]
                           for item in f.read().split(b"\0") if item)
    except PermissionError:  # not root: the scheduler is hidden from this process as well
        return secrets
    assert environ["JUPYTERHUB_API_TOKEN"] and environ["MLPLAT_STORE_URL"] == db_url
    return secrets | {environ["JUPYTERHUB_API_TOKEN"], environ["MLPLAT_STORE_URL"]}


def test_alices_schedule_fires_while_her_server_is_stopped_and_the_run_is_hers(
        hub, hub_store_url) -> None:
    alice_token = hub.user("alice")
    home, bob_home = hub.homes / "alice", hub.homes / "bob"
    work = home / "work"
    _notebook(work / "nightly.ipynb", PROBE)
    # holds alice's one firing slot until the test releases it, so her other firings wait
    _notebook(work / "blocker.ipynb", "import os, time\ndeadline = time.time() + 150\n"
              "while not os.path.exists('release') and time.time() < deadline:\n"
              "    time.sleep(0.2)")
    _notebook(work / "exotic.ipynb", "print('never runs')", kernel="exotic-kernel")
    _notebook(bob_home / "private.ipynb", "print('bob only')")
    (work / "release").unlink(missing_ok=True)
    escape = home / "escape.ipynb"  # alice's link to bob's notebook
    if not escape.is_symlink():
        escape.symlink_to(bob_home / "private.ipynb")
    alice_store, bob_store = hub.store("alice"), hub.store("bob")
    alice = ScheduleService(store=alice_store)
    made: dict[str, str] = {}
    firings: dict[str, int] = {}
    suffix = uuid.uuid4().hex[:6]

    hub.api("POST", "users/alice/server", expect=(201, 202, 400))  # 400: already running
    try:
        _wait_server(hub, ready=True)
        base = f"{hub.url}user/alice/mlplat/api/"
        headers = {"Authorization": f"token {alice_token}"}
        for name in ("blocker", "nightly", "exotic"):
            answer = requests.post(f"{base}schedules", headers=headers, timeout=60, json={
                "notebook": f"work/{name}.ipynb", "cron": "0 3 * * *",
                "name": f"{name}-{suffix}"})  # the session's hub has other tests' schedules
            assert answer.status_code == 201, answer.text
            made[name] = answer.json()["id"]
            # stored relative to her home; the scheduler service resolves it there
            assert alice_store.schedule_row(made[name]).notebook_path == f"work/{name}.ipynb"
        # her server refuses a link out of her home; a row written through the store service
        # directly names it anyway, and the scheduler refuses it when it fires
        refused = requests.post(f"{base}schedules", headers=headers, timeout=60, json={
            "notebook": "escape.ipynb", "cron": "0 3 * * *", "name": f"escape-{suffix}"})
        assert refused.status_code == 400 and "outside" in refused.text, refused.text
        made["escape"] = alice_store.add_schedule(
            name=f"escape-{suffix}", target="notebook", notebook_path="escape.ipynb", cron="0 3 * * *",
            timezone="UTC", parameters={}, on_success={},
            notify=ScheduleNotify().model_dump(mode="json"), missed="latest", kernel_name=None,
            timeout=None, paused=False).id

        # paused: no cron slot of its own, run-now still fires it
        paused = requests.post(f"{base}schedules/{made['nightly']}/pause", headers=headers,
                               timeout=60)
        assert paused.status_code == 200 and paused.json()["paused"], paused.text

        def run_now(name: str) -> int:
            answer = requests.post(f"{base}schedules/{made[name]}/run", headers=headers,
                                   timeout=60)
            assert answer.status_code in (200, 201, 202), answer.text
            return int(answer.json()["id"])

        firings["blocker"] = run_now("blocker")
        deadline = time.monotonic() + 60
        while alice_store.firing_row(firings["blocker"]).status != "running":
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.3)
        for name in ("nightly", "exotic"):
            firings[name] = run_now(name)
        firings["escape"] = alice_store.add_manual_firing(
            made["escape"], datetime.now(UTC), requested_by="alice", parameters={}).id
        # one firing of an owner at a time: alice's run-nows wait for the blocker
        assert alice_store.firing_row(firings["nightly"]).status == "pending"
    finally:
        hub.api("DELETE", "users/alice/server", expect=(202, 204))
    try:
        _wait_server(hub, ready=False)
        stopped = datetime.now(UTC)
        (work / "release").touch()
        done = _finished(alice_store, firings, timeout=120)

        firing = done["nightly"]
        assert firing.status == "succeeded", (firing.error, hub.log_tail())
        assert _utc(firing.started_at) > stopped - timedelta(seconds=1)  # with no server
        run = alice_store.run_row(firing.run_id)
        assert run.owner == "alice" and run.status == "succeeded"
        assert Path(run.notebook_path) == (work / "nightly.ipynb").resolve()
        params = {p.name: p.value for p in alice_store.params([run.id])}
        assert params["store"] == ["RemoteStore", "alice"]
        # bob sees neither the run nor the schedule
        with pytest.raises(NotFoundError):
            bob_store.run_row(run.id)
        assert made["nightly"] not in {s.id for s in bob_store.schedules()}

        # its kernel reached neither the scheduler's environment nor the hub's
        chain = params["chain"]
        scheduler_pid, scheduler_cmd, environ, mem = chain[0]
        assert "scheduler" in scheduler_cmd and "--all-owners" in scheduler_cmd, chain
        assert environ == "PermissionError" and mem == "PermissionError", chain[0]
        db_url = hub_store_url or f"sqlite:///{hub.state / 'mlplat.db'}"
        secrets = {_digest(s) for s in _scheduler_secrets(hub, scheduler_pid, db_url)}
        for pid, cmd, environ, _ in chain:
            if environ != "PermissionError":
                assert not secrets & set(environ), (pid, cmd)
            if pid == hub.proc.pid:
                assert environ == "PermissionError", (pid, cmd)
                break
        else:
            raise AssertionError(f"the hub ({hub.proc.pid}) is not an ancestor: {chain}")

        # the kernel a notebook names is checked when it fires; so is where its path leads
        assert done["exotic"].status == "failed" and done["exotic"].run_id is None
        assert "kernel 'exotic-kernel'" in done["exotic"].error
        assert "not one this scheduler runs" in done["exotic"].error
        assert done["escape"].status == "failed" and done["escape"].run_id is None
        assert "leads outside the home folder of 'alice'" in done["escape"].error
    finally:
        (work / "release").touch()
        for sid in made.values():
            alice.delete(sid)
    assert (bob_home / "private.ipynb").exists()


def test_the_cli_in_a_users_terminal_stores_notebooks_relative_to_her_home(hub, tmp_path):
    home = hub.homes / "alice"
    _notebook(home / "cli" / "job.ipynb", "print('from the CLI')")
    _notebook(tmp_path / "elsewhere.ipynb", "print('not in her home')")
    env = {"HOME": str(home)}
    made = json.loads(run_cli(hub, "alice", tmp_path, "schedule", "add",
                              home / "cli" / "job.ipynb", "--cron", "0 3 * * *", "--paused",
                              "--name", f"from-cli-{uuid.uuid4().hex[:6]}", "--json",
                              env=env).stdout)
    alice_store = hub.store("alice")
    try:
        assert alice_store.schedule_row(made["id"]).notebook_path == "cli/job.ipynb"
        # run-now from her terminal: the scheduler service fires it (paused or not), the CLI
        # waits for it and exits by its outcome
        fired = run_cli(hub, "alice", tmp_path, "schedule", "run-now", made["id"], env=env)
        assert "queued for the scheduler service" in fired.stderr, fired.stderr
        assert "succeeded" in fired.stdout, (fired.stdout, fired.stderr, hub.log_tail())
        firing = alice_store.firings(made["id"])[0]
        assert firing.status == "succeeded" and firing.run_id, hub.log_tail()
        refused = run_cli(hub, "alice", tmp_path, "schedule", "add",
                          tmp_path / "elsewhere.ipynb", "--cron", "0 3 * * *", env=env,
                          expect=2)
        assert "outside" in refused.stderr and "home folder" in refused.stderr
    finally:
        ScheduleService(store=alice_store).delete(made["id"])


def test_a_cron_schedule_made_through_the_store_service_fires_on_its_slot(hub) -> None:
    """Made the way a user's server or CLI makes it (through the store service, which sets the
    next slot on its own clock), with no server of alice's running: the scheduler service
    fires it at the next minute and the run is hers."""
    home = hub.homes / "alice"
    _notebook(home / "work" / "minutely.ipynb",
              "import jupyter_mlplat as mlp\nmlp.log_metric('tick', 1.0)")
    alice_store = hub.store("alice")
    row = alice_store.add_schedule(
        name=f"minutely-{uuid.uuid4().hex[:6]}", target="notebook",
        notebook_path="work/minutely.ipynb", cron="* * * * *", timezone="UTC", parameters={},
        on_success={}, notify=ScheduleNotify().model_dump(mode="json"), missed="latest",
        kernel_name=None, timeout=None, paused=False)
    try:
        assert row.next_fire_at is not None  # set by the service: clients may not
        deadline = time.monotonic() + 150  # the next minute, a kernel start, a queue
        while True:
            done = [f for f in alice_store.firings(row.id)
                    if f.kind in ("cron", "catch_up")
                    and f.status not in ("pending", "running")]
            if done:
                break
            assert time.monotonic() < deadline, (alice_store.firings(row.id), hub.log_tail())
            time.sleep(1)
        firing = done[-1]
        assert firing.status == "succeeded", (firing.error, hub.log_tail())
        run = alice_store.run_row(firing.run_id)
        assert run.owner == "alice" and run.status == "succeeded"
        assert not hub.api("GET", "users/alice")["servers"]  # nobody's server ran it
    finally:
        ScheduleService(store=alice_store).delete(row.id)
