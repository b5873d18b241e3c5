"""The executor on a real LocalCluster with real kernels: runs, cache, partial runs, failures."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.errors import ConflictError, InvalidSpecError
from jupyter_mlplat.pipeline.executor import PipelineExecutor
from jupyter_mlplat.pipeline.runs import RunService

from .conftest import imports, params, step

pytestmark = pytest.mark.timeout(240)


def statuses(outcome: Any) -> dict[str, str]:
    return {name: st.status for name, st in outcome.steps.items()}


def diamond(make_nb: Any, sleep: float = 0.0, extra_a: str = "", n: int = 10) -> Path:
    return make_nb(
        imports("import time\nimport numpy as np"),
        params(f"n = {n}\nscale = 2.0"),
        step("load", "data = np.arange(n, dtype=float)"),
        step("featurize_a", f"time.sleep({sleep})\na = data * scale{extra_a}"),
        step("featurize_b", f"time.sleep({sleep})\nb = data + 1"),
        step("train", "total = float((a + b).sum())\nimport jupyter_mlplat as mlp\n"
                      "mlp.log_metric('total', total)\nmlp.log_param('kind', 'sum')"),
    )


def test_diamond_runs_independent_steps_in_parallel_and_passes_data(executor, make_nb, config):
    nb = diamond(make_nb, sleep=2.0)
    outcome = executor.run(nb)
    assert outcome.status == "succeeded", outcome.error
    assert set(statuses(outcome).values()) == {"succeeded"}
    run = RunService(config, store=executor.store).describe(outcome.run_id)
    steps = {s.name: s for s in run.steps}
    a, b = steps["featurize_a"], steps["featurize_b"]
    # observed, not assumed: the two 2 s steps overlap in time (on two different workers)
    assert a.started_at < b.finished_at and b.started_at < a.finished_at
    assert run.metrics["total"] == pytest.approx(sum(x * 2 + x + 1 for x in range(10)))
    assert run.params["kind"] == "sum"
    assert {o.name for o in steps["load"].outputs} == {"data"}
    assert {i.name for i in steps["train"].inputs} == {"a", "b"}
    value = RunService(config, store=executor.store).load_output(outcome.run_id, "featurize_a",
                                                                 "a")
    assert list(value) == [x * 2.0 for x in range(10)]
    # the executed notebook of every step is kept and holds the step's code
    nb_json = json.loads(Path(steps["train"].executed_notebook).read_text())
    assert any("total = float" in "".join(c["source"]) for c in nb_json["cells"])


def test_cache_hits_comment_edits_and_invalidation(executor, make_nb):
    nb = diamond(make_nb)
    first = executor.run(nb)
    assert first.status == "succeeded"
    again = executor.run(nb)
    assert set(statuses(again).values()) == {"cached"}
    # a comment / blank-line edit changes no version
    nb2 = diamond(make_nb, extra_a="  # a comment\n\n")
    assert set(statuses(executor.run(nb2)).values()) == {"cached"}
    # a code change re-runs that step and its descendants only
    nb3 = diamond(make_nb, extra_a=" + 1")
    s = statuses(executor.run(nb3))
    assert s == {"load": "cached", "featurize_a": "succeeded", "featurize_b": "cached",
                 "train": "succeeded"}
    # a parameter change re-runs the steps that read it (and what depends on their outputs)
    s = statuses(executor.run(nb3, {"scale": 3.0}))
    assert s == {"load": "cached", "featurize_a": "succeeded", "featurize_b": "cached",
                 "train": "succeeded"}
    s = statuses(executor.run(nb3, {"n": 5}))
    assert set(s.values()) == {"succeeded"}
    # --force bypasses the cache for the named step only (same output -> train stays cached)
    s = statuses(executor.run(nb3, {"n": 5}, force=["load"]))
    assert s == {"load": "succeeded", "featurize_a": "cached", "featurize_b": "cached",
                 "train": "cached"}


def test_partial_runs_only_from_to(executor, make_nb):
    nb = diamond(make_nb)
    with pytest.raises(InvalidSpecError, match=r"featurize_a \(a\)"):
        executor.run(nb, only="train")  # nothing produced a/b yet: fail at once, naming them
    executor.run(nb)
    only = executor.run(nb, only="train", force=["train"])
    assert statuses(only) == {"load": "skipped", "featurize_a": "skipped",
                              "featurize_b": "skipped", "train": "succeeded"}
    frm = executor.run(nb, from_step="featurize_a", force=["featurize_a"])
    assert statuses(frm)["load"] == "skipped" and statuses(frm)["featurize_b"] == "skipped"
    assert statuses(frm)["featurize_a"] == "succeeded"
    to = executor.run(nb, to="featurize_b")
    assert statuses(to) == {"load": "cached", "featurize_a": "skipped",
                            "featurize_b": "cached", "train": "skipped"}
    with pytest.raises(InvalidSpecError, match="unknown step 'nope'"):
        executor.run(nb, only="nope")


def test_failed_step_records_error_cell_and_blocks_descendants_then_resume(executor, make_nb,
                                                                            tmp_path, config):
    flag = tmp_path / "fixed.flag"
    nb = make_nb(
        imports("import os"),
        step("ok", "x = 1"),
        step("other", "y = 2"),
        step("flaky", f"z = x + 1\nif not os.path.exists({str(flag)!r}):\n"
                      "    raise ValueError('not fixed yet')"),
        step("after", "w = z + y"),
    )
    outcome = executor.run(nb)
    assert outcome.status == "failed"
    assert statuses(outcome) == {"ok": "succeeded", "other": "succeeded", "flaky": "failed",
                                 "after": "upstream_failed"}
    run = RunService(config, store=executor.store).describe(outcome.run_id)
    flaky = next(s for s in run.steps if s.name == "flaky")
    assert flaky.ename == "ValueError" and "not fixed yet" in flaky.evalue
    assert flaky.source_cell_index == 3  # the notebook cell that raised
    executed = json.loads(Path(flaky.executed_notebook).read_text())
    bad = executed["cells"][flaky.error_cell_index + 2]  # papermill inserted two marker cells
    assert any(o.get("ename") == "ValueError" for o in bad.get("outputs", []))
    with pytest.raises(ConflictError):
        RunService(config, store=executor.store).cancel(outcome.run_id)
    flag.write_text("ok")
    resumed = executor.resume(outcome.run_id)
    assert resumed.run_id == outcome.run_id and resumed.status == "succeeded"
    rows = executor.store.step_runs(outcome.run_id, latest=False)
    attempts = {}
    for r in rows:
        attempts.setdefault(r.step_name, []).append(r.status)
    assert attempts["ok"] == ["succeeded"] and attempts["other"] == ["succeeded"]
    assert attempts["flaky"] == ["failed", "succeeded"]
    assert attempts["after"] == ["upstream_failed", "succeeded"]
    with pytest.raises(ConflictError, match="succeeded"):
        executor.resume(outcome.run_id)


def test_unserialisable_output_fails_the_producer_naming_variable(executor, make_nb, config):
    nb = make_nb(step("produce", "gen = (i for i in range(3))"), step("consume", "n = list(gen)"))
    outcome = executor.run(nb)
    assert statuses(outcome) == {"produce": "failed", "consume": "upstream_failed"}
    run = RunService(config, store=executor.store).describe(outcome.run_id)
    produce = run.steps[0]
    assert produce.ename == "SerializationError"
    assert "'gen'" in produce.evalue and "generator" in produce.evalue
    assert "produce" in produce.evalue


def test_gpu_step_without_gpu_worker_fails_fast(executor, make_nb):
    executor.config.gpu_fallback = "fail"
    nb = make_nb(step("prep", "x = 1"), step("train", "y = x * 2", gpu=1))
    t0 = time.time()
    outcome = executor.run(nb)
    assert time.time() - t0 < 60
    assert statuses(outcome) == {"prep": "succeeded", "train": "failed"}
    assert "needs 1 GPU" in outcome.steps["train"].message
    assert "no worker offers" in outcome.steps["train"].message


def test_retries_and_timeout(executor, make_nb, tmp_path):
    counter = tmp_path / "count.txt"
    nb = make_nb(
        imports("import pathlib, time"),
        step("flaky", f"p = pathlib.Path({str(counter)!r})\nk = int(p.read_text()) if p.exists() "
                      "else 0\np.write_text(str(k + 1))\nassert k >= 1, 'first attempt fails'",
             retries=1),
        step("slow", "time.sleep(60)", timeout=3),
    )
    t0 = time.time()
    outcome = executor.run(nb)
    assert time.time() - t0 < 50
    assert outcome.steps["flaky"].status == "succeeded" and outcome.steps["flaky"].attempt == 2
    assert outcome.steps["slow"].status == "failed"
    assert "Timeout" in outcome.steps["slow"].message or "timed out" in \
        outcome.steps["slow"].message.lower()


def test_cancel_from_another_process_handle_stops_kernels(executor, make_nb, config):
    nb = make_nb(imports("import time"), step("sleepy", "time.sleep(120)\nx = 1"),
                 step("next", "y = x"))
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("o", executor.run(nb)))
    thread.start()
    service = RunService(config)  # its own Store, as `jupyter mlplat cancel` would have
    deadline = time.time() + 60
    run_id = None
    while time.time() < deadline and run_id is None:
        running = [r for r in service.list() if r.status == "running"
                   and any(s.status == "running" for s in service.describe(r.id).steps)]
        run_id = running[0].id if running else None
        time.sleep(0.2)
    assert run_id, "the run never started its step"
    t0 = time.time()
    described = service.cancel(run_id, wait=30)
    thread.join(30)
    assert not thread.is_alive()
    assert time.time() - t0 < 30
    assert described.status == "cancelled"
    assert result["o"].status == "cancelled"
    assert statuses(result["o"]) == {"sleepy": "cancelled", "next": "cancelled"}


def test_metrics_params_and_pipeline_metrics_tag(executor, make_nb, config):
    from .nbbuild import code

    nb = make_nb(
        step("fit", "import jupyter_mlplat as mlp\nfor epoch in range(3):\n"
                    "    mlp.log_metric('loss', 1.0 / (epoch + 1), step=epoch)\n"
                    "mlp.log_param('lr', 0.1)\nacc = 0.93"),
        code("print(acc)", tags=["pipeline-metrics"]),
    )
    outcome = executor.run(nb)
    assert outcome.status == "succeeded", outcome.error
    run = RunService(config, store=executor.store).describe(outcome.run_id)
    assert run.metrics == {"loss": pytest.approx(1 / 3), "acc": pytest.approx(0.93)}
    assert run.params == {"lr": 0.1}
    points = [m for m in executor.store.metrics([outcome.run_id]) if m.name == "loss"]
    assert [p.step for p in points] == [0, 1, 2]
    frame = RunService(config, store=executor.store).frame()
    assert frame.loc[0, "metric.acc"] == pytest.approx(0.93)
    assert frame.loc[0, "param.lr"] == 0.1
    # a cached rerun keeps the metrics visible on the new run
    again = RunService(config, store=executor.store).describe(executor.run(nb).run_id)
    assert again.metrics["acc"] == pytest.approx(0.93)


def test_parameters_are_validated(executor, make_nb):
    nb = diamond(make_nb)
    with pytest.raises(InvalidSpecError, match="unknown parameter 'nope'"):
        executor.run(nb, {"nope": 1})
    with pytest.raises(InvalidSpecError, match="expects int"):
        executor.run(nb, {"n": "ten"})


def test_non_finite_float_parameters_reach_the_step_as_floats(executor, make_nb):
    """``repr(nan)`` is ``nan``: a NameError in the step's parameters cell."""
    nb = make_nb(
        params("rate = 0.5\nbounds = [0.0, 1.0]"),
        step("check", "import math\n"
                      "assert math.isnan(rate), rate\n"
                      "assert bounds[0] == -math.inf and bounds[1] == math.inf, bounds\n"
                      "ok = True"),
    )
    outcome = executor.run(nb, {"rate": float("nan"), "bounds": [-math.inf, math.inf]})
    assert outcome.status == "succeeded", outcome.error


def test_source_literal_round_trips():
    from jupyter_mlplat.pipeline.parameters import source_literal

    for value in (1, "a'b", [1.5, (2,), {"k": {3}}], (), {}, set(), -0.0, None, True):
        assert eval(source_literal(value)) == value  # noqa: S307 - our own literals
    assert source_literal((math.inf,)) == "(float('inf'),)"
    assert math.isnan(eval(source_literal({"x": [math.nan]}))["x"][0])  # noqa: S307


def test_one_executor_per_process_does_not_leak_between_tests(config, make_nb, cluster):
    """A fresh executor on the shared cluster sees only its own store (owner scoped)."""
    ex = PipelineExecutor(config, cluster=cluster)
    assert ex.store.runs() == []
