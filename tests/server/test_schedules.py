"""Schedules through the REST API, with the scheduler loop embedded in the server (its default):
every route's answers and refusals, and run-now firings of real notebooks (papermill kernels)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.cli.main import main as cli_main
from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.server.services import MLPlatServices
from jupyter_mlplat.store.sql import Store
from tests.pipeline.nbbuild import code, notebook, write

from .conftest import EventStream, wait_watched

pytestmark = pytest.mark.timeout(240)

PARAMS = code("n = 1\nword = 'a'\nsizes = [1]", tags=["parameters"], id="params")
#: Prints its parameters with their types, so the log shows what papermill injected.
SHOW = code("print('n is', n, type(n).__name__, '| word is', word, type(word).__name__, "
            "'| sizes', sizes, type(sizes).__name__)", id="show")
FAIL = code("raise ValueError('boom on purpose')", id="fail")


@pytest.fixture(autouse=True)
def embedded_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's default (not under JupyterHub): the loop runs in it; it polls often here."""
    for name in ("MLPLAT_RUN_SCHEDULER", "JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLPLAT_SCHEDULER_POLL_INTERVAL", "0.2")


def _services(jp_serverapp: Any) -> MLPlatServices:
    return jp_serverapp.web_app.settings["mlplat_services"]


async def _history(api: Any, schedule_id: str, firing_id: int, timeout: float = 90
                   ) -> dict[str, Any]:
    """The firing once it has finished (polling the history route)."""
    deadline = time.monotonic() + timeout
    while True:
        firings = (await api.ok("GET", "schedules", schedule_id, "history"))["firings"]
        mine = [f for f in firings if f["id"] == firing_id]
        assert mine, firings
        if mine[0]["status"] not in ("pending", "running"):
            return mine[0]
        assert time.monotonic() < deadline, f"firing still {mine[0]['status']}: {mine[0]}"
        await asyncio.sleep(0.2)


async def test_create_list_show_change_pause_resume_delete(api, make_notebook, jp_serverapp):
    nb = make_notebook("job", PARAMS, SHOW, folder="jobs")

    made = await api.ok("POST", "schedules", expect=201, body={
        "notebook": nb, "cron": "0 12 * * *", "timezone": "Europe/Berlin",
        "parameters": {"n": 3, "word": "hi", "sizes": [1, 2]},
        "notify": {"webhook": ["https://hooks.example.com/hook"], "on": ["failure"]}})
    sid = made["id"]
    assert made["name"] == "job" and made["notebook"] == "jobs/job.ipynb"
    assert made["target"] == "notebook" and made["timezone"] == "Europe/Berlin"
    assert made["parameters"] == {"n": 3, "word": "hi", "sizes": [1, 2]}
    assert made["paused"] is False and made["deleted"] is False and made["history"] == []
    assert "T12:00:00+0" in made["next_fire_at"]  # shown in the schedule's zone, with its offset
    assert len(made["next_fire_times"]) == 5
    assert all("T12:00:00+0" in t for t in made["next_fire_times"])

    listed = (await api.ok("GET", "schedules"))["schedules"]
    assert [(s["id"], s["name"]) for s in listed] == [(sid, "job")]
    assert listed[0]["last_firing"] is None and listed[0]["next_fire_at"] == made["next_fire_at"]
    assert (await api.ok("GET", "schedules", sid))["id"] == sid
    assert (await api.ok("GET", "schedules", "job"))["id"] == sid  # by name
    assert (await api.ok("GET", "schedules", sid[:8]))["id"] == sid  # by a unique prefix

    changed = await api.ok("PATCH", "schedules", sid, body={"cron": "30 6 * * 1",
                                                            "parameters": {"n": 4}})
    assert changed["cron"] == "30 6 * * 1" and changed["parameters"] == {"n": 4}
    assert "T06:30:00+0" in changed["next_fire_at"]
    assert changed["timezone"] == "Europe/Berlin" and changed["notify"]["webhook"]  # kept

    paused = await api.ok("POST", "schedules", sid, "pause")
    assert paused["paused"] is True and paused["next_fire_at"] is None
    assert paused["next_fire_times"] == []
    assert (await api.ok("POST", "schedules", sid, "pause"))["paused"] is True  # idempotent
    resumed = await api.ok("POST", "schedules", sid, "resume")
    assert resumed["paused"] is False and "T06:30:00+0" in resumed["next_fire_at"]

    assert await api.ok("GET", "schedules", sid, "history") == {"firings": []}

    # a second schedule may not take the first one's name
    other = await api.ok("POST", "schedules", expect=201,
                         body={"notebook": nb, "cron": "@daily", "name": "other"})
    error = await api.error("PATCH", "schedules", other["id"], body={"name": "job"},
                            expect=409)
    assert "job" in error["message"] and error["error"] == "ConflictError"
    error = await api.error("POST", "schedules", body={"notebook": nb, "cron": "@hourly"},
                            expect=409)
    assert "named 'job'" in error["message"]

    gone = await api.ok("DELETE", "schedules", sid)
    assert gone["id"] == sid and gone["deleted"] is True
    await api.error("GET", "schedules", sid, expect=404)
    assert [s["id"] for s in (await api.ok("GET", "schedules"))["schedules"]] == [other["id"]]

    # the loop runs in this server (the default outside JupyterHub)
    services = _services(jp_serverapp)
    await asyncio.wrap_future(services._scheduler_start)
    assert services.scheduler is not None
    assert all(t.is_alive() for t in services.scheduler.loop._threads)


