"""``jupyter mlplat`` as a user runs it: real subprocesses, a real store, a real LocalCluster."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_mlplat.store.sql import HEAD_REVISION
from tests.pipeline.nbbuild import code, notebook, write

from .conftest import Cli

STEPS = ["load", "total", "other", "report"]


def step(name: str, src: str) -> dict[str, Any]:
    return code(src, mlplat={"step": name})


def pipe_notebook() -> dict[str, Any]:
    """load -> total -> report <- other; n feeds load, k feeds other; report logs a metric."""
    return notebook(
        code("import jupyter_mlplat as mlp", mlplat={"role": "imports"}),
        code("n = 3\nk = 'x'", tags=["parameters"]),
        step("load", "data = list(range(n))\nprint('CLI-TEST-LOAD-MARKER', n)"),
        step("total", "tot = sum(data)"),
        step("other", "label = k * 2"),
        step("report", "mlp.log_metric('score', tot + 0.5)\nres = label + str(tot)"),
    )


def statuses(run: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in run["steps"]}


def by_name(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run["steps"]}


def sqlite_path() -> Path:
    return Path(os.environ["MLPLAT_STORE_URL"].split("///", 1)[1])


# -- the dispatcher and bad input: nothing here starts a cluster --------------------------------


@pytest.mark.timeout(60)
def test_jupyter_dispatcher_runs_mlplat_help(tmp_path: Path) -> None:
    jupyter = Path(sys.executable).parent / "jupyter"  # the venv's, next to its python
    proc = subprocess.run([str(jupyter), "mlplat", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: jupyter mlplat")
    for command in ("run", "steps", "runs", "show", "resume", "cancel", "logs", "db", "demo"):
        assert f"    {command} " in proc.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["run", "steps"])
def test_notebook_that_is_missing_or_not_a_notebook_is_refused(cli: Cli, tmp_path: Path,
                                                               command: str) -> None:
    err = cli.usage_error(command, "missing.ipynb")
    assert "notebook not found" in err and "missing.ipynb" in err

    (tmp_path / "notes.txt").write_text("just text\n")
    err = cli.usage_error(command, "notes.txt")
    assert "not a Jupyter notebook" in err and ".ipynb" in err and "'.txt'" in err

    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    err = cli.usage_error(command, "broken.ipynb")
    assert "broken.ipynb is not a Jupyter notebook" in err and "not valid JSON" in err


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "expected"), [
    (["-p", "nope", "1"], ["unknown parameter 'nope'", "parameters: n, k"]),
    (["-p", "n", "abc"], ["parameter 'n' expects int", "default is 3", "'abc'"]),
    (["-p", "n"], ["usage: jupyter mlplat run", "-p/--parameter: expected 2 arguments"]),
    (["--only", "nope"], ["unknown step 'nope'", "load, total, other, report"]),
    (["--force", "nope"], ["unknown step 'nope'", "load, total, other, report"]),
    (["--only", "load", "--from", "total"], ["usage: jupyter mlplat run",
                                             "--from: not allowed with argument --only"]),
], ids=["unknown-param", "param-type", "param-no-value", "only-unknown", "force-unknown",
        "only-and-from"])
def test_bad_run_arguments_are_refused_before_anything_runs(cli: Cli, tmp_path: Path,
                                                            args: list[str],
                                                            expected: list[str]) -> None:
    nb = write(tmp_path, "pipe", pipe_notebook())
    err = cli.usage_error("run", nb, *args)
    for text in expected:
        assert text in err
    # refused up front: no run was recorded
    assert cli.json("runs") == {"runs": []}


@pytest.mark.timeout(60)
def test_unknown_runs_and_bad_limits_are_refused(cli: Cli) -> None:
    for command in ("show", "logs", "resume", "cancel"):
        err = cli.usage_error(command, "nosuchrun")
        assert "no run 'nosuchrun'" in err and "jupyter mlplat runs" in err
    err = cli.usage_error("show", "nosuchrun", "--json")  # --json errors stay off stdout
    assert "no run 'nosuchrun'" in err
    for limit in ("0", "-3"):
        err = cli.usage_error("runs", "--limit", limit)
        assert "--limit must be a positive integer" in err and limit in err
    err = cli.usage_error("runs", "--limit", "many")
    assert "--limit: invalid int value: 'many'" in err
    err = cli.usage_error("db", "downgrade")
    assert "invalid choice: 'downgrade'" in err and "upgrade" in err


# -- steps and db: no cluster --------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_steps_json_and_table_describe_the_graph_and_run_nothing(cli: Cli, tmp_path: Path) -> None:
    nb = write(tmp_path, "pipe", pipe_notebook())
    doc = cli.json("steps", nb)
    assert doc["pipeline"] == "pipe"
    assert [p["name"] for p in doc["parameters"]] == ["n", "k"]
    steps = {s["name"]: s for s in doc["steps"]}
    assert list(steps) == STEPS
    assert steps["load"]["upstream"] == [] and steps["load"]["outputs"] == ["data"]
    assert steps["load"]["params"] == ["n"] and steps["other"]["params"] == ["k"]
    assert steps["total"]["upstream"] == ["load"] and steps["total"]["inputs"] == {"data": "load"}
    assert sorted(steps["report"]["upstream"]) == ["other", "total"]
    assert steps["report"]["inputs"] == {"label": "other", "tot": "total"}
    edges = {(e["from"], e["to"]): e["data"] for e in doc["edges"]}
    assert edges == {("load", "total"): ["data"], ("total", "report"): ["tot"],
                     ("other", "report"): ["label"]}

    table = cli("steps", nb).stdout
    assert "pipe: 4 step(s)" in table
    for name in STEPS:
        assert name in table
    assert "data<-load" in table and "parameters: n=3, k='x'" in table

    assert cli.json("runs") == {"runs": []}  # steps runs nothing


@pytest.mark.timeout(60)
def test_db_upgrade_creates_the_store_at_the_head_revision(cli: Cli) -> None:
    db = sqlite_path()
    assert not db.exists()
    out = cli("db", "upgrade").stdout
    assert f"is at revision {HEAD_REVISION}" in out and str(db) in out
    assert db.exists()
    doc = cli.json("db", "upgrade")  # again: already at head, same answer
    assert doc == {"store_url": os.environ["MLPLAT_STORE_URL"], "revision": HEAD_REVISION}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (HEAD_REVISION,)]


# -- runs of one pipeline, shared by the tests below (each `run` starts a cluster) ---------------


@dataclass
class History:
    cli: Cli
    notebook: Path
    cold: dict[str, Any]
    again: dict[str, Any]
    n5: dict[str, Any]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A cold run, an unchanged rerun and a ``-p n 5`` run, in a store of their own."""
    home = tmp_path_factory.mktemp("cli-history")
    cli = Cli(cwd=home, env={
        "MLPLAT_STORE_URL": f"sqlite:///{home / 'mlplat.db'}",
        "MLPLAT_ARTIFACTS_URL": str(home / "artifacts"),
        "MLPLAT_LOGS_DIR": str(home / "logs"),
    })
    nb = write(home, "pipe", pipe_notebook())
    cold = cli.json("run", nb)
    again = cli.json("run", nb)
    n5 = cli.json("run", nb, "-p", "n", "5")
    return History(cli, nb, cold, again, n5)


