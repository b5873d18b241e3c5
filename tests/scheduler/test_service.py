"""ScheduleService: what a REST handler calls, one method at a time; bad input, owners, views."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from jupyter_mlplat.errors import ConflictError, InvalidSpecError, NotFoundError
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.schemas import CreateSchedule
from jupyter_mlplat.store import orm
from jupyter_mlplat.store.sql import Store

from .conftest import claim, notebook


@pytest.fixture
def nb(tmp_path: Path) -> Path:
    return notebook(tmp_path, "retrain",
                    "lr = 0.1\nepochs = 3\nlabel = 'churn'\ntags = ['a']\nfast = True\n"
                    "cfg = {'k': 1}\nseed = None",
                    "print(lr, epochs)")


def _create(service: ScheduleService, nb: Path, **fields):
    return service.create({"notebook": str(nb), "cron": "0 3 * * *", **fields})


def test_create_describes_next_fire_times_in_the_schedules_timezone(service, nb, clock) -> None:
    clock.set(datetime(2026, 3, 27, 12, tzinfo=UTC))
    s = _create(service, nb, cron="30 2 * * *", timezone="Europe/Berlin",
                parameters={"lr": 0.5, "epochs": 10, "tags": ["x", "y"], "label": "c2",
                            "cfg": {"k": 2}, "fast": False, "seed": 7},
                on_success={"deploy_if_blessed": {"model": "churn", "endpoint": "churn"}},
                notify={"webhook": "https://hooks.example.com/abc", "on": ["failure"]})
    assert s.name == "retrain" and s.target == "notebook" and s.owner == service.store.owner
    assert s.notebook == str(nb)
    assert [t.isoformat() for t in s.next_fire_times[:4]] == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    assert s.next_fire_at == s.next_fire_times[0]
    assert s.parameters["tags"] == ["x", "y"] and s.parameters["epochs"] == 10
    assert s.on_success.deploy_if_blessed.model == "churn"
    assert s.notify.webhook == ["https://hooks.example.com/abc"]
    assert s.history == [] and s.last_firing is None
    listed = service.list().schedules
    assert [x.id for x in listed] == [s.id] and len(listed[0].next_fire_times) == 1
    assert service.describe(s.id[:5]).id == s.id  # an id prefix
    assert service.describe("retrain").id == s.id  # or the name
    assert service.preview("@daily", "UTC", 2)[0] == datetime(2026, 3, 28, tzinfo=UTC)


@pytest.mark.parametrize("fields, words", [
    ({"cron": "61 * * * *"}, "invalid cron expression"),
    ({"cron": "0 3 * *"}, "it has 4 fields"),
    ({"timezone": "Europe/Berlim"}, "unknown timezone 'Europe/Berlim'"),
    ({"notebook": "missing.ipynb"}, "notebook not found"),
    ({"parameters": {"learning_rate": 0.1}}, "unknown parameter 'learning_rate'"),
    ({"parameters": {"epochs": "3"}}, "parameter 'epochs' expects int"),
    ({"parameters": {"tags": "a"}}, "parameter 'tags' expects list"),
    ({"parameters": {"fast": 1}}, "parameter 'fast' expects bool"),
    ({"parameters": {"epochs": float("nan")}}, "cannot be stored"),
    ({"notify": {"webhook": ["ftp://files.example.com"]}}, "not an http(s) URL"),
    ({"notify": {"webhook": ["http://169.254.169.254/latest"]}}, "not a public address"),
    ({"notify": {"webhook": ["http://localhost:8081/hub/api"]}}, "not a public address"),
    ({"notify": {"webhook": ["http://[::1]/x"]}}, "not a public address"),
    ({"notify": {"email": ["not-an-address"]}}, "e-mail address"),
    ({"notify": {"on": ["sometimes"]}}, "invalid schedule: notify.on.0"),
    ({"on_success": {"deploy_if_blessed": {"model": "bad name!"}}}, "model name"),
    ({"on_success": {"rollback": {}}}, "on_success.rollback"),
    ({"missed": "all"}, "invalid schedule: missed"),
    ({"kernel": "no-such-kernel"}, "unknown kernel 'no-such-kernel'"),
    ({"timeout": -1}, "timeout"),
    ({"target": "pipeline", "timeout": 5}, "timeout applies to notebook targets"),
    ({"name": "\x07bell"}, "printable"),
])
def test_bad_input_is_a_clear_invalid_spec_error(service, nb, fields, words) -> None:
    with pytest.raises(InvalidSpecError) as err:
        _create(service, nb, **fields)
    assert words in str(err.value)
    assert service.list().schedules == []


def test_notebook_without_parameters_cell_refuses_parameters(service, tmp_path: Path) -> None:
    plain = tmp_path / "plain.ipynb"
    plain.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(InvalidSpecError, match="no cell tagged 'parameters'"):
        _create(service, plain, parameters={"x": 1})
    assert _create(service, plain).parameters == {}


def test_pipeline_target_checks_the_marks(service, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [{"cell_type": "code", "metadata": {"tags": ["step:a"]}, '
                   '"source": "y = undefined_name", "outputs": [], "execution_count": null}],'
                   ' "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(InvalidSpecError, match="undefined_name"):
        _create(service, bad, target="pipeline")


def test_paths_stay_inside_the_root(config, store, clock, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    notebook(root, "inside", "x = 1")
    outside = notebook(tmp_path, "outside", "x = 1")
    os.symlink(outside, root / "link.ipynb")
    service = ScheduleService(config, store=store, root=root, clock=clock)
    s = service.create({"notebook": "inside.ipynb", "cron": "@daily"})
    assert s.notebook == "inside.ipynb"
    for bad, words in (("../outside.ipynb", "outside the server root"),
                       (str(outside), "is absolute"),
                       ("link.ipynb", "outside the server root")):
        with pytest.raises(InvalidSpecError, match=words):
            service.create({"notebook": bad, "cron": "@daily", "name": "x"})


def test_names_are_unique_per_owner(service, nb) -> None:
    _create(service, nb)
    with pytest.raises(ConflictError, match="named 'retrain' exists"):
        _create(service, nb)
    assert _create(service, nb, name="retrain-2").name == "retrain-2"


def test_owners_never_see_each_others_schedules(config, store, clock, nb) -> None:
    alice = ScheduleService(config, store=store, clock=clock)
    s = _create(alice, nb)
    bob_store = Store(config.store_url, "bob")
    try:
        bob = ScheduleService(config, store=bob_store, clock=clock)
        assert bob.list().schedules == []
        for call in (bob.describe, bob.pause, bob.resume, bob.delete, bob.run_now,
                     bob.history):
            with pytest.raises(NotFoundError):
                call(s.id)
        with pytest.raises(NotFoundError):
            bob.update(s.id, {"cron": "@hourly"})
        pending = alice.run_now(s.id)
        with pytest.raises(NotFoundError):
            bob.firing(pending.id)
        assert _create(bob, nb).name == "retrain"  # the same name is fine for another owner
    finally:
        bob_store.close()


def test_update_pause_resume_delete(service, store, nb, clock) -> None:
    s = _create(service, nb, parameters={"epochs": 5})
    assert s.next_fire_at.astimezone(UTC) == datetime(2026, 3, 28, 3, tzinfo=UTC)
    changed = service.update(s.id, {"cron": "0 * * * *", "parameters": {"epochs": 6}})
    assert changed.cron == "0 * * * *" and changed.parameters == {"epochs": 6}
    assert changed.next_fire_at.astimezone(UTC) == datetime(2026, 3, 27, 13, tzinfo=UTC)
    with pytest.raises(InvalidSpecError, match="unknown timezone"):
        service.update(s.id, {"timezone": "Nowhere/Land"})
    with pytest.raises(InvalidSpecError, match="expects int"):
        service.update(s.id, {"parameters": {"epochs": "six"}})
    assert service.describe(s.id).parameters == {"epochs": 6}  # refused changes changed nothing
    paused = service.pause(s.id)
    assert paused.paused and paused.next_fire_at is None and paused.next_fire_times == []
    assert service.pause(s.id).paused  # idempotent
    clock.advance(hours=5)
    resumed = service.resume(s.id)
    assert resumed.next_fire_at.astimezone(UTC) == datetime(2026, 3, 27, 18, tzinfo=UTC)
    pending = service.run_now(s.id)
    deleted = service.delete(s.id)
    assert deleted.deleted and deleted.next_fire_at is None
    assert store.firing_row(pending.id).status == "cancelled"
    with pytest.raises(NotFoundError):
        service.describe(s.id)
    assert service.list().schedules == []


def test_create_accepts_the_model_and_single_values(service, nb) -> None:
    req = CreateSchedule(notebook=str(nb), cron="@hourly", name="m")
    assert service.create(req).cron == "@hourly"
    s = service.create({"notebook": str(nb), "cron": "@daily", "name": "one",
                        "notify": {"webhook": "https://hooks.example.com/x", "email": "a@b.io",
                                   "on": "success"}})
    assert s.notify.webhook == ["https://hooks.example.com/x"] and s.notify.email == ["a@b.io"]
    assert s.notify.on == ["success"]
    with pytest.raises(InvalidSpecError, match="history|limit"):
        service.history(s.id, limit=0)


def test_a_firing_left_running_by_a_dead_scheduler_is_shown_interrupted(service, store, nb,
                                                                        clock) -> None:
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    s = _create(service, nb)
    firing = claim(store, s.id, "dead-one", pid=dead_pid)
    assert store.firing_row(firing.id).status == "running"
    (shown,) = [f for f in service.describe(s.id).history if f.id == firing.id]
    assert shown.status == "interrupted" and str(dead_pid) in shown.error


def test_a_name_is_never_shadowed_by_an_id_prefix(service, store, nb) -> None:
    """Exact id, then exact name; a name that is also another schedule's id prefix is
    ambiguous rather than a silent pick (``schedule delete cafe`` must not delete the wrong
    one). Prefixes ignore case, on SQLite and PostgreSQL alike."""
    first = _create(service, nb, name="first")
    prefix = first.id[:4]
    named = _create(service, nb, name=prefix)
    with pytest.raises(InvalidSpecError, match="matches several schedules"):
        service.delete(prefix)
    assert {s.id for s in service.list().schedules} == {first.id, named.id}
    assert service.describe(first.id).id == first.id  # an exact id always wins
    other = _create(service, nb, name="other")
    assert service.describe("other").id == other.id
    assert service.describe(first.id[:6].upper()).id == first.id
    with store.session() as s:  # a name equal to another schedule's whole id
        s.execute(update(orm.Schedule).where(orm.Schedule.id == named.id)
                  .values(name=other.id))
    assert service.describe(other.id).id == other.id
