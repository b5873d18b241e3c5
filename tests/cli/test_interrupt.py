"""Ctrl-C in a terminal: the whole process group gets SIGINT; the run ends cancelled, exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.nbbuild import code, notebook, write

pytestmark = pytest.mark.timeout(180)


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlplat.cli.main", *args],
                          capture_output=True, text=True, timeout=120, **kw)


def test_ctrl_c_cancels_the_run_and_stops_its_kernels(tmp_path: Path):
    nb = write(tmp_path, "sleepy", notebook(
        code("import time", mlplat={"role": "imports"}),
        code("x = 1", mlplat={"step": "first"}),
        code("time.sleep(120)\ny = x", mlplat={"step": "sleepy"}),
    ))
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlplat.cli.main", "run", str(nb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 90
        run_id = None
        seen = ""
        while time.time() < deadline and run_id is None and proc.poll() is None:
            listed = _cli("runs", "--json")
            seen = listed.stdout + listed.stderr
            out = listed.stdout
            for run in json.loads(out)["runs"] if out.strip() else []:
                if any(s["name"] == "sleepy" and s["status"] == "running" for s in run["steps"]):
                    run_id = run["id"]
            time.sleep(0.5)
        if run_id is None:
            proc.kill()
            pytest.fail(f"the sleepy step never started; runs: {seen[-2000:]}; "
                        f"cli: {proc.communicate()[1][-2000:]}")
        time.sleep(1.0)  # the kernel is inside time.sleep
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        shown = json.loads(_cli("show", run_id, "--json").stdout)
        assert shown["status"] == "cancelled"
        steps = {s["name"]: s["status"] for s in shown["steps"]}
        assert steps["first"] == "succeeded" and steps["sleepy"] == "cancelled"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