@pytest.mark.timeout(300)
def test_run_json_then_cache_then_parameter_change(history: History) -> None:
    cold, again, n5 = history.cold, history.again, history.n5
    assert cold["status"] == "succeeded", cold["error"]
    assert statuses(cold) == dict.fromkeys(STEPS, "succeeded")
    assert cold["parameters"] == {"n": 3, "k": "x"}
    assert cold["metrics"] == {"score": 3.5}
    assert {o["name"] for o in by_name(cold)["load"]["outputs"]} == {"data"}

    assert again["status"] == "succeeded"
    assert statuses(again) == dict.fromkeys(STEPS, "cached")
    assert all(s["cached_from_run"] == cold["id"] for s in again["steps"])
    assert again["metrics"] == {"score": 3.5}  # a cached step's metrics count for the new run

    # n feeds load; total and report read what changed; other reads only k
    assert n5["status"] == "succeeded"
    assert n5["parameters"] == {"n": 5, "k": "x"}
    assert statuses(n5) == {"load": "succeeded", "total": "succeeded", "other": "cached",
                            "report": "succeeded"}
    assert n5["metrics"] == {"score": 10.5}


@pytest.mark.timeout(300)
def test_run_selection_to_and_only(history: History) -> None:
    to = history.cli.json("run", history.notebook, "--to", "total")
    assert to["status"] == "succeeded"
    assert statuses(to) == {"load": "cached", "total": "cached", "other": "skipped",
                            "report": "skipped"}
    assert to["options"]["to"] == "total"
    only = history.cli.json("run", history.notebook, "--only", "report")
    assert statuses(only) == {"load": "skipped", "total": "skipped", "other": "skipped",
                              "report": "cached"}
    # the skipped producers' outputs came from the latest successful run of each
    assert "outputs from run" in by_name(only)["total"]["message"]


