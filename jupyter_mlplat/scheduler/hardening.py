"""Keep a scheduler's secrets out of reach of the kernels it starts (Linux).

A scheduler for several owners holds the store's database URL and its own hub token, and runs
every owner's notebooks as its own OS user. A process can read the environment
(``/proc/PID/environ``) and memory (``/proc/PID/mem``) of any other process of its user that is
*dumpable*, and a root process can read every process's while it holds ``CAP_SYS_PTRACE``. So:

- :func:`make_non_dumpable` marks this process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``):
  processes of the same user can no longer read its environment or memory, attach to it with a
  debugger, or get a core dump of it. It is not inherited across ``exec``: the kernels this
  process starts are ordinary processes again (each is one owner's);
- :func:`drop_inspection_capabilities` removes the capabilities that read a non-dumpable
  process anyway (``CAP_SYS_PTRACE``; for reading, ``CAP_PERFMON`` and ``CAP_SYS_ADMIN`` too)
  from this process's capability bounding set (``prctl(PR_CAPBSET_DROP)``, when it may): the
  process keeps what it holds, but no program it or its children execute can hold them again,
  so the kernels of a scheduler running as root cannot use them either;
- :func:`harden_process` does both; :func:`harden_dask_workers` makes the Dask worker processes
  this process starts afterwards call :func:`make_non_dumpable` too (a Dask ``preload`` of this
  module, whose :func:`dask_setup` runs in each worker).

Elsewhere than on Linux these are no-ops that log at debug level.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
PR_CAPBSET_READ, PR_CAPBSET_DROP = 23, 24
#: Capabilities that let a process read a non-dumpable one (``ptrace_may_access``): attach
#: and read with the first; read ``/proc/PID/environ`` with the others.
INSPECTION_CAPABILITIES = {"CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38}
#: The Dask preload that makes worker processes non-dumpable (see :func:`dask_setup`).
WORKER_PRELOAD = __name__


def _prctl(option: int, arg: int = 0) -> int | None:
    """``prctl(option, arg, 0, 0, 0)``: its result, or None off Linux or without libc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    result = prctl(option, arg, 0, 0, 0)
    if result < 0:
        errno = ctypes.get_errno()
        log.debug("prctl(%d, %d) failed: errno %d", option, arg, errno)
    return int(result)


def is_dumpable() -> bool | None:
    """Whether this process is dumpable; None where that cannot be asked (not Linux)."""
    result = _prctl(PR_GET_DUMPABLE)
    return None if result is None or result < 0 else bool(result)


def make_non_dumpable() -> bool:
    """Mark this process non-dumpable (see the module docstring).

    Returns
    -------
    bool
        True when the process is non-dumpable now; False off Linux (a debug log says so) or
        when the call failed (a warning says so).
    """
    result = _prctl(PR_SET_DUMPABLE, 0)
    if result is None:
        log.debug("not on Linux (%s): processes of the same user may read this process's "
                  "environment", sys.platform)
        return False
    if result < 0 or is_dumpable():
        log.warning("could not make this process non-dumpable: processes of the same user may "
                    "read its environment and memory")
        return False
    return True


def drop_inspection_capabilities() -> bool:
    """Remove :data:`INSPECTION_CAPABILITIES` from the bounding set (see the module docstring).

    Returns
    -------
    bool
        True when no program executed from now on can hold them (dropped, or never in the set;
        a capability this kernel does not know counts as absent); False off Linux or when this
        process may not change the set (it lacks ``CAP_SETPCAP``: it is not root, so the
        programs it starts hold none of them anyway).
    """
    if _prctl(PR_CAPBSET_READ, INSPECTION_CAPABILITIES["CAP_SYS_PTRACE"]) is None:
        log.debug("not on Linux (%s): capability bounding set left as it is", sys.platform)
        return False
    kept = []
    for name, number in INSPECTION_CAPABILITIES.items():
        if (_prctl(PR_CAPBSET_READ, number) or 0) <= 0:
            continue  # not in the set, or unknown to this kernel
        if (_prctl(PR_CAPBSET_DROP, number) or 0) < 0:
            kept.append(name)
    if kept:
        log.debug("%s stay(s) in the bounding set (no CAP_SETPCAP)", ", ".join(kept))
    return not kept


def harden_process() -> bool:
    """Non-dumpable, and none of :data:`INSPECTION_CAPABILITIES` for the programs it starts;
    True when this process is non-dumpable now."""
    dropped = drop_inspection_capabilities()
    hidden = make_non_dumpable()
    if hidden:
        log.info("this process is non-dumpable%s", "" if dropped else
                 " (root's inspection capabilities stay in the bounding set)")
    return hidden


def harden_dask_workers() -> None:
    """Make the Dask workers this process starts from now on (a ``LocalCluster``'s worker
    processes) non-dumpable: adds :data:`WORKER_PRELOAD` to ``distributed.worker.preload`` in
    this process's Dask configuration, which its nannies hand to the workers they start."""
    import dask

    preload = list(dask.config.get("distributed.worker.preload", default=None) or [])
    if WORKER_PRELOAD not in preload:
        dask.config.set({"distributed.worker.preload": [*preload, WORKER_PRELOAD]})


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: runs in each worker process as it starts."""
    make_non_dumpable()
