"""Regressions found in review: resume of partial runs, exact parameter types, imports beside
the notebook, markup in error text, tensor metrics, a bad store URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlplat.pipeline.runs import RunService

from .conftest import imports, params, step

pytestmark = pytest.mark.timeout(240)


def test_resume_of_a_partial_run_keeps_its_skipped_steps(executor, make_nb, tmp_path):
    flag = tmp_path / "ok.flag"
    nb = make_nb(
        imports("import os"),
        step("a", "x = 1"),
        step("b", f"assert os.path.exists({str(flag)!r}), 'not yet'\ny = x + 1"),
    )
    flag.write_text("1")
    assert executor.run(nb).status == "succeeded"
    flag.unlink()
    failed = executor.run(nb, only="b", force=["b"])
    assert {n: s.status for n, s in failed.steps.items()} == {"a": "skipped", "b": "failed"}
    flag.write_text("1")
    resumed = executor.resume(failed.run_id)
    assert resumed.status == "succeeded"
    assert {n: s.status for n, s in resumed.steps.items()} == {"a": "skipped", "b": "succeeded"}


def test_parameters_keep_their_exact_type_in_the_kernel_and_on_resume(executor, make_nb,
                                                                      tmp_path, config):
    flag = tmp_path / "ok.flag"
    nb = make_nb(
        imports("import os"),
        params("shape = (2, 3)\nnames = {'a'}"),
        step("check", f"kind = type(shape).__name__ + ' ' + type(names).__name__\n"
                      f"assert os.path.exists({str(flag)!r}), 'not yet'"),
        step("report", "print(kind)\nout = kind"),
    )
    failed = executor.run(nb, {"shape": (4, 5)})
    assert failed.status == "failed"
    first_version = failed.steps["check"].version
    flag.write_text("1")
    resumed = executor.resume(failed.run_id)
    assert resumed.status == "succeeded"
    assert resumed.steps["check"].version == first_version  # same values, same version
    value = RunService(config, store=executor.store).load_output(failed.run_id, "check", "kind")
    assert value == "tuple set"


def test_imports_of_modules_beside_the_notebook_resolve(executor, make_nb, tmp_path):
    (tmp_path / "helper_mod.py").write_text("VALUE = 41\n")
    nb = make_nb(imports("import helper_mod"), step("use", "x = helper_mod.VALUE + 1"))
    outcome = executor.run(nb)  # the test runs from the repository root, not tmp_path
    assert outcome.status == "succeeded", outcome.error


def test_error_text_with_brackets_is_printed_literally(executor, make_nb, config, capsys):
    from jupyter_mlplat.cli import display

    nb = make_nb(step("bad", "raise ValueError('bad path [/data/in] for list[int]')"))
    outcome = executor.run(nb)
    run = RunService(config, store=executor.store).describe(outcome.run_id)
    display.print_run_summary(run)
    display.print_run(run)
    out = capsys.readouterr().out
    assert "[/data/in]" in out and "list[int]" in out


def test_tensor_and_numpy_scalars_are_metrics(tmp_path):
    import numpy as np
    import torch

    from jupyter_mlplat.errors import InvalidSpecError
    from jupyter_mlplat.tracking import api

    api.set_context(api.StepContext("r", 1, "s", str(tmp_path / "t.jsonl")))
    try:
        api.log_metric("a", torch.tensor(0.5))
        api.log_metric("b", np.float32(0.25))
        api.log_metric("c", np.array([0.75]))
        with pytest.raises(InvalidSpecError, match="expected a real number"):
            api.log_metric("d", torch.tensor([1.0, 2.0]))
    finally:
        api.set_context(None)
    _, points = api.read_records(str(tmp_path / "t.jsonl"))
    assert [(p["name"], p["value"]) for p in points] == [("a", 0.5), ("b", 0.25), ("c", 0.75)]


def test_a_bad_store_url_is_a_clear_error(tmp_path: Path):
    import os

    env = {**os.environ, "MLPLAT_STORE_URL": "nosuchdb://x"}
    out = subprocess.run([sys.executable, "-m", "jupyter_mlplat.cli.main", "runs"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert "cannot open the store nosuchdb://x" in out.stderr
    assert "MLPLAT_STORE_URL" in out.stderr and "Traceback" not in out.stderr


def test_partial_run_with_an_after_only_upstream_hits_the_cache(executor, make_nb):
    nb = make_nb(step("prepare", "import os"), step("work", "y = 2", after=["prepare"]))
    assert executor.run(nb).status == "succeeded"
    only = executor.run(nb, only="work")
    assert only.steps["work"].status == "cached"  # same version as in the full run


def test_an_executor_whose_run_was_taken_over_stops_and_keeps_the_new_status(executor, config):
    from jupyter_mlplat.store.sql import Store

    store = executor.store
    pid = store.pipeline_id("p", "/tmp/p.ipynb")
    run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path="/tmp/p.ipynb",
                              parameters={}, options={}, steps=["a"])
    assert store.heartbeat(run_id) is False
    other = Store(config.store_url, config.owner, sweep=False)
    other.finish_run(run_id, "interrupted", "seen as stale elsewhere")
    assert store.heartbeat(run_id) is True  # the executor stops
    store.finish_run(run_id, "cancelled", only_if_ours=False)
    assert store.run_row(run_id).status == "cancelled"
    other.claim_run(run_id, ("cancelled",))
    from jupyter_mlplat.store import orm

    with other.session() as s:  # the run now belongs to a process elsewhere
        s.get(orm.Run, run_id).host = "elsewhere"
    store.finish_run(run_id, "failed", only_if_ours=True)
    assert store.run_row(run_id).status == "running"


def test_a_store_url_whose_driver_is_missing_is_a_clear_error():
    import os

    env = {**os.environ, "MLPLAT_STORE_URL": "postgresql+nosuchdriver://u:secret@127.0.0.1/x"}
    out = subprocess.run([sys.executable, "-m", "jupyter_mlplat.cli.main", "runs"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "secret" not in out.stderr and "u:***@127.0.0.1" in out.stderr
