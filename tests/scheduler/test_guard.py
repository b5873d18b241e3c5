"""What a scheduler lets a firing run: the notebook inside its owner's home (``--homes``), a
kernel of its allow-list (``--kernels``), checked when the firing starts and recorded on it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.scheduler.guard import FiringGuard, check_homes_template
from jupyter_mlplat.scheduler.isolation import DirectKernelAccess
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.store.sql import Store

from .conftest import RecordingRunner, notebook


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    for name in ("alice", "bob"):
        (tmp_path / "homes" / name / "work").mkdir(parents=True)
    return tmp_path / "homes"


def test_a_homes_template_is_an_absolute_path_with_the_user_name_only() -> None:
    assert check_homes_template("/home/{username}") == "/home/{username}"
    assert check_homes_template("/srv/{username}/notebooks") == "/srv/{username}/notebooks"
    for bad in ("home/{username}", "/home/{user}", "/home", "/home/{username}/{x}",
                "/home/{username", "/home/{0}"):
        with pytest.raises(InvalidSpecError, match="homes template"):
            check_homes_template(bad)


def test_notebook_paths_resolve_inside_the_owners_home_only(homes: Path) -> None:
    guard = FiringGuard.build(str(homes / "{username}"), None)
    alice = (homes / "alice").resolve()
    assert guard.notebook("alice", "work/a.ipynb") == alice / "work" / "a.ipynb"
    assert guard.notebook("alice", "./work//a.ipynb") == alice / "work" / "a.ipynb"
    # an absolute path is fine where it leads into the home (rows of a direct SQL writer)
    assert guard.notebook("alice", str(alice / "work" / "a.ipynb")) == alice / "work" / "a.ipynb"
    notebook(homes / "bob", "private", "x = 1")
    (homes / "alice" / "link.ipynb").symlink_to(homes / "bob" / "private.ipynb")
    (homes / "alice" / "bobs").symlink_to(homes / "bob")
    for stored in ("../bob/private.ipynb", str(homes / "bob" / "private.ipynb"), "link.ipynb",
                   "bobs/private.ipynb", "/etc/passwd", "work/../../bob/private.ipynb"):
        with pytest.raises(InvalidSpecError, match="leads outside the home folder of 'alice'"):
            guard.notebook("alice", stored)
    for owner in ("..", "a/b", "", "x\x00"):
        with pytest.raises(InvalidSpecError, match="cannot name a home folder"):
            guard.notebook(owner, "work/a.ipynb")
    with pytest.raises(InvalidSpecError, match="home folder of 'carol' .* does not exist"):
        guard.notebook("carol", "a.ipynb")


def test_without_homes_absolute_paths_stay_and_relative_ones_are_refused(tmp_path: Path) -> None:
    guard = FiringGuard.build(None, None)
    assert guard.notebook("alice", str(tmp_path / "a.ipynb")) == tmp_path / "a.ipynb"
    with pytest.raises(InvalidSpecError, match="--homes TEMPLATE"):
        guard.notebook("alice", "a.ipynb")
    with pytest.raises(InvalidSpecError, match="allow-list is empty"):
        FiringGuard.build(None, [" ", ""])
    assert FiringGuard.build(None, [" python3 ", "team"]).kernels == {"python3", "team"}


class PathRunner(RecordingRunner):
    """Records the notebook path each firing was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def run(self, ctx):
        self.paths.append(ctx.schedule.notebook_path)
        return super().run(ctx)


