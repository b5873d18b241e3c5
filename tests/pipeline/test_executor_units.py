"""Executor helpers without a cluster: parameter typing, selections, fingerprints, progress."""

from __future__ import annotations

import pytest

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.pipeline.executor import RunOutcome, StepState, select_steps
from jupyter_mlplat.pipeline.notebook import parse_notebook
from jupyter_mlplat.pipeline.parameters import parse_cli_value, resolve_parameters
from jupyter_mlplat.pipeline.versions import env_fingerprint, pipeline_version

from .conftest import params, step
from .nbbuild import notebook


@pytest.fixture
def spec():
    nb = notebook(
        params("n = 10\nrate = 0.5\nname = 'x'\nflag = True\nitems = [1, 2]\nexpr = 2 * 3"),
        step("a", "x = n * rate"),
        step("b", "y = x + 1"),
        step("c", "z = x * 2"),
        step("d", "w = y + z"),
    )
    return parse_notebook(nb, path="/tmp/p.ipynb")


def test_cli_values_take_the_type_of_the_default(spec):
    assert parse_cli_value("n", "5", spec) == 5
    assert parse_cli_value("rate", "1", spec) == 1.0
    assert parse_cli_value("name", "5", spec) == "5"  # a str stays a str
    assert parse_cli_value("flag", "false", spec) is False
    assert parse_cli_value("items", "[3, 4]", spec) == [3, 4]
    assert parse_cli_value("expr", "7", spec) == 7  # no literal default: papermill's rules
    assert parse_cli_value("expr", "hello", spec) == "hello"
    with pytest.raises(InvalidSpecError, match="expects int.*got 'ten'"):
        parse_cli_value("n", "ten", spec)
    with pytest.raises(InvalidSpecError, match="expects bool"):
        parse_cli_value("flag", "maybe", spec)
    with pytest.raises(InvalidSpecError, match="expects list"):
        parse_cli_value("items", "{'a': 1}", spec)
    with pytest.raises(InvalidSpecError, match="unknown parameter 'nope'.*n, rate"):
        parse_cli_value("nope", "1", spec)


def test_python_parameters_are_type_checked(spec):
    resolved = resolve_parameters(spec, {"n": 3, "rate": 2})
    assert resolved["n"] == 3 and resolved["rate"] == 2 and resolved["name"] == "x"
    assert "expr" not in resolved  # evaluated in the kernel, not here
    with pytest.raises(InvalidSpecError, match="expects int"):
        resolve_parameters(spec, {"n": True})
    with pytest.raises(InvalidSpecError, match="expects str"):
        resolve_parameters(spec, {"name": 3})


def test_selections(spec):
    assert select_steps(spec) == ["a", "b", "c", "d"]
    assert select_steps(spec, only="b") == ["b"]
    assert select_steps(spec, from_step="b") == ["b", "d"]
    assert select_steps(spec, to="c") == ["a", "c"]
    with pytest.raises(InvalidSpecError, match="unknown step 'q'; the pipeline's steps: a, b"):
        select_steps(spec, only="q")
    with pytest.raises(InvalidSpecError, match="one of"):
        select_steps(spec, only="a", to="b")


def test_fingerprint_and_pipeline_version_identify_the_exact_spec(spec):
    from dataclasses import replace

    assert env_fingerprint("python3") == env_fingerprint("python3")
    assert env_fingerprint("python3") != env_fingerprint("other")
    assert pipeline_version(spec) == pipeline_version(replace(spec))
    # resume runs the stored spec: another path or another step option is another version
    assert pipeline_version(replace(spec, path="/elsewhere/p.ipynb")) != pipeline_version(spec)
    retried = replace(spec, steps=(replace(spec.steps[0], retries=2), *spec.steps[1:]))
    assert pipeline_version(retried) != pipeline_version(spec)


def test_notebook_progress_widget_renders_steps():
    pytest.importorskip("ipywidgets")
    from jupyter_mlplat.widgets import RunProgress

    progress = RunProgress()
    states = {"load": StepState("load"), "train": StepState("train")}
    progress.on_run_start("abc123", None, states)
    states["load"].status, states["load"].duration = "succeeded", 1.25
    progress.on_step_update(states["load"])
    html = progress.widget.value
    assert "abc123" in html and "load" in html and "succeeded" in html and "1.25s" in html
    states["train"].status, states["train"].cached = "cached", True
    progress.on_run_complete(RunOutcome("abc123", "succeeded", states, duration=2.0))
    assert "cached" in progress.widget.value and "succeeded in 2.00s" in progress.widget.value


def test_fingerprint_reads_the_kernels_own_environment(tmp_path, monkeypatch):
    import json

    from jupyter_mlplat.pipeline import versions as executor

    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\necho \'{"python": [3, 9, 0], "packages": {"numpy": "1.0"}}\'\n')
    fake.chmod(0o755)
    for name, exe in (("other", str(fake)), ("broken", str(tmp_path / "missing-python"))):
        spec = tmp_path / "kernels" / name
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps(
            {"argv": [exe, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
             "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setattr(executor, "_FINGERPRINTS", {})
    assert executor.kernel_interpreter("other") == str(fake)
    other = executor.env_fingerprint("other")
    assert other == executor.sha256_json(
        {"kernel": "other", "python": [3, 9, 0], "packages": {"numpy": "1.0"}})
    assert executor.env_fingerprint("broken")  # an interpreter that cannot run: no crash
    assert executor.kernel_interpreter("python3") == __import__("sys").executable
