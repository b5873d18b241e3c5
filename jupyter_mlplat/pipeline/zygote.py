"""Forked step kernels: a warm template process forks a fresh ipykernel for every step.

A step kernel is used once (a reused kernel leaks state), so each one would pay Python start-up,
ipykernel's imports and the pipeline's own imports (numpy, scikit-learn, ...): ~1.4 s of CPU on
the machines this runs on, most of a small step's cost. A *zygote* pays them once per kernel
key: it imports ipykernel and the pipeline's imports, then forks a child per kernel; the child
inherits the imported modules (copy-on-write) and starts an ``IPKernelApp`` on the connection
file jupyter_client wrote. No kernel state exists before the fork, so every child is as fresh
as a new kernel.

jupyter_client manages what it launched, so it launches ``spawn``: a tiny process that asks the
zygote for a child, relays interrupt/terminate signals to it and exits when it exits. The child
watches ``spawn`` and exits when it is gone (``kill`` on ``spawn`` cannot be relayed); ``spawn``
stops the child when its own parent is gone, as ipykernel's parent poller does for a kernel.

Forking is only used where it is safe: no BLAS/OpenMP thread pools in the zygote (one thread
configured), no GPU.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

PROTOCOL_TIMEOUT = 30.0


def _send(sock: socket.socket, payload: dict[str, Any]) -> None:
    sock.sendall(json.dumps(payload).encode() + b"\n")


def _recv(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("zygote closed the connection")
        data += chunk
    return json.loads(data)


# -- the zygote ---------------------------------------------------------------------------------


def _watch_parent(pid: int) -> None:
    """In a forked kernel: exit when the ``spawn`` process jupyter_client manages is gone."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)


def _child(conn_file: str, spawn_pid: int, cwd: str | None) -> None:
    """Become a kernel (runs in the forked child; never returns)."""
    try:
        os.setpgid(0, 0)  # our own group: a terminal's Ctrl-C reaches spawn, which relays it
    except OSError:
        pass
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=_watch_parent, args=(spawn_pid,), daemon=True).start()
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", conn_file, "--IPKernelApp.log_level=ERROR"])
    app.start()
    os._exit(0)


def serve(sock_path: str, warmup: str) -> None:
    """Run the zygote: import, then fork a kernel per request on ``sock_path``."""
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401  (the expensive part of a kernel's start)

    exec(compile(warmup, "<mlplat-warmup>", "exec"), {"__name__": "__mlplat_zygote__"})
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(16)
    server.settimeout(1.0)  # no watcher thread here: forking a multi-threaded process is unsafe
    parent = os.getppid()
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)  # the pool stops reading; kernels inherit this
    os.dup2(devnull, 1)
    os.close(devnull)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the pool that started us is gone: so are we
                import shutil

                shutil.rmtree(os.path.dirname(sock_path), ignore_errors=True)
                return
            continue
        conn.settimeout(PROTOCOL_TIMEOUT)
        with conn:
            try:
                req = _recv(conn)
            except (ConnectionError, ValueError):
                continue
            pid = os.fork()
            if pid == 0:  # the child
                server.close()
                conn.close()
                _child(req["connection_file"], req["spawn_pid"], req.get("cwd"))
            _send(conn, {"pid": pid})


# -- spawn: what jupyter_client launches -------------------------------------------------------


def spawn(sock_path: str, conn_file: str) -> int:
    """Ask the zygote for a kernel on ``conn_file``; stand in for it until it exits."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(PROTOCOL_TIMEOUT)
        sock.connect(sock_path)
        _send(sock, {"connection_file": conn_file, "spawn_pid": os.getpid(),
                     "cwd": os.getcwd()})
        child = int(_recv(sock)["pid"])

    def relay(signum: int, frame: Any) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass
        if signum == signal.SIGTERM:
            sys.exit(0)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, relay)
    parent = os.getppid()
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return 0
        if os.getppid() != parent:  # whoever started the kernel is gone (as ipykernel checks)
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return 0
        time.sleep(0.1)


# -- the pool side -------------------------------------------------------------------------------


class Zygote:
    """A running zygote for one kernel key (started by the pool, stopped with it)."""

    def __init__(self, env: dict[str, str], warmup: str, cwd: str | None) -> None:
        import subprocess
        import tempfile

        self.folder = tempfile.mkdtemp(prefix="mlplat-zygote-")
        self.sock_path = os.path.join(self.folder, "sock")
        # Its stderr (and its kernels') goes to a file, not ours: a kernel that outlives us by
        # a moment must not hold our caller's pipe open (`jupyter mlplat run | tee` would wait).
        with open(os.path.join(self.folder, "zygote.log"), "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_mlplat.pipeline.zygote", "serve",
                 self.sock_path],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env,
                cwd=cwd or None, text=True,
            )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(warmup)
        self.proc.stdin.close()
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"the kernel zygote did not start (exit {self.proc.poll()})")
        self.proc.stdout.close()

    def argv(self) -> list[str]:
        """The command jupyter_client launches for one kernel."""
        return [sys.executable, "-m", "jupyter_mlplat.pipeline.zygote", "spawn", self.sock_path,
                "-f", "{connection_file}"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        import shutil

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def forkable(env: dict[str, str]) -> bool:
    """Forking is safe only without BLAS/OpenMP thread pools and without CUDA in the zygote."""
    if not hasattr(os, "fork") or sys.platform == "darwin":
        return False
    threads = env.get("OMP_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return threads == "1"


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(argv[1], sys.stdin.read())
        return 0
    if argv[:1] == ["spawn"] and "-f" in argv[2:-1]:
        # jupyter_client may append kernel arguments (log level): the child sets its own
        return spawn(argv[1], argv[argv.index("-f", 2) + 1])
    print("usage: python -m jupyter_mlplat.pipeline.zygote serve SOCK | spawn SOCK -f CONN",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
