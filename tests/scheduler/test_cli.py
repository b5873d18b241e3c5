"""``jupyter mlplat schedule ...`` and ``jupyter mlplat scheduler`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.cli.main import main
from jupyter_mlplat.scheduler.runner import FiringResult

from .conftest import RecordingRunner, notebook, wait_for

CLI = [sys.executable, "-m", "jupyter_mlplat.cli.main"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Result]:
    """``run(*args, cwd=..., expect=0)``: ``jupyter mlplat ARGS`` in this process (the same
    ``main`` the entry point calls; the scheduler daemon test below uses a real process)."""
    monkeypatch.setenv("COLUMNS", "200")

    def call(*args: Any, cwd: Path, expect: int = 0) -> Result:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        assert code == expect, f"exit {code}\n{out.out}\n{out.err}"
        return Result(code, out.out, out.err)

    return call


@pytest.fixture
def as_json(run: Callable[..., Result]) -> Callable[..., Any]:
    def call(*args: Any, cwd: Path, expect: int = 0) -> Any:
        return json.loads(run(*args, "--json", cwd=cwd, expect=expect).stdout)

    return call


def test_add_list_show_pause_resume_delete(mlplat_isolated_env, run, as_json,
                                           tmp_path: Path) -> None:
    notebook(tmp_path, "retrain", "epochs = 3\nlabel = 'x'\ntags = ['a']\nsizes = (1, 2)")
    made = as_json("schedule", "add", "retrain.ipynb", "--cron", "30 2 * * *", "--tz",
                   "Europe/Berlin", "-p", "epochs", "7", "-p", "label", "42", "-p", "tags",
                   "['b', 'c']", "-p", "sizes", "(3, 4)", "--deploy-if-blessed", "churn", "--webhook",
                   "https://hooks.example.com/hook", "--notify-on", "failure", "--notify-on",
                   "success", "--missed", "skip", cwd=tmp_path)
    assert made["parameters"] == {"epochs": 7, "label": "42", "tags": ["b", "c"],
                                  "sizes": [3, 4]}  # a tuple, as JSON keeps it
    assert made["notebook"] == str(tmp_path / "retrain.ipynb")
    assert made["on_success"] == {"deploy_if_blessed": {"model": "churn", "endpoint": None,
                                                        "public": None}}
    assert made["notify"]["on"] == ["failure", "success"] and made["missed"] == "skip"
    for t in made["next_fire_times"]:  # local wall times with the day's offset
        assert t.endswith(("+01:00", "+02:00")) and ("T02:30:00" in t or "T03:00:00" in t)
    listing = as_json("schedule", "list", cwd=tmp_path)
    assert [s["id"] for s in listing["schedules"]] == [made["id"]]
    shown = as_json("schedule", "show", "retrain", cwd=tmp_path)
    assert shown["id"] == made["id"] and len(shown["next_fire_times"]) == 5
    assert as_json("schedule", "pause", made["id"][:6], cwd=tmp_path)["paused"] is True
    assert as_json("schedule", "resume", "retrain", cwd=tmp_path)["next_fire_at"]
    text = run("schedule", "show", "retrain", cwd=tmp_path).stdout
    assert "retrain" in text and "cron '30 2 * * *' in Europe/Berlin" in text
    assert as_json("schedule", "delete", "retrain", cwd=tmp_path)["deleted"] is True
    assert as_json("schedule", "list", cwd=tmp_path) == {"schedules": []}


@pytest.mark.parametrize("args, words", [
    (["add", "nb.ipynb", "--cron", "0 25 * * *"], "invalid cron expression"),
    (["add", "nb.ipynb", "--cron", "@daily", "--tz", "Berlin"], "unknown timezone 'Berlin'"),
    (["add", "nope.ipynb", "--cron", "@daily"], "notebook not found"),
    (["add", "nb.ipynb", "--cron", "@daily", "-p", "speed", "1"], "unknown parameter 'speed'"),
    (["add", "nb.ipynb", "--cron", "@daily", "-p", "epochs", "many"], "expects int"),
    (["add", "nb.ipynb", "--cron", "@daily", "--endpoint", "e"], "--deploy-if-blessed"),
    (["show", "nothing"], "no schedule 'nothing'"),
    (["run-now", "nothing"], "no schedule 'nothing'"),
])
def test_bad_input_exits_2_with_a_message(mlplat_isolated_env, run, tmp_path: Path,
                                          args: list[str], words: str) -> None:
    notebook(tmp_path, "nb", "epochs = 3")
    proc = run("schedule", *args, cwd=tmp_path, expect=2)
    assert proc.stdout == "" and words in proc.stderr


def test_run_now_in_the_foreground_and_its_exit_code(mlplat_isolated_env, run, as_json,
                                                     tmp_path: Path) -> None:
    notebook(tmp_path, "ok", "n = 1", "print(n * 2)")
    notebook(tmp_path, "bad", "n = 1", "1 / 0")
    for name in ("ok", "bad"):
        run("schedule", "add", f"{name}.ipynb", "--cron", "@yearly", "--paused", cwd=tmp_path)
    firing = as_json("schedule", "run-now", "ok", cwd=tmp_path)
    assert firing["status"] == "succeeded" and firing["kind"] == "manual"
    assert firing["run_status"] == "succeeded" and firing["executed_notebook"]
    failed = as_json("schedule", "run-now", "bad", cwd=tmp_path, expect=1)
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["error"]
    history = as_json("schedule", "show", "bad", cwd=tmp_path)["history"]
    assert [f["id"] for f in history] == [failed["id"]]


def test_a_second_signal_interrupts_running_firings_at_once(mlplat_isolated_env, run, as_json,
                                                           tmp_path: Path) -> None:
    """What JupyterHub sends a service it stops: SIGINT (running firings may finish for a
    while), then SIGTERM: the kernel is interrupted and the firing recorded ``interrupted``."""
    notebook(tmp_path, "slow", "n = 1", "import time\ntime.sleep(120)")
    run("schedule", "add", "slow.ipynb", "--cron", "@yearly", "--paused", cwd=tmp_path)
    queued = as_json("schedule", "run-now", "slow", "--no-wait", cwd=tmp_path)
    proc = subprocess.Popen([*CLI, "scheduler", "--poll-interval", "0.2"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "started (owners:" in proc.stdout.readline()
        wait_for(lambda: as_json("schedule", "show", "slow", cwd=tmp_path)["history"][0][
            "status"] == "running", timeout=60, every=0.3)
        time.sleep(3)  # the kernel is in its cell
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        assert proc.poll() is None  # still letting the firing finish
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() - started < 20
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    firing = as_json("schedule", "show", "slow", cwd=tmp_path)["history"][0]
    assert firing["id"] == queued["id"] and firing["status"] == "interrupted", firing


def test_scheduler_process_fires_queued_runs_and_stops_on_sigterm(mlplat_isolated_env, run,
                                                                  as_json, tmp_path: Path
                                                                  ) -> None:
    notebook(tmp_path, "ok", "n = 1", "print(n)")
    run("schedule", "add", "ok.ipynb", "--cron", "@yearly", "--paused", cwd=tmp_path)
    queued = as_json("schedule", "run-now", "ok", "--no-wait", cwd=tmp_path)
    assert queued["status"] == "pending"
    proc = subprocess.Popen([*CLI, "scheduler", "--poll-interval", "0.2"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "started (owners:" in proc.stdout.readline()
        wait_for(lambda: as_json("schedule", "show", "ok", cwd=tmp_path)["history"][0]["status"]
                 == "succeeded", timeout=60, every=0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    again = as_json("schedule", "run-now", "ok", "--no-wait", cwd=tmp_path)
    once = run("scheduler", "--once", cwd=tmp_path)
    assert "fired 1 firing(s)" in once.stdout
    assert as_json("schedule", "show", "ok", cwd=tmp_path)["history"][0]["id"] == again["id"]
    assert run("scheduler", "--poll-interval", "0", cwd=tmp_path, expect=2).stderr


def test_all_owners_refuses_to_start_without_an_owner_scoped_store(mlplat_isolated_env, run,
                                                                   monkeypatch, tmp_path: Path
                                                                   ) -> None:
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.delenv("MLPLAT_SCHEDULER_SERVICE_URL", raising=False)
    proc = run("scheduler", "--all-owners", "--once", cwd=tmp_path, expect=2)
    assert "several owners" in proc.stderr and "scheduler_service_url" in proc.stderr
    assert "JUPYTERHUB_API_TOKEN" in proc.stderr and "'tokens' scope" in proc.stderr
    monkeypatch.setenv("MLPLAT_SCHEDULER_SERVICE_URL", "mlplat+http://127.0.0.1:9/services/mlplat")
    proc = run("scheduler", "--all-owners", "--once", cwd=tmp_path, expect=2)
    assert "JUPYTERHUB_API_URL" in proc.stderr and "scheduler_service_url" not in proc.stderr
    # with the hub's API too, it still needs to know where owners' notebooks are
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-used")
    proc = run("scheduler", "--all-owners", "--once", cwd=tmp_path, expect=2)
    assert "--homes /home/{username}" in proc.stderr
    for template in ("homes/{username}", "/home/{user}", "/home/{username}/{x}"):
        proc = run("scheduler", "--all-owners", "--once", "--homes", template, cwd=tmp_path,
                   expect=2)
        assert "expected an absolute path with one {username} field" in proc.stderr
    proc = run("scheduler", "--all-owners", "--once", "--homes", str(tmp_path / "{username}"),
               "--kernels", " , ", cwd=tmp_path, expect=2)
    assert "kernel allow-list is empty" in proc.stderr
    if os.geteuid() == 0:  # every owner's notebooks would run as root: only when asked to
        proc = run("scheduler", "--all-owners", "--once", "--homes",
                   str(tmp_path / "{username}"), cwd=tmp_path, expect=2)
        assert "--allow-root" in proc.stderr and "unprivileged user" in proc.stderr
    # one owner, even another one than this OS user, needs none of it
    assert "fired 0 firing(s)" in run("scheduler", "--owner", "bob", "--once",
                                      cwd=tmp_path).stdout


class SlowRunner(RecordingRunner):
    """Takes ``seconds`` (or until told to stop), then succeeds."""

    seconds = 2.5

    def run(self, ctx):
        ctx.stop.wait(self.seconds)
        if ctx.stop.is_set():
            return FiringResult("failed", error="stopped")
        return super().run(ctx)


def test_once_keeps_its_lease_and_heartbeat_through_a_long_firing(mlplat_isolated_env, run,
                                                                   as_json, monkeypatch,
                                                                   tmp_path: Path) -> None:
    """``scheduler --once`` started by system cron: its firing outlives the lease, and the next
    invocation's sweep must not take it for dead."""
    from jupyter_mlplat.config import MLPlat
    from jupyter_mlplat.scheduler import loop as loop_module
    from jupyter_mlplat.scheduler.loop import SchedulerLoop

    notebook(tmp_path, "ok", "n = 1", "print(n)")
    run("schedule", "add", "ok.ipynb", "--cron", "@yearly", "--paused", cwd=tmp_path)
    queued = as_json("schedule", "run-now", "ok", "--no-wait", cwd=tmp_path)
    # a 2 s lease: the --once beat renews it every 0.5 s, so a stall of the loaded machine
    # (GC, the other core busy) does not let a heartbeat go stale while the process lives
    monkeypatch.setenv("MLPLAT_SCHEDULER_LEASE", "2.0")

    class LongRunner(SlowRunner):
        seconds = 10.0  # well past the 6 s of sweeps below, however slow each tick is

    monkeypatch.setattr(loop_module, "DefaultFiringRunner", LongRunner)
    once = threading.Thread(target=lambda: run("scheduler", "--once", cwd=tmp_path))
    once.start()
    nxt = SchedulerLoop(MLPlat(), runner=RecordingRunner(), poll_interval=0.05)
    try:
        wait_for(lambda: nxt.store.firing_row_any_owner(queued["id"]).status == "running",
                 timeout=10)
        sweeps_until = time.monotonic() + 6.0  # three leases of cron-started --once sweeps
        while time.monotonic() < sweeps_until:
            nxt.tick()
            time.sleep(0.3)
        assert nxt.store.firing_row_any_owner(queued["id"]).status == "running"
    finally:
        once.join(30)
        nxt.stop()
    shown = as_json("schedule", "show", "ok", cwd=tmp_path)["history"][0]
    assert shown["id"] == queued["id"] and shown["status"] == "succeeded"


