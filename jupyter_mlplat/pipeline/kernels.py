"""The warm kernel pool and the papermill engine that uses it.

A step's fixed cost is mostly kernel start-up and re-importing numpy / scikit-learn / torch. The
pool keeps pre-started kernels per ``KernelKey`` (kernel spec, environment, warm-up code = the
pipeline's imports cell), so a step gets a kernel whose imports already ran. Each kernel runs one
step only and is then shut down: a reused kernel leaks state between steps (numpy print options,
``os.environ``, background threads), a kernel used once matches a fresh one.

``WarmKernelEngine`` is registered as papermill's ``mlplat`` engine (papermill's published
``papermill.engine`` entry point). It runs papermill's own notebook client against the kernel it
is handed and then cleans up what nbclient leaves behind for kernels it does not own (the kernel
client's channels; ~12 file descriptors per step otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Threads variables set from a step's ``threads`` option (BLAS, OpenMP, torch).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class KernelKey:
    """What makes two kernels interchangeable."""

    kernel_name: str
    env: tuple[tuple[str, str], ...] = ()
    warmup: str = ""  # code run before the kernel is handed out (the pipeline's imports)
    cwd: str = ""  # the notebook's folder: imports of modules beside it must resolve there


class RunCancelledError(Exception):
    """The run a kernel was asked for has been cancelled."""


class KernelPool:
    """Pre-started kernels per key; kernels in use per run, so a run can be cancelled.

    Parameters
    ----------
    start_kernel : callable, optional
        ``start_kernel(key) -> KernelManager``; the default starts a jupyter_client kernel.
    """

    def __init__(self, start_kernel: Callable[[KernelKey], Any] | None = None,
                 fork: bool = True) -> None:
        self._start = start_kernel or self._start_kernel
        self._fork = fork
        self._zygotes: dict[KernelKey, Any] = {}
        self._zygote_lock = threading.Lock()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._idle: dict[KernelKey, list[Any]] = {}
        self._starting: dict[KernelKey, int] = {}
        self._target: dict[KernelKey, int] = {}
        self._active: dict[str, set[Any]] = {}
        self._cancelled: set[str] = set()
        self._closed = False

    def prewarm(self, key: KernelKey, count: int) -> int:
        """Keep ``count`` kernels idle or starting for ``key`` (refilled as steps take them).

        ``count=0`` stops refilling; kernels already idle stay until taken or closed.
        """
        with self._lock:
            self._target[key] = count
        return self._refill(key)

    def _refill(self, key: KernelKey) -> int:
        with self._lock:
            if self._closed:
                return 0
            count = self._target.get(key, 0)
            missing = count - len(self._idle.get(key, ())) - self._starting.get(key, 0)
            if missing <= 0:
                return 0
            self._starting[key] = self._starting.get(key, 0) + missing
        for _ in range(missing):
            threading.Thread(target=self._warm_one, args=(key,), daemon=True,
                             name="mlplat-prewarm").start()
        return missing

    def _warm_one(self, key: KernelKey) -> None:
        km = None
        try:
            km = self._start(key)
            if key.warmup:
                warm_up(km, key.warmup)
        except Exception as exc:  # a broken warm-up only costs the warm start
            log.warning("could not pre-start a %s kernel: %s", key.kernel_name, exc)
            if km is not None:
                _shutdown(km)
            km = None
        with self._lock:
            self._starting[key] -= 1
            if km is not None and not self._closed:
                self._idle.setdefault(key, []).append(km)
                km = None
            self._ready.notify_all()
        if km is not None:
            _shutdown(km)

    def acquire(self, key: KernelKey, run_id: str, wait: float = 30.0) -> tuple[Any, bool]:
        """A kernel for one step of ``run_id`` and whether it was warm.

        Takes an idle warm kernel; when one is still starting for ``key``, waits for it (up to
        ``wait`` seconds: its warm-up is work the step would do anyway); else starts a new one.
        Raises ``RunCancelledError`` when ``run_id`` was cancelled (before or meanwhile).
        """
        km = None
        deadline = time.monotonic() + wait
        while km is None:
            with self._ready:
                if run_id in self._cancelled:
                    raise RunCancelledError(run_id)
                idle = self._idle.get(key, [])
                candidate = idle.pop() if idle else None
                if candidate is None:
                    left = deadline - time.monotonic()
                    if not self._starting.get(key) or left <= 0:
                        break
                    self._ready.wait(left)
                    continue
            if is_alive(candidate):  # outside the lock: it talks to the kernel's process
                km = candidate
            else:
                _shutdown(candidate)
        warm = km is not None
        if warm:
            self._refill(key)  # the next step of this kind finds one warm too
        else:
            km = self._start(key)
        with self._lock:
            cancelled = run_id in self._cancelled
            if not cancelled:
                self._active.setdefault(run_id, set()).add(km)
        if cancelled:
            _shutdown(km)
            raise RunCancelledError(run_id)
        return km, warm

    def release(self, km: Any, run_id: str) -> None:
        """Forget ``km`` and shut it down in the background (a kernel serves one step)."""
        with self._lock:
            self._active.get(run_id, set()).discard(km)
            if not self._active.get(run_id):
                self._active.pop(run_id, None)
        threading.Thread(target=_shutdown, args=(km,), daemon=True).start()

    def cancel(self, run_id: str) -> int:
        """Interrupt and stop every kernel running a step of ``run_id``; return how many."""
        with self._lock:
            self._cancelled.add(run_id)
            kms = list(self._active.get(run_id, ()))
        for km in kms:
            interrupt(km)
            _shutdown(km)
        return len(kms)

    def forget_cancel(self, run_id: str) -> None:
        """``run_id`` is being resumed: its steps may take kernels again."""
        with self._lock:
            self._cancelled.discard(run_id)

    def was_cancelled(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._cancelled

    def idle_count(self, key: KernelKey | None = None) -> int:
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, ()))
            return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        """Stop every idle and active kernel, and the zygotes."""
        with self._lock:
            self._closed = True
            kms = [km for v in self._idle.values() for km in v]
            kms += [km for v in self._active.values() for km in v]
            self._idle.clear()
            self._active.clear()
        for km in kms:
            _shutdown(km)
        with self._zygote_lock:
            zygotes = list(self._zygotes.values())
            self._zygotes.clear()
        for zygote in zygotes:
            if zygote is not None:
                zygote.close()

    def _start_kernel(self, key: KernelKey) -> Any:
        """A kernel forked from the key's zygote where that is safe, else a new process."""
        zygote = self._zygote(key)
        if zygote is not None:
            try:
                return start_kernel_manager(key, argv=zygote.argv())
            except Exception as exc:  # fall back to a plain kernel
                log.warning("forking a kernel failed (%s); starting a new process", exc)
        return start_kernel_manager(key)

    def _zygote(self, key: KernelKey) -> Any:
        from .zygote import Zygote, forkable

        if not self._fork or not key.warmup or not forkable(dict(key.env)):
            return None
        with self._zygote_lock:  # one zygote per key; later starts wait for the first
            if self._closed:
                return None
            if key in self._zygotes:
                zygote = self._zygotes[key]
                if zygote is None or zygote.alive():  # None: it failed once, do not retry
                    return zygote
                zygote.close()  # it died: start another
            try:
                env = {**os.environ, **dict(key.env)}
                env.pop("JPY_PARENT_PID", None)
                zygote = Zygote(env, key.warmup, key.cwd or None)
            except Exception as exc:
                log.warning("no kernel zygote for %s (%s): kernels start as new processes",
                            key.kernel_name, exc)
                zygote = None
            self._zygotes[key] = zygote
            return zygote


