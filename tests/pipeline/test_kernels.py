"""The kernel pool: forked kernels are fresh, interruptible and leave nothing behind."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from jupyter_mlplat.pipeline.kernels import (
    KernelKey,
    KernelPool,
    RunCancelledError,
    is_alive,
    shutdown,
    warm_up,
)
from jupyter_mlplat.pipeline.zygote import forkable

pytestmark = pytest.mark.timeout(120)

KEY = KernelKey("python3", (("OMP_NUM_THREADS", "1"),), "import json\nSHARED = 1", "/tmp")


def _run(km, code: str, timeout: float = 30) -> dict:
    async def go():
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=30)
            out = []
            reply = await kc.execute_interactive(
                code, timeout=timeout, output_hook=lambda m: out.append(m),
                allow_stdin=False)
            text = "".join(m["content"].get("text", "") for m in out
                           if m["msg_type"] == "stream")
            return {"status": reply["content"]["status"], "text": text,
                    "ename": reply["content"].get("ename")}
        finally:
            kc.stop_channels()

    return asyncio.run(go())


def test_forked_kernels_are_fresh_and_start_fast():
    assert forkable({"OMP_NUM_THREADS": "1"}) and not forkable({"OMP_NUM_THREADS": "4"})
    pool = KernelPool()
    try:
        first = pool._start(KEY)
        t0 = time.time()
        second = pool._start(KEY)
        started = time.time() - t0
        assert started < 3.0  # a fork, not a new interpreter (loose: the machine may be busy)
        assert pool._zygotes[KEY] is not None
        a = _run(first, "import os, json\nx = 41\nprint(os.getpid(), os.getcwd(), "
                        "'json' in globals())")
        b = _run(second, "import os\nprint(os.getpid(), 'x' in globals())")
        pid_a, cwd_a, json_a = a["text"].split()
        pid_b, has_x = b["text"].split()
        assert pid_a != pid_b and cwd_a == "/tmp"
        zygote_pid = pool._zygotes[KEY].proc.pid
        assert {psutil.Process(int(p)).ppid() for p in (pid_a, pid_b)} == {zygote_pid}  # forked
        assert has_x == "False"  # nothing leaks from one kernel to the next
        assert json_a == "True"
    finally:
        for km in (first, second):
            shutdown(km)
        pool.close()


def test_forked_kernel_interrupt_and_shutdown_leave_no_process():
    pool = KernelPool()
    km = pool._start(KEY)
    pid = int(_run(km, "import os; print(os.getpid())")["text"])
    result: dict = {}
    import threading

    running = threading.Event()  # the cell has started: the interrupt meets a busy kernel

    def on_output(msg: dict) -> None:
        if msg["msg_type"] == "stream" and "in" in msg["content"].get("text", ""):
            running.set()

    async def long_cell():
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=30)
            reply = await kc.execute_interactive(
                "import time\nprint('in', flush=True)\ntime.sleep(60)", timeout=60,
                output_hook=on_output)
            result["ename"] = reply["content"].get("ename")
        finally:
            kc.stop_channels()

    thread = threading.Thread(target=lambda: asyncio.run(long_cell()))
    thread.start()
    assert running.wait(30), "the long cell never started"
    asyncio.run(km.interrupt_kernel())
    thread.join(20)
    assert result.get("ename") == "KeyboardInterrupt"
    assert is_alive(km)
    zygote_pid = pool._zygotes[KEY].proc.pid
    shutdown(km)
    pool.close()
    deadline = time.time() + 5
    while time.time() < deadline and psutil.pid_exists(pid):
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not psutil.pid_exists(zygote_pid) or \
        psutil.Process(zygote_pid).status() == psutil.STATUS_ZOMBIE


def test_a_cancelled_run_gets_no_kernel():
    pool = KernelPool(start_kernel=lambda key: pytest.fail("must not start a kernel"))
    pool.cancel("r1")
    with pytest.raises(RunCancelledError):
        pool.acquire(KEY, "r1")
    pool.close()


def test_warm_up_failure_is_reported():
    pool = KernelPool(fork=False)
    km = pool._start(KernelKey("python3"))
    try:
        with pytest.raises(RuntimeError, match="warm-up failed: ModuleNotFoundError"):
            warm_up(km, "import no_such_module_here")
    finally:
        shutdown(km)
        pool.close()