def test_run_now_in_the_foreground_records_sigterm_and_ctrl_c_as_interrupted(
        mlplat_isolated_env, run, as_json, monkeypatch, tmp_path: Path) -> None:
    from jupyter_mlplat.scheduler import loop as loop_module

    notebook(tmp_path, "ok", "n = 1", "print(n)")
    run("schedule", "add", "ok.ipynb", "--cron", "@yearly", "--paused", cwd=tmp_path)

    class Endless(SlowRunner):
        seconds = 30.0

        def run(self, ctx):
            # SIGTERM once the firing surely runs: run-now has its handler in place by then
            # (sent earlier, it would meet the default handler and end this process)
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            return super().run(ctx)

    monkeypatch.setattr(loop_module, "DefaultFiringRunner", Endless)
    started = time.monotonic()
    firing = as_json("schedule", "run-now", "ok", cwd=tmp_path, expect=1)
    assert time.monotonic() - started < 10
    assert firing["status"] == "interrupted"

    class CtrlC(RecordingRunner):
        def run(self, ctx):
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "DefaultFiringRunner", CtrlC)
    proc = run("schedule", "run-now", "ok", cwd=tmp_path, expect=130)
    assert "interrupted" in proc.stderr
    last = as_json("schedule", "show", "ok", cwd=tmp_path)["history"][0]
    assert last["status"] == "interrupted" and "KeyboardInterrupt" in last["error"]


