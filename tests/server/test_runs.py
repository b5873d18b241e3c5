"""Real runs through the REST API: papermill kernels on the extension's own Dask cluster."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.pipeline.runs import RunService
from jupyter_mlplat.store.sql import Store
from jupyter_mlplat.tracking.registry import ModelRegistry
from tests.pipeline.nbbuild import code

from .conftest import TWO_STEPS, EventStream, step, wait_watched

pytestmark = pytest.mark.timeout(240)

#: Waits (up to a minute) for a file named "go" beside the notebook, then uses ``x``.
SLOW = step("slow", "import os, time\n"
                    "deadline = time.time() + 60\n"
                    "while not os.path.exists('go') and time.time() < deadline:\n"
                    "    time.sleep(0.05)\n"
                    "assert os.path.exists('go'), 'no go'\n"
                    "y = x + 1")


async def test_run_to_success_then_inspect_and_rerun(api, make_notebook):
    nb = make_notebook("pipe", *TWO_STEPS)
    before = await api.ok("GET", "pipelines", params={"notebook": nb})
    assert [s["cached"] for s in before["steps"]] == [False, False]

    started = await api.ok("POST", "runs", body={"notebook": nb}, expect=202)
    assert started["status"] in ("pending", "running")
    assert started["notebook"].endswith("pipe.ipynb") and started["pipeline"] == "pipe"
    run_id = started["id"]
    # the loop is free while the run goes on (a loose bound: on a loaded machine, starting
    # Dask workers and kernels competes with the server for the cores)
    t0 = time.monotonic()
    await api.ok("GET", "version")
    assert time.monotonic() - t0 < 10.0
    # ...and answered while the run still went on, not once it was over
    assert (await api.ok("GET", "runs", run_id))["status"] in ("pending", "running")
    run = await api.wait_run(run_id)

    assert run["status"] == "succeeded", run
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("make", "succeeded"),
                                                                ("total", "succeeded")]
    assert run["metrics"]["total"] == 6.0
    listed = await api.ok("GET", "runs", params={"status": "succeeded", "pipeline": "pipe"})
    assert [r["id"] for r in listed["runs"]] == [run_id]
    assert (await api.ok("GET", "runs", run_id[:6]))["id"] == run_id  # a unique prefix works

    log = await api("GET", "runs", run_id, "steps", "total", "log")
    assert log.code == 200 and log.headers["Content-Type"].startswith("text/plain")
    assert "total is 6" in log.text
    followed = await api("GET", "runs", run_id, "steps", "total", "log",
                         params={"follow": "true"})
    assert followed.text == log.text  # the step has finished: the stream ends at once
    executed = await api.ok("GET", "runs", run_id, "steps", "total", "notebook")
    assert executed["nbformat"] == 4
    printed = [o.get("text", "") for c in executed["cells"] for o in c.get("outputs", [])]
    assert any("total is 6" in "".join(t) for t in printed), printed
    metrics = await api.ok("GET", "runs", run_id, "metrics")
    assert metrics["run_id"] == run_id
    curve = [(p["step"], p["value"]) for p in metrics["metrics"] if p["name"] == "loss"]
    assert curve == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert {p["step_name"] for p in metrics["metrics"]} == {"total"}
    await api.error("GET", "runs", run_id, "steps", "nope", "log", expect=404)
    await api.error("GET", "runs", run_id, "steps", "nope", "notebook", expect=404)

    after = await api.ok("GET", "pipelines", params={"notebook": nb})
    assert [(s["cached"], s["cached_from_run"]) for s in after["steps"]] == [(True, run_id),
                                                                             (True, run_id)]
    assert [s["version"] for s in after["steps"]] == [s["version"] for s in run["steps"]]

    again = await api.ok("POST", "runs", run_id, "rerun", body={"step": "total"}, expect=202)
    assert again["id"] != run_id
    rerun = await api.wait_run(again["id"])
    assert rerun["status"] == "succeeded", rerun
    assert [(s["name"], s["status"]) for s in rerun["steps"]] == [("make", "skipped"),
                                                                  ("total", "succeeded")]
    compared = await api.ok("GET", "compare", params={"runs": f"{run_id},{again['id']}"})
    assert compared["runs"] == [run_id, again["id"]]
    assert compared["metrics"]["total"] == {run_id: 6.0, again["id"]: 6.0}

    error = await api.error("POST", "runs", run_id, "resume", expect=409)
    assert "succeeded" in error["message"]
    await api.error("POST", "runs", run_id, "cancel", expect=409)
    error = await api.error("POST", "runs", run_id, "rerun", body={"step": "nope"}, expect=400)
    assert "make, total" in error["message"]


async def test_cancel_a_running_run_then_resume_it(api, make_notebook, jp_root_dir: Path,
                                                   jp_serverapp):
    nb = make_notebook("slow", step("prep", "x = 1"), SLOW)
    run_id = (await api.ok("POST", "runs", body={"notebook": nb}, expect=202))["id"]
    await api.wait_run(run_id, step=("slow", "running"))

    cancelled = await api.ok("POST", "runs", run_id, "cancel")

    assert cancelled["status"] == "cancelled", cancelled
    steps = {s["name"]: s["status"] for s in cancelled["steps"]}
    assert steps == {"prep": "succeeded", "slow": "cancelled"}
    (jp_root_dir / "go").touch()
    resumed = await api.ok("POST", "runs", run_id, "resume", expect=202)
    assert resumed["id"] == run_id and resumed["status"] == "running"
    done = await api.wait_run(run_id)
    assert done["status"] == "succeeded", done
    attempts = {s["name"]: (s["status"], s["attempt"]) for s in done["steps"]}
    assert attempts == {"prep": ("succeeded", 1), "slow": ("succeeded", 2)}

    # a run still going on when the server stops is cancelled, not left "running"
    (jp_root_dir / "go").unlink()
    again = await api.ok("POST", "runs", run_id, "rerun", body={"step": "slow"}, expect=202)
    await api.wait_run(again["id"], step=("slow", "running"))
    await jp_serverapp._cleanup()  # what stopping the server does (stop_extension included)
    final = RunService(MLPlat()).describe(again["id"])
    assert final.status == "cancelled", final
    assert jp_serverapp.web_app.settings["mlplat_services"].background.active == 0


async def test_events_push_run_progress(api, make_notebook, jp_http_port, jp_base_url,
                                        jp_auth_header, jp_serverapp):
    nb = make_notebook("one", step("only", "import time\nprint('begin')\ntime.sleep(0.5)\n"
                                           "print('end')\nz = 1"))
    hub = jp_serverapp.web_app.settings["mlplat_services"].events
    async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events",
                           jp_auth_header) as stream:
        assert stream.status == 200 and "text/event-stream" in stream.head
        # the stream is registered with the hub, and its watcher has taken its first look
        # (the baseline), before the run starts
        await wait_watched(hub)
        run_id = (await api.ok("POST", "runs", body={"notebook": nb}, expect=202))["id"]
        follow = asyncio.ensure_future(api("GET", "runs", run_id, "steps", "only", "log",
                                           params={"follow": "true"}))

        seen = await stream.events(lambda kind, data: kind == "run" and data["id"] == run_id
                                   and data["status"] == "succeeded")

    followed = await follow
    assert followed.code == 200
    assert followed.text.index("begin") < followed.text.index("end") < followed.text.index(
        "succeeded")
    mine = [data for kind, data in seen if kind == "run" and data["id"] == run_id]
    assert [s["status"] for s in mine[-1]["steps"]] == ["succeeded"]
    assert any(s["status"] == "running" for d in mine for s in d["steps"]), mine
    for _ in range(100):  # hanging up unsubscribes
        if not hub.subscribers:
            break
        await asyncio.sleep(0.05)
    assert hub.subscribers == 0


async def test_events_see_runs_started_elsewhere(api, jp_http_port, jp_base_url, jp_auth_header,
                                                 jp_serverapp):
    """A run another process records (the CLI, another server) reaches the stream too."""
    from jupyter_mlplat.store.sql import Store

    await api.ok("GET", "runs")  # opens the services
    hub = jp_serverapp.web_app.settings["mlplat_services"].events
    config = MLPlat()
    store = Store(config.store_url, config.owner)
    try:
        async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events",
                               jp_auth_header) as stream:
            await wait_watched(hub)  # the watcher's first look (its baseline)
            pid = store.pipeline_id("cli", "/elsewhere/cli.ipynb")
            run_id = store.create_run(pipeline_id=pid, pipeline_version="v",
                                      notebook_path="/elsewhere/cli.ipynb", parameters={},
                                      options={}, steps=["a"])
            await stream.events(lambda kind, data: kind == "run" and data["id"] == run_id)
            store.finish_run(run_id, "failed", "stopped")
            seen = await stream.events(lambda kind, data: kind == "run"
                                       and data["id"] == run_id and data["status"] == "failed")
    finally:
        store.close()
    assert seen[-1][1]["error"] == "stopped"


# -- helpers that record runs the way another process would --------------------------------------


def _store(owner: str | None = None) -> Store:
    config = MLPlat()
    return Store(config.store_url, owner or config.owner)


def _record_run(store: Store, notebook: Path | str, *, options: dict[str, Any] | None = None,
                status: str = "failed") -> str:
    """A run of ``notebook`` as the executor records it (its pipeline version included), left
    in ``status`` without running anything."""
    from jupyter_mlplat.pipeline.notebook import parse_path
    from jupyter_mlplat.pipeline.versions import pipeline_version

    spec = parse_path(str(Path(notebook).resolve()))
    pid = store.pipeline_id(spec.name, spec.path)
    version = pipeline_version(spec)
    store.save_pipeline_version(pid, version, spec.to_dict())
    run_id = store.create_run(pipeline_id=pid, pipeline_version=version,
                              notebook_path=spec.path, parameters={}, options=options or {},
                              steps=spec.step_names)
    if status != "running":
        store.finish_run(run_id, status, "stopped")
    return run_id


async def test_resume_restores_odd_parameters_or_refuses_leaving_the_run_as_it_was(
        api, make_notebook, jp_root_dir: Path):
    nb = make_notebook("odd", code("lr = 0.1\nshape = (2, 3)", tags=["parameters"]),
                       step("only", "z = 1"))
    store = _store()
    try:
        broken = _record_run(store, jp_root_dir / nb,
                             options={"parameter_reprs": {"lr": "<object object at 0x7f>"}})
        odd = _record_run(store, jp_root_dir / nb,
                          options={"parameter_reprs": {"lr": "nan", "shape": "(2, -inf)"}})
    finally:
        store.close()

    error = await api.error("POST", "runs", broken, "resume", expect=409)
    assert "'lr'" in error["message"] and "cannot be restored" in error["message"]
    run = await api.ok("GET", "runs", broken)
    assert run["status"] == "failed"  # not claimed: no phantom "running" run
    assert [(s["status"], s["attempt"]) for s in run["steps"]] == [("pending", 1)]

    resumed = await api.ok("POST", "runs", odd, "resume", expect=202)
    assert resumed["status"] == "running"
    done = await api.wait_run(odd)
    assert done["status"] == "succeeded", done


async def test_rerun_takes_the_source_runs_outputs_and_keeps_todays_policies(
        api, make_notebook, jp_root_dir: Path):
    nb = make_notebook("sums", code("n = 3", tags=["parameters"]),
                       step("make", "values = list(range(n))"),
                       step("total", "import jupyter_mlplat as mlp\n"
                                     "mlp.log_metric('total', sum(values))"))
    data = json.loads((jp_root_dir / nb).read_text())
    data["metadata"]["mlplat"] = {"policies": {"m": {"metric": "accuracy", "min_value": 0.5}}}
    (jp_root_dir / nb).write_text(json.dumps(data))
    first = (await api.ok("POST", "runs", body={"notebook": nb}, expect=202))["id"]
    assert (await api.wait_run(first))["metrics"]["total"] == 3.0
    later = (await api.ok("POST", "runs", body={"notebook": nb, "parameters": {"n": 5}},
                          expect=202))["id"]
    assert (await api.wait_run(later))["metrics"]["total"] == 10.0
    store = _store()
    registry = ModelRegistry(store, None)
    try:
        registry.set_policy("m", {"metric": "accuracy", "min_value": 0.9})  # raised since

        again = await api.ok("POST", "runs", first, "rerun", body={"step": "total"},
                             expect=202)
        rerun = await api.wait_run(again["id"])

        assert rerun["status"] == "succeeded", rerun
        assert rerun["metrics"]["total"] == 3.0  # the first run's values, not the later run's
        make = rerun["steps"][0]
        assert make["status"] == "skipped" and first in make["message"]
        assert registry.policy("m").min_value == 0.9  # the old notebook's policy stays old
    finally:
        store.close()


async def test_following_a_step_of_a_run_that_stopped_ends(api, make_notebook,
                                                           jp_root_dir: Path):
    """A run that stopped outside its steps (a crash) may leave a step "running": following
    its log must not stream forever."""
    nb = make_notebook("two", *TWO_STEPS)
    store = _store()
    try:
        run_id = _record_run(store, jp_root_dir / nb, status="running")
        make = store.step_run(run_id, "make")
        store.update_step_run(make.id, status="running")
        store.finish_run(run_id, "failed", "stopped")
    finally:
        store.close()

    followed = await api("GET", "runs", run_id, "steps", "make", "log",
                         params={"follow": "true"}, timeout=10)

    assert followed.code == 200


def test_a_failed_run_takes_its_unfinished_steps_with_it(make_notebook, jp_root_dir: Path):
    from sqlalchemy import update

    from jupyter_mlplat.pipeline.executor import fail_run
    from jupyter_mlplat.store import orm

    nb = make_notebook("two", *TWO_STEPS)
    store = _store()
    try:
        ours = _record_run(store, jp_root_dir / nb, status="running")
        store.update_step_run(store.step_run(ours, "make").id, status="running")
        fail_run(store, ours, "RuntimeError: boom")
        run = store.run_row(ours)
        assert (run.status, run.error) == ("failed", "RuntimeError: boom")
        steps = {r.step_name: (r.status, r.message) for r in store.step_runs(ours)}
        assert steps == {"make": ("failed", "the run stopped: RuntimeError: boom"),
                         "total": ("cancelled", "not started: the run stopped: "
                                                "RuntimeError: boom")}

        theirs = _record_run(store, jp_root_dir / nb, status="running")
        with store.session() as s:  # another process resumed it meanwhile
            s.execute(update(orm.Run).where(orm.Run.id == theirs).values(pid=1))
        fail_run(store, theirs, "RuntimeError: boom")
        assert store.run_row(theirs).status == "running"
        assert {r.status for r in store.step_runs(theirs)} == {"pending"}
    finally:
        store.close()


async def test_events_follow_old_runs_and_only_the_owners(api, make_notebook, jp_root_dir,
                                                          jp_http_port, jp_base_url,
                                                          jp_auth_header, jp_serverapp):
    """A run older than the newest 25 that runs again (resumed from the CLI) is pushed, and
    so is its end; another owner's runs never are."""
    nb = make_notebook("many", step("a", "x = 1"))
    await api.ok("GET", "runs")  # opens the services
    hub = jp_serverapp.web_app.settings["mlplat_services"].events
    store, other = _store(), _store("someone-else")
    try:
        old = _record_run(store, jp_root_dir / nb)
        for _ in range(26):
            _record_run(store, jp_root_dir / nb, status="succeeded")
        async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events",
                               jp_auth_header) as stream:
            await wait_watched(hub)  # the watcher's first look (its baseline)
            theirs = _record_run(other, jp_root_dir / nb, status="running")
            assert store.claim_run(old, ("failed",))  # resumed by another process
            seen = await stream.events(lambda kind, data: kind == "run" and data["id"] == old
                                       and data["status"] == "running", timeout=20)
            store.finish_run(old, "succeeded")
            seen += await stream.events(lambda kind, data: kind == "run" and data["id"] == old
                                       and data["status"] == "succeeded", timeout=20)
            mine = _record_run(store, jp_root_dir / nb, status="running")
            seen += await stream.events(lambda kind, data: kind == "run"
                                        and data["id"] == mine, timeout=20)
    finally:
        store.close()
        other.close()
    assert theirs not in {data.get("id") for _, data in seen}