def kernel_env(env: dict[str, str], threads: int | None) -> tuple[tuple[str, str], ...]:
    """The extra environment of a step's kernel, as a hashable key part."""
    merged = dict(env)
    if threads:
        for var in THREAD_VARS:
            merged.setdefault(var, str(threads))
    return tuple(sorted(merged.items()))


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from any thread, inside a running event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def start_kernel_manager(key: KernelKey, argv: list[str] | None = None) -> Any:
    """Start a kernel for ``key`` and return its ``AsyncKernelManager``.

    Async, because nbclient drives a blocking kernel client by blocking its own event loop:
    its per-cell timeout and its kernel-death checks then never get to run. ``argv`` replaces
    the kernel spec's command (a zygote's ``spawn``).
    """
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=key.kernel_name)
    if argv is not None:
        km.kernel_spec.argv = list(argv)
    env = {**os.environ, **dict(key.env)}
    env.pop("JPY_PARENT_PID", None)
    extra: dict[str, Any] = {"cwd": key.cwd} if key.cwd and os.path.isdir(key.cwd) else {}
    # ipykernel warns about plain TCP on loopback at every start; keep its errors only.
    run_sync(km.start_kernel(env=env, extra_arguments=["--IPKernelApp.log_level=ERROR"],
                             **extra))
    return km