def test_waiting_on_the_scheduler_service_rides_out_an_outage_and_ctrl_c_leaves_the_firing(
        mlplat_isolated_env, run, monkeypatch, capsys, tmp_path: Path) -> None:
    """Under JupyterHub ``schedule run-now`` waits while the scheduler service fires (here a
    scheduler loop in a thread): a store service briefly unreachable is waited out, Ctrl-C stops
    only the waiting, and one unreachable for too long ends the wait saying the firing goes
    on."""
    import argparse

    from jupyter_mlplat.cli import schedule as schedule_cli
    from jupyter_mlplat.config import MLPlat
    from jupyter_mlplat.errors import MLPlatError
    from jupyter_mlplat.scheduler.loop import SchedulerLoop
    from jupyter_mlplat.scheduler.service import ScheduleService

    notebook(tmp_path, "ok", "n = 1", "print(n)")
    run("schedule", "add", "ok.ipynb", "--cron", "@yearly", "--paused", cwd=tmp_path)
    service = ScheduleService(MLPlat())
    args = argparse.Namespace(schedule="ok", json=True)

    class Unreachable:
        """The store service as the waiting CLI sees it: down for the first ``down`` looks
        (a hub restart), or a Ctrl-C at look ``interrupt_at``."""

        def __init__(self, down: int = 0, interrupt_at: int = 0) -> None:
            self.down, self.interrupt_at, self.looks = down, interrupt_at, 0

        def firing(self, firing_id: int) -> Any:
            self.looks += 1
            if self.looks == self.interrupt_at:
                raise KeyboardInterrupt
            if self.looks <= self.down:
                raise MLPlatError("cannot reach the store service at http://127.0.0.1:1/")
            return service.firing(firing_id)

    # 1. the service fires it while the store is down for two looks: the wait goes on
    queued = service.run_now("ok")
    loop = SchedulerLoop(MLPlat(), runner=RecordingRunner())
    fired = threading.Thread(target=loop.run_pending, args=(queued.id,))
    fired.start()
    try:
        assert schedule_cli._wait_for_scheduler(args, Unreachable(down=2), queued,
                                                poll=0.05) == 0
    finally:
        fired.join(30)
        loop.stop()
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "succeeded"
    assert "cannot look at it now (cannot reach the store service" in err
    assert "the store service answers again" in err and f"firing {queued.id}: succeeded" in err

    # 2. Ctrl-C: exit 130, the firing stays queued for the service
    pending = service.run_now("ok")
    assert schedule_cli._wait_for_scheduler(args, Unreachable(interrupt_at=2), pending,
                                            poll=0.01) == 130
    assert "goes on in the scheduler service" in capsys.readouterr().err
    assert service.firing(pending.id).status == "pending"

    # 3. down for longer than the CLI waits: the error ends the command, saying it goes on
    monkeypatch.setattr(schedule_cli, "UNREACHABLE_FOR", 0.1)
    with pytest.raises(MLPlatError, match="cannot reach"):
        schedule_cli._wait_for_scheduler(args, Unreachable(down=10**6), pending, poll=0.01)
    err = capsys.readouterr().err
    assert "still waiting" in err and f"firing {pending.id} goes on" in err
