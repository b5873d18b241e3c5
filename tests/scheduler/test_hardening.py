"""A scheduler for several owners and its Dask workers are non-dumpable: the kernels it starts
(same OS user, root included) cannot read their environment or memory. Each check runs in a
process of its own, so this test process stays as it is."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from jupyter_mlplat.scheduler import hardening

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
SECRET = "mlplat-secret-7f3a9c"

#: What a kernel started by the process would try: read the environment and open the memory
#: of process PID; prints one JSON line.
PEEK = r'''
import json, sys
pid, out = int(sys.argv[1]), {}
try:
    with open(f"/proc/{pid}/environ", "rb") as f:
        out["environ"] = "secret" if sys.argv[2].encode() in f.read() else "read"
except PermissionError:
    out["environ"] = "PermissionError"
try:
    open(f"/proc/{pid}/mem", "rb").close()
    out["mem"] = "opened"
except PermissionError:
    out["mem"] = "PermissionError"
print(json.dumps(out))
'''

SCHEDULER = r'''
import json, os, subprocess, sys
from jupyter_mlplat.scheduler.hardening import harden_process, is_dumpable
if sys.argv[1] == "1":
    assert harden_process() is True
peek = subprocess.run([sys.executable, "-c", sys.argv[2], str(os.getpid()), sys.argv[3]],
                      capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
                      check=True)
print(json.dumps({"dumpable": is_dumpable(), "peek": json.loads(peek.stdout)}))
'''

WORKERS = r'''
import json, os, subprocess, sys
from distributed import Client, LocalCluster
from jupyter_mlplat.scheduler.hardening import harden_dask_workers, harden_process, is_dumpable
if sys.argv[1] == "1":
    harden_process()
    harden_dask_workers()
with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                  silence_logs=40) as cluster, Client(cluster) as client:
    ((pid, dumpable),) = client.run(lambda: (os.getpid(), is_dumpable())).values()
    peek = subprocess.run([sys.executable, "-c", sys.argv[2], str(pid), sys.argv[3]],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
                          check=True)
print(json.dumps({"worker": pid != os.getpid(), "dumpable": dumpable,
                  "peek": json.loads(peek.stdout)}))
'''


def _run(script: str, harden: bool) -> dict:
    env = {**os.environ, "MLPLAT_TEST_SECRET": SECRET}
    proc = subprocess.run([sys.executable, "-c", script, "1" if harden else "0", PEEK, SECRET],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@linux
def test_a_hardened_process_hides_its_environment_and_memory_from_what_it_starts() -> None:
    plain = _run(SCHEDULER, harden=False)
    assert plain == {"dumpable": True, "peek": {"environ": "secret", "mem": plain["peek"]["mem"]}}
    hardened = _run(SCHEDULER, harden=True)
    assert hardened == {"dumpable": False,
                        "peek": {"environ": "PermissionError", "mem": "PermissionError"}}


@linux
def test_the_dask_workers_it_starts_are_hidden_too() -> None:
    plain = _run(WORKERS, harden=False)
    assert plain["worker"] and plain["dumpable"] is True
    assert plain["peek"]["environ"] == "secret"  # a worker inherits the scheduler's secrets
    hardened = _run(WORKERS, harden=True)
    assert hardened == {"worker": True, "dumpable": False,
                        "peek": {"environ": "PermissionError", "mem": "PermissionError"}}


def test_elsewhere_than_linux_it_does_nothing_and_says_so(monkeypatch, caplog) -> None:
    monkeypatch.setattr(hardening.sys, "platform", "darwin")
    with caplog.at_level(logging.DEBUG, logger=hardening.__name__):
        assert hardening.make_non_dumpable() is False
        assert hardening.drop_inspection_capabilities() is False
        assert hardening.is_dumpable() is None
    assert "not on Linux (darwin)" in caplog.text


def test_the_worker_preload_is_added_once() -> None:
    import dask

    with dask.config.set({"distributed.worker.preload": ["team.preload"]}):
        hardening.harden_dask_workers()
        hardening.harden_dask_workers()
        assert dask.config.get("distributed.worker.preload") == [
            "team.preload", hardening.WORKER_PRELOAD]


KERNEL = r'''
import json, os, subprocess, sys, time
from jupyter_mlplat.scheduler.hardening import drop_inspection_capabilities
drop_inspection_capabilities()  # what the scheduler does: its kernels cannot regain them
env = {"PATH": os.environ["PATH"], "SECRET": sys.argv[3]}
if sys.argv[1] == "1":
    from jupyter_mlplat.scheduler.isolation import kernel_pythonpath
    env["PYTHONPATH"] = kernel_pythonpath()
kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
try:
    time.sleep(1.0)  # started, sitecustomize run
    peek = subprocess.run([sys.executable, "-c", sys.argv[2], str(kernel.pid), sys.argv[3]],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
                          check=True)
finally:
    kernel.kill()
print(peek.stdout.strip())
'''


@linux
@pytest.mark.parametrize("hardened", [True, False])
def test_one_owners_kernel_cannot_read_another_owners_kernel(hardened: bool) -> None:
    """Kernels of several owners run as one OS user: each makes itself non-dumpable on start
    (the kernel site's sitecustomize), so its firing token is out of the others' reach."""
    proc = subprocess.run([sys.executable, "-c", KERNEL, "1" if hardened else "0", PEEK, SECRET],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    peek = json.loads(proc.stdout.strip().splitlines()[-1])
    if hardened:
        assert peek == {"environ": "PermissionError", "mem": "PermissionError"}
    else:  # the control: an ordinary process of the same user is readable
        assert peek["environ"] == "secret"