def is_alive(km: Any) -> bool:
    try:
        return bool(run_sync(km.is_alive()))
    except Exception:
        return False


def interrupt(km: Any) -> None:
    try:
        run_sync(km.interrupt_kernel())
    except Exception as exc:  # already gone
        log.debug("kernel interrupt: %s", exc)


def warmup_code(imports: str) -> str:
    """The pipeline's imports plus what every step's injected cells will import anyway."""
    extra = ["import jupyter_mlplat.pipeline.runtime", "import jupyter_mlplat.pipeline.marshal",
             "import jupyter_mlplat.store.artifacts"]
    if "pandas" in imports:
        extra.append("import pyarrow.parquet")  # step outputs that are frames are Parquet
    return imports + "\n" + "\n".join(extra)


def warm_up(km: Any, code: str, timeout: float = 300) -> None:
    """Run ``code`` in the kernel (its imports), so the step that gets it starts warm."""

    async def run() -> dict[str, Any]:
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=120)
            return await kc.execute_interactive(
                code, silent=True, store_history=False, allow_stdin=False, timeout=timeout,
                output_hook=lambda msg: None,
            )
        finally:
            kc.stop_channels()

    reply = run_sync(run())
    if reply["content"].get("status") != "ok":
        content = reply["content"]
        raise RuntimeError(f"warm-up failed: {content.get('ename')}: {content.get('evalue')}")


def _shutdown(km: Any) -> None:
    try:
        run_sync(km.shutdown_kernel(now=True))
    except Exception as exc:  # already dead
        log.debug("kernel shutdown: %s", exc)


shutdown = _shutdown


class WarmKernelEngine:
    """papermill engine ``mlplat``: runs the notebook on the kernel given as ``km=``.

    Without ``km`` it behaves like papermill's default engine (a fresh kernel it owns). It
    delegates to a subclass of papermill's ``NBClientEngine`` made on first use: papermill loads
    its engine entry points while it is being imported, so this module must not import papermill
    at the top (the import would be circular).
    """

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, **kwargs: Any) -> Any:
        return _engine().execute_notebook(nb, kernel_name, **kwargs)

    @classmethod
    def nb_kernel_name(cls, nb: Any, name: str | None = None) -> str:
        return _engine().nb_kernel_name(nb, name)

    @classmethod
    def nb_language(cls, nb: Any, language: str | None = None) -> str:
        return _engine().nb_language(nb, language)


_ENGINE: Any = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        from papermill.engines import NBClientEngine

        class _WarmNBClientEngine(NBClientEngine):
            @classmethod
            def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
                km = kwargs.pop("km", None)
                if km is None:
                    return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
                return _execute_on(km, nb_man, kernel_name, **kwargs)

        _ENGINE = _WarmNBClientEngine
    return _ENGINE


def _execute_on(km: Any, nb_man: Any, kernel_name: str, log_output: bool = False,
                stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                execution_timeout: float | None = None, **kwargs: Any) -> Any:
    from papermill.clientwrap import PapermillNotebookClient

    for unsafe in ("timeout", "startup_timeout", "input_path", "output_path"):
        kwargs.pop(unsafe, None)
    client = PapermillNotebookClient(
        nb_man,
        km=km,
        kernel_name=kernel_name,
        timeout=execution_timeout,
        startup_timeout=start_timeout,
        log=logging.getLogger("papermill"),
        log_output=log_output,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
        **kwargs,
    )
    try:
        return client.execute()
    finally:
        if client.kc is not None:  # nbclient leaves the channels of a kernel it does not own
            client.kc.stop_channels()