def test_a_loop_for_several_owners_needs_homes_and_refuses_paths_out_of_them(
        config, homes: Path) -> None:
    from jupyter_mlplat.scheduler.loop import SchedulerLoop

    with pytest.raises(InvalidSpecError, match="--homes /home/{username}"):
        SchedulerLoop(config, owners=["alice", "bob"], kernel_access=DirectKernelAccess())
    notebook(homes / "alice" / "work", "job", "n = 0", "print(n)")
    notebook(homes / "bob", "private", "x = 1")
    store = Store(config.store_url, "alice")
    runner = PathRunner()
    loop = SchedulerLoop(config, owners=["alice", "bob"], kernel_access=DirectKernelAccess(),
                         runner=runner, homes=str(homes / "{username}"), poll_interval=0.05)
    try:
        alice = ScheduleService(MLPlat(owner="alice"), store=store)
        good = alice.create({"notebook": str(homes / "alice" / "work" / "job.ipynb"),
                             "cron": "@daily", "paused": True, "name": "good"}).id
        bad = alice.create({"notebook": str(homes / "bob" / "private.ipynb"),
                            "cron": "@daily", "paused": True, "name": "bad"}).id
        # a row as the store service keeps it: relative to alice's home
        relative = alice.create({"notebook": str(homes / "alice" / "work" / "job.ipynb"),
                                 "cron": "@daily", "paused": True, "name": "relative"}).id
        store.update_schedule(relative, store.schedule_row(relative).updated_at,
                              notebook_path="work/job.ipynb")
        pending = {sid: alice.run_now(sid).id for sid in (good, bad, relative)}
        for _ in range(3):  # one of alice's firings at a time
            loop.tick()
            assert loop.drain(10)
        firings = {sid: alice.firing(fid) for sid, fid in pending.items()}
        assert firings[good].status == "succeeded" and firings[relative].status == "succeeded"
        assert firings[bad].status == "failed" and firings[bad].run_id is None
        assert "leads outside the home folder of 'alice'" in firings[bad].error
        job = str((homes / "alice" / "work" / "job.ipynb").resolve())
        assert runner.paths == [job, job]  # the refused one never reached the runner
    finally:
        loop.stop()
        store.close()


def _write(path: Path, kernel: str, cells: list[tuple[str, dict]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    for source, meta in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata.update(meta)
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


def test_kernels_are_checked_when_the_firing_starts(config, store, loops,
                                                    tmp_path: Path) -> None:
    """The notebook's own kernel (its metadata may change after the schedule was made), the
    schedule's, a pipeline step's: a kernel off the list fails the firing before anything
    runs, and says which kernel, from where, and what is allowed."""
    service = ScheduleService(config, store=store)
    plain = _write(tmp_path / "plain.ipynb", "python3", [("x = 1", {})])
    steps = _write(tmp_path / "steps.ipynb", "python3", [
        ("a = 1", {"mlplat": {"step": "first"}}),
        ("b = a + 1", {"mlplat": {"step": "second", "kernel": "python3"}})])
    ids = {
        "own": service.create({"notebook": str(plain), "cron": "@daily", "paused": True,
                               "name": "own"}).id,
        "named": service.create({"notebook": str(plain), "cron": "@daily", "paused": True,
                                 "name": "named", "kernel": "python3"}).id,
        "pipeline": service.create({"notebook": str(steps), "cron": "@daily", "paused": True,
                                    "name": "pipeline", "target": "pipeline"}).id,
    }
    pending = {name: service.run_now(sid).id for name, sid in ids.items()}
    loop = loops(kernels=["team-kernel"], workers=3)
    assert loop.guard.kernels == {"team-kernel"}
    loop.tick()
    assert loop.drain(30)
    firings = {name: service.firing(fid) for name, fid in pending.items()}
    for name, firing in firings.items():
        assert firing.status == "failed" and firing.run_id is None, (name, firing)
        assert "not one this scheduler runs; allowed: team-kernel" in firing.error
    assert "kernel 'python3' (named in the notebook's metadata)" in firings["own"].error
    assert "kernel 'python3' (the schedule's kernel)" in firings["named"].error
    assert "step 'first'" in firings["pipeline"].error


def test_a_relative_path_without_homes_fails_the_firing_and_runs_nothing(
        config, store, loops, tmp_path: Path) -> None:
    service = ScheduleService(config, store=store)
    nb = notebook(tmp_path, "job", "n = 0", "print(n)")
    sid = service.create({"notebook": str(nb), "cron": "@daily", "paused": True}).id
    store.update_schedule(sid, store.schedule_row(sid).updated_at, notebook_path="job.ipynb")
    firing = service.run_now(sid)
    runner = RecordingRunner()
    loop = loops(runner=runner)  # one owner, no homes: a relative path cannot be found
    loop.tick()
    assert loop.drain(10)
    done = service.firing(firing.id)
    assert done.status == "failed" and "--homes TEMPLATE" in done.error
    assert runner.calls == []