async def test_preview_next_fire_times(api):
    preview = await api.ok("GET", "schedules", "preview", params={
        "cron": "0 12 * * *", "timezone": "America/New_York", "count": "3"})
    assert preview["cron"] == "0 12 * * *" and preview["timezone"] == "America/New_York"
    times = preview["next_fire_times"]
    assert len(times) == 3 and all("T12:00:00-0" in t for t in times)
    assert times == sorted(times)
    default = await api.ok("GET", "schedules", "preview", params={"cron": "@hourly"})
    assert default["timezone"] == "UTC" and len(default["next_fire_times"]) == 5

    error = await api.error("GET", "schedules", "preview", params={"cron": "61 * * * *"},
                            expect=400)
    assert "61 * * * *" in error["message"]
    error = await api.error("GET", "schedules", "preview",
                            params={"cron": "@daily", "timezone": "Mars/Olympus"}, expect=400)
    assert "Mars/Olympus" in error["message"]
    for params in ({}, {"cron": "@daily", "count": "0"}, {"cron": "@daily", "count": "x"},
                   {"cron": "@daily", "when": "now"}):
        error = await api.error("GET", "schedules", "preview", params=params, expect=400)
        assert error["error"] == "ValidationError", (params, error)


async def test_bad_schedules_are_400s_that_say_why(api, make_notebook, jp_root_dir,
                                                   tmp_path_factory):
    nb = make_notebook("job", PARAMS, SHOW)
    outside = write(tmp_path_factory.mktemp("elsewhere"), "secret", notebook(PARAMS))
    (jp_root_dir / "link.ipynb").symlink_to(outside)
    (jp_root_dir / "sub").mkdir()
    good = {"notebook": nb, "cron": "@daily"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cron": "not a cron"}, "not a cron"),
        ({"cron": "0 25 * * *"}, "0 25 * * *"),
        ({"timezone": "Europe/Atlantis"}, "Europe/Atlantis"),
        ({"notebook": "missing.ipynb"}, "missing.ipynb; expected an existing"),
        ({"parameters": {"epochs": 3}}, "epochs"),
        ({"parameters": {"n": "three"}}, "'n' expects int"),
        ({"notebook": "../" + Path(outside).name}, ".."),
        ({"notebook": "sub/../job.ipynb"}, ".."),
        ({"notebook": str(outside)}, "absolute"),
        ({"notebook": "link.ipynb"}, "outside"),
        ({"notify": {"webhook": ["ftp://example.com/x"]}}, "ftp://example.com/x"),
        ({"kernel": "no-such-kernel"}, "no-such-kernel"),
    ]
    for change, says in cases:
        error = await api.error("POST", "schedules", body={**good, **change}, expect=400)
        assert says in error["message"], (change, error)
    for body in ({"cron": "@daily"}, {**good, "colour": "red"}, {**good, "missed": "often"},
                 {**good, "timeout": -1}):
        error = await api.error("POST", "schedules", body=body, expect=400)
        assert error["error"] == "ValidationError" and error["detail"], (body, error)
    assert (await api.ok("GET", "schedules"))["schedules"] == []  # nothing was made

    sid = (await api.ok("POST", "schedules", body=good, expect=201))["id"]
    for change, says in [({"cron": "* * *"}, "* * *"), ({"timezone": "Nowhere"}, "Nowhere"),
                         ({"parameters": {"nope": 1}}, "nope"),
                         ({"notebook": "../x.ipynb"}, ".."), ({"notebook": "link.ipynb"},
                                                             "outside")]:
        error = await api.error("PATCH", "schedules", sid, body=change, expect=400)
        assert says in error["message"], (change, error)
    error = await api.error("PATCH", "schedules", sid, body={"paused": True}, expect=400)
    assert error["error"] == "ValidationError"  # pause has its own route
    error = await api.error("GET", "schedules", sid, "history", params={"limit": "0"},
                            expect=400)
    assert error["error"] == "ValidationError"
    assert (await api.ok("GET", "schedules", sid))["cron"] == "@daily"  # unchanged


