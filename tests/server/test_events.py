"""EventHub, directly: what it looks at and what a failing look loses (nothing)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from jupyter_mlplat.schemas import DescribeRun, DescribeStepRun
from jupyter_mlplat.server.events import EventHub


def _run(run_id: str, status: str, step_status: str) -> DescribeRun:
    return DescribeRun(
        id=run_id, owner="me", pipeline="p", notebook="/p.ipynb", pipeline_version="v",
        status=status, parameters={}, options={}, created_at=datetime.now(UTC),
        steps=[DescribeStepRun(id=1, name="a", status=step_status)])


class _Sources:
    """What the hub reads, as the services give it; each source can be made to fail once."""

    def __init__(self) -> None:
        self.runs: dict[str, DescribeRun] = {}
        self.endpoints: dict[str, Any] = {}
        self.fail: set[str] = set()
        self.asked: list[set[str]] = []

    def list_runs(self, ids: set[str]) -> list[DescribeRun]:
        self.asked.append(set(ids))
        if "runs" in self.fail:
            self.fail.discard("runs")
            raise sqlite3.OperationalError("database is locked")
        return list(self.runs.values())

    def signatures(self) -> dict[str, Any]:
        if "endpoints" in self.fail:
            self.fail.discard("endpoints")
            raise sqlite3.OperationalError("database is locked")
        return dict(self.endpoints)

    def describe(self, name: str) -> Any:
        return _Endpoint(name, self.endpoints[name])


class _Endpoint:
    def __init__(self, name: str, revision: Any) -> None:
        self.name, self.revision = name, revision

    def model_dump_json(self) -> str:
        return json.dumps({"name": self.name, "revision": self.revision})


def _kinds(events: list[Any]) -> list[tuple[str, Any]]:
    return [(e.kind, json.loads(e.data).get("status", json.loads(e.data).get("revision")))
            for e in events]


def test_a_failing_endpoint_lookup_loses_no_run_event_and_is_retried():
    src = _Sources()
    hub = EventHub(src.list_runs, src.signatures, src.describe)
    src.runs["r1"] = _run("r1", "running", "running")
    src.endpoints["e"] = 1
    assert hub._changes() == []  # the baseline

    src.runs["r1"] = _run("r1", "succeeded", "succeeded")
    src.endpoints["e"] = 2
    src.fail.add("endpoints")
    assert _kinds(hub._changes()) == [("run", "succeeded")]
    assert _kinds(hub._changes()) == [("endpoint", 2)]  # found again at the next look
    assert hub._changes() == []


def test_a_failing_run_lookup_loses_no_change_nor_poke():
    src = _Sources()
    hub = EventHub(src.list_runs, src.signatures, src.describe)
    src.runs["r1"] = _run("r1", "running", "running")
    assert hub._changes() == []

    src.runs["r1"] = _run("r1", "failed", "failed")
    hub.poke("old")
    src.fail.add("runs")
    assert hub._changes() == []
    assert _kinds(hub._changes()) == [("run", "failed")]
    assert "old" in src.asked[-1]  # the poked id was asked for again after the failure


def test_runs_active_at_the_last_look_and_poked_runs_are_asked_for():
    src = _Sources()
    hub = EventHub(src.list_runs, src.signatures, src.describe)
    src.runs["r1"] = _run("r1", "running", "running")
    src.runs["r2"] = _run("r2", "succeeded", "succeeded")
    hub._changes()
    hub.poke("r9")

    hub._changes()

    assert src.asked[-1] == {"r1", "r9"}


def _schedule(sid: str, *, paused: bool = False, firing: str | None = None) -> Any:
    from jupyter_mlplat.schemas import DescribeFiring, DescribeSchedule

    now = datetime.now(UTC)
    last = None if firing is None else DescribeFiring(
        id=1, schedule_id=sid, kind="manual", status=firing, slot_at=now, created_at=now)
    return DescribeSchedule(id=sid, name=sid, owner="me", target="notebook", notebook="n.ipynb",
                            cron="@daily", timezone="UTC", paused=paused, last_firing=last,
                            scheduler=f"host:{now.timestamp()}", created_at=now, updated_at=now)


def test_schedule_changes_firings_and_deletions_are_events_lease_renewals_are_not():
    src = _Sources()
    schedules = {"s1": _schedule("s1"), "s2": _schedule("s2")}
    failing = []

    def list_schedules() -> list[Any]:
        if failing:
            failing.pop()
            raise sqlite3.OperationalError("database is locked")
        return list(schedules.values())

    hub = EventHub(src.list_runs, src.signatures, src.describe, schedules=list_schedules)
    assert hub._changes() == []  # the baseline
    schedules["s1"] = _schedule("s1")  # only the lease holder and times moved
    assert hub._changes() == []

    schedules["s1"] = _schedule("s1", paused=True)
    schedules["s2"] = _schedule("s2", firing="running")
    events = hub._changes()
    assert sorted((e.kind, json.loads(e.data)["id"]) for e in events) == [
        ("schedule", "s1"), ("schedule", "s2")]

    schedules["s2"] = _schedule("s2", firing="succeeded")
    del schedules["s1"]
    failing.append(True)
    assert hub._changes() == []  # the look failed: nothing is lost ...
    events = hub._changes()  # ... it is found again at the next one
    assert sorted(e.data for e in events) == sorted([
        json.dumps({"id": "s1", "deleted": True}), schedules["s2"].model_dump_json()])
    assert hub._changes() == []