@pytest.mark.timeout(300)
def test_runs_lists_newest_first_and_show_takes_a_prefix(history: History) -> None:
    ids = [history.n5["id"], history.again["id"], history.cold["id"]]
    listed = history.cli.json("runs")["runs"]
    ours = [r for r in listed if r["id"] in ids]
    assert [r["id"] for r in ours] == ids
    assert [r["metrics"] for r in ours] == [{"score": 10.5}, {"score": 3.5}, {"score": 3.5}]
    stamps = [r["created_at"] for r in listed]
    assert stamps == sorted(stamps, reverse=True)
    assert len(history.cli.json("runs", "--limit", "1")["runs"]) == 1
    assert {r["status"] for r in history.cli.json("runs", "--status", "succeeded")["runs"]} == {
        "succeeded"}

    table = history.cli("runs").stdout
    for run_id in ids:
        assert run_id in table

    shown = history.cli.json("show", history.cold["id"][:6])
    assert shown["id"] == history.cold["id"] and statuses(shown) == statuses(history.cold)
    human = history.cli("show", history.n5["id"]).stdout
    assert f"run {history.n5['id']} of pipe" in human and "status: succeeded" in human
    assert "parameters: n=5, k='x'" in human and "score=10.5" in human


@pytest.mark.timeout(300)
def test_logs_and_follow_of_a_finished_run(history: History) -> None:
    log = history.cli("logs", history.cold["id"]).stdout
    assert "CLI-TEST-LOAD-MARKER 3" in log
    assert "--- step report succeeded" in log
    followed = history.cli("logs", history.cold["id"], "--follow", timeout=60).stdout
    assert "CLI-TEST-LOAD-MARKER 3" in followed
    assert "CLI-TEST-LOAD-MARKER 5" in history.cli("logs", history.n5["id"][:8]).stdout


@pytest.mark.timeout(300)
def test_resume_and_cancel_of_a_finished_run_are_refused(history: History) -> None:
    run_id = history.cold["id"]
    err = history.cli.usage_error("resume", run_id)
    assert f"run {run_id} succeeded; nothing to resume" in err
    err = history.cli.usage_error("cancel", run_id)
    assert f"run {run_id} already finished (succeeded)" in err
    assert history.cli.json("show", run_id)["status"] == "succeeded"  # untouched


# -- failures, interruption and resume -----------------------------------------------------------


@pytest.mark.timeout(300)
def test_failing_step_exits_1_and_show_reports_the_error_cell(cli: Cli, tmp_path: Path) -> None:
    nb = write(tmp_path, "failing", notebook(
        code("import math", mlplat={"role": "imports"}),
        step("ok", "x = 1"),
        step("bad", "y = x + 1\nraise ValueError('cli-test-boom ' + str(y))"),
        step("after", "z = y"),
    ))
    run = cli.json("run", nb, expect=1)
    assert run["status"] == "failed"
    assert statuses(run) == {"ok": "succeeded", "bad": "failed", "after": "upstream_failed"}

    shown = cli.json("show", run["id"])
    bad = by_name(shown)["bad"]
    assert (bad["ename"], bad["evalue"]) == ("ValueError", "cli-test-boom 2")
    assert bad["source_cell_index"] == 2  # the notebook's third cell holds step bad
    assert "bad" in shown["error"] and "cli-test-boom" in shown["error"]

    human = cli("show", run["id"]).stdout
    assert "status: failed" in human
    assert "bad at notebook cell 2" in human and "ValueError: cli-test-boom 2" in human


