"""The serve process the extension starts: it never outlives the server, is never started
again once stopped, and its output goes to its log, not into the server's memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.server.serving import ServeChild
from jupyter_mlplat.serving.probe import ServingUnavailableError

pytestmark = pytest.mark.timeout(120)

#: A Jupyter server stand-in: starts its serve child, says where, then waits to be killed.
SERVER = """
import sys, time
from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.server.serving import ServeChild

child = ServeChild(MLPlat(), sys.argv[1])
url = child.ensure()
print(child._proc.pid, url, flush=True)
time.sleep(300)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_serve_child_stops_when_its_server_is_killed(tmp_path: Path):
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, f"the stand-in server exited with {server.wait()}"
        pid_text, url = line.split()
        child_pid = int(pid_text)
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{url}/v2/health/live", timeout=10) as answer:
            assert answer.status == 200

        server.send_signal(signal.SIGKILL)  # no chance to stop its child
        server.wait()
        deadline = time.monotonic() + 30
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.2)

        assert _gone(child_pid), "the serve process outlived the server that started it"
        assert "is gone; stopping" in (tmp_path / "serve.log").read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if child_pid is not None and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_a_stopped_serve_child_is_never_started_again(tmp_path: Path):
    child = ServeChild(MLPlat(), tmp_path)
    child.stop()

    with pytest.raises(ServingUnavailableError, match="shutting down"):
        child.ensure()
    assert child._proc is None and not (tmp_path / "serve.log").exists()


class _Chatty(ServeChild):
    """A child that prints a line per "request" once it listens, as a chatty model would."""

    def command(self, token_file: Path) -> list[str]:
        return [sys.executable, "-c",
                "import time\n"
                "print('serving on http://127.0.0.1:9', flush=True)\n"
                "for i in range(3000):\n"
                "    print('request', i, flush=True)\n"
                "time.sleep(60)\n"]


def test_output_after_start_goes_to_the_log_not_to_memory(tmp_path: Path):
    child = _Chatty(MLPlat(), tmp_path)
    try:
        assert child.ensure() == "http://127.0.0.1:9"
        log = tmp_path / "serve.log"
        deadline = time.monotonic() + 30
        while "request 2999" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the child's output did not reach serve.log"
            time.sleep(0.05)

        assert child._pump is not None and child._pump.lines.qsize() == 0
    finally:
        child.stop()