async def test_unknown_and_other_owners_schedules_are_404(api, make_notebook, jp_root_dir):
    nb = make_notebook("theirs", PARAMS)
    config = MLPlat()
    other = Store(config.store_url, "someone-else")
    try:
        theirs = ScheduleService(config, store=other, root=jp_root_dir).create(
            {"notebook": nb, "cron": "@daily"})
    finally:
        other.close()
    assert (await api.ok("GET", "schedules"))["schedules"] == []
    for ref in ("0000", theirs.id, "theirs"):
        for verb, *tail in (("GET",), ("PATCH",), ("DELETE",), ("POST", "pause"),
                            ("POST", "resume"), ("POST", "run"), ("GET", "history")):
            body = {"cron": "@hourly"} if verb == "PATCH" else None
            error = await api.error(verb, "schedules", ref, *tail, body=body, expect=404)
            assert error["error"] == "NotFoundError", (ref, verb, tail, error)


async def test_run_now_fires_in_the_server_and_is_pushed_as_events(
        api, make_notebook, jp_serverapp, jp_http_port, jp_base_url, jp_auth_header, capsys):
    ok_nb = make_notebook("ok", PARAMS, SHOW)
    bad_nb = make_notebook("bad", PARAMS, FAIL)
    ok = await api.ok("POST", "schedules", expect=201, body={
        "notebook": ok_nb, "cron": "0 3 * * *", "paused": True,
        "parameters": {"n": 5, "word": "zz", "sizes": [2, 3]}})
    bad = await api.ok("POST", "schedules", expect=201,
                       body={"notebook": bad_nb, "cron": "0 3 * * *", "paused": True})
    hub = _services(jp_serverapp).events

    async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events",
                           jp_auth_header) as stream:
        await wait_watched(hub)  # the watcher's first look (its baseline)
        queued = await api.ok("POST", "schedules", ok["id"], "run", expect=202)
        assert queued["status"] == "pending" and queued["kind"] == "manual"
        assert queued["schedule_id"] == ok["id"] and queued["run_id"] is None
        assert queued["parameters"] == {"n": 5, "word": "zz", "sizes": [2, 3]}
        failing = await api.ok("POST", "schedules", bad["id"], "run", expect=202)

        seen = await stream.events(
            lambda kind, data: kind == "schedule" and data["id"] == ok["id"]
            and (data.get("last_firing") or {}).get("status") == "succeeded")

    statuses = [(d.get("last_firing") or {}).get("status") for k, d in seen
                if k == "schedule" and d["id"] == ok["id"]]
    assert "pending" in statuses or "running" in statuses, statuses
    fired = await _history(api, ok["id"], queued["id"])
    assert fired["status"] == "succeeded" and fired["run_status"] == "succeeded", fired
    assert fired["run_id"] and fired["executed_notebook"] and fired["duration"] > 0
    assert fired["scheduler"] and fired["requested_by"] == MLPlat().owner
    run = await api.ok("GET", "runs", fired["run_id"])
    assert run["status"] == "succeeded" and run["notebook"].endswith("ok.ipynb")
    log = await api("GET", "runs", fired["run_id"], "steps", "notebook", "log")
    # papermill-style injection kept each type
    assert "n is 5 int | word is zz str | sizes [2, 3] list" in log.text, log.text
    shown = await api.ok("GET", "schedules", ok["id"])
    assert shown["paused"] is True and shown["history"][0]["id"] == queued["id"]
    assert shown["last_firing"]["status"] == "succeeded"

    failed = await _history(api, bad["id"], failing["id"])
    assert failed["status"] == "failed" and failed["run_status"] == "failed", failed
    assert "boom on purpose" in failed["error"] and failed["executed_notebook"]
    # a scheduled notebook is one papermill job: resuming or re-running its run step by step is
    # refused with the way to repeat the firing instead
    error = await api.error("POST", "runs", failed["run_id"], "resume", expect=409)
    assert f"schedule run-now {bad['id']}" in error["message"], error
    error = await api.error("POST", "runs", failed["run_id"], "rerun",
                            body={"step": "notebook"}, expect=409)
    assert "schedule run-now" in error["message"], error
    capsys.readouterr()
    # (on this thread: the CLI sets a SIGINT handler; it refuses before touching a kernel)
    assert cli_main(["resume", failed["run_id"]]) == 2
    assert f"schedule run-now {bad['id']}" in capsys.readouterr().err
    assert (await api.ok("GET", "runs", failed["run_id"]))["status"] == "failed"  # untouched


async def test_closing_the_services_stops_the_loop(tmp_path):
    services = MLPlatServices(MLPlat(), tmp_path)
    services.start_scheduler()
    await asyncio.wrap_future(services._scheduler_start)
    handle = services.scheduler
    assert handle is not None and all(t.is_alive() for t in handle.loop._threads)

    await services.close()

    assert handle.loop._closed
    assert not any(t.is_alive() for t in handle.loop._threads)
    services.start_scheduler()  # never again once closed
    assert services.scheduler is handle