def _wait_for_step(cli: Cli, proc: subprocess.Popen[bytes], output: Path, step_name: str,
                   status: str, within: float) -> dict[str, Any]:
    """Poll ``runs --json`` until a run shows ``step_name`` in ``status``; return that run."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, (f"the run ended early with exit code {proc.returncode}:\n"
                                     f"{output.read_text(errors='replace')[-4000:]}")
        for run in cli.json("runs")["runs"]:
            if statuses(run).get(step_name) == status:
                return run
        time.sleep(0.5)
    raise AssertionError(f"no run showed {step_name} {status} within {within:.0f}s")


@pytest.mark.timeout(300)
def test_killed_run_is_interrupted_and_resume_reruns_only_what_did_not_finish(
        cli: Cli, tmp_path: Path) -> None:
    flag = tmp_path / "be-quick.flag"  # the spec is stored with the run: the step reads a file
    nb = write(tmp_path, "sleepy", notebook(
        code("import os\nimport time", mlplat={"role": "imports"}),
        step("first", "x = 1\nprint('CLI-TEST-FIRST-RAN')"),
        step("sleepy", f"time.sleep(0.1 if os.path.exists({str(flag)!r}) else 60)\ny = x + 1"),
    ))
    # the store exists before two processes open it at once (see the concurrent-open test)
    cli("db", "upgrade")
    output = tmp_path / "run.out"
    out = output.open("wb")
    proc = cli.popen("run", nb, "--json", stdout=out, stderr=subprocess.STDOUT,
                     start_new_session=True)
    family: list[psutil.Process] = []
    try:
        running = _wait_for_step(cli, proc, output, "sleepy", "running", within=60)
        first_before = by_name(running)["first"]
        assert first_before["status"] == "succeeded"
        # kernels live in sessions of their own: remember every descendant before the kill
        family = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(family, timeout=30)
        assert not alive, f"left behind after the CLI was killed: {alive}"

        shown = cli.json("show", running["id"])
        assert shown["status"] == "interrupted"
        assert statuses(shown) == {"first": "succeeded", "sleepy": "interrupted"}
        assert "resume" in shown["error"]

        flag.touch()
        resumed = cli.json("resume", running["id"])
        assert resumed["id"] == running["id"]
        assert resumed["status"] == "succeeded", resumed["error"]
        first, sleepy = by_name(resumed)["first"], by_name(resumed)["sleepy"]
        assert (sleepy["status"], sleepy["attempt"]) == ("succeeded", 2)
        assert (first["status"], first["attempt"]) == ("succeeded", 1)
        assert (first["id"], first["started_at"]) == (first_before["id"],
                                                      first_before["started_at"])
        log = cli("logs", running["id"]).stdout
        assert log.count("CLI-TEST-FIRST-RAN") == 1
        assert "--- step sleepy (attempt 2)" in log and "step first (attempt 2)" not in log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        proc.wait(timeout=30)
        out.close()


@pytest.mark.timeout(60)
def test_processes_opening_a_fresh_store_at_once_all_succeed(cli: Cli) -> None:
    procs = [cli.popen("runs", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(6)]
    results = [(p.wait(timeout=50), p.stderr.read().decode()[-600:]) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0] * 6, [err for rc, err in results if rc]


@pytest.mark.timeout(300)
def test_resume_from_another_directory_after_a_run_given_a_relative_path(
        cli: Cli, tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "nb").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "nb" / "data.txt").write_text("D")
    write(project / "nb", "rel", notebook(
        code("import os", mlplat={"role": "imports"}),
        step("read", "x = open('data.txt').read()"),
        step("check", "assert os.path.exists('fixed.flag'), 'not fixed'\ny = x * 2"),
    ))
    run = cli.json("run", "nb/rel.ipynb", cwd=project, expect=1)
    assert statuses(run) == {"read": "succeeded", "check": "failed"}
    (project / "nb" / "fixed.flag").touch()
    resumed = cli.json("resume", run["id"], cwd=elsewhere, expect=None)
    assert resumed["status"] == "succeeded", by_name(resumed)["check"]["evalue"]
