"""Whether the scheduler process that runs a firing is still there.

Two signs, trusted in this order:

- the firing's heartbeat, on the database's clock: silent for longer than the firing's
  ``stale_after`` (its scheduler's lease) means its scheduler is gone, wherever it ran;
- the process itself, only where a process id means the same thing here as where it was
  recorded: the same host name *and* the same boot (``/proc/sys/kernel/random/boot_id``) *and*
  the same PID namespace (``/proc/self/ns/pid``). Two containers with one host name, or a
  machine that rebooted, fail that test and are judged by heartbeats alone. A pid that exists
  but was started at another time than the recorded one is another process (pid reuse).

Where the boot id or the PID namespace cannot be read (not Linux), the process check is never
used: heartbeats only.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

#: Used for rows written without a ``stale_after`` (seconds).
DEFAULT_STALE_AFTER = 30.0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _pid_ns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this machine started (epoch seconds), or None if there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """What names one process across hosts, containers and reboots."""

    host: str
    pid: int
    started: float | None
    boot_id: str | None
    pid_ns: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        """This process."""
        return _current(os.getpid())

    def columns(self) -> dict[str, Any]:
        """The ``schedule_firings`` columns that record it."""
        return {"host": self.host, "pid": self.pid, "pid_started": self.started,
                "boot_id": self.boot_id, "pid_ns": self.pid_ns}

    def sees_pids_of(self, row: Any) -> bool:
        """Whether the pid recorded on ``row`` names a process this process can look up."""
        return (row.host == self.host and self.boot_id is not None
                and row.boot_id == self.boot_id and self.pid_ns is not None
                and row.pid_ns == self.pid_ns)


@cache
def _current(pid: int) -> ProcessIdentity:
    return ProcessIdentity(host=socket.gethostname(), pid=pid, started=process_started(pid),
                           boot_id=_read("/proc/sys/kernel/random/boot_id"), pid_ns=_pid_ns())


def firing_is_dead(row: Any, now: datetime, me: ProcessIdentity) -> bool:
    """Whether the scheduler process running firing ``row`` is gone (see the module docstring).

    Parameters
    ----------
    row : ScheduleFiring
        A ``running`` firing.
    now : datetime
        The database's current time.
    me : ProcessIdentity
        The process asking.
    """
    stale_after = row.stale_after or DEFAULT_STALE_AFTER
    if row.heartbeat_at is None or (now - row.heartbeat_at).total_seconds() > stale_after:
        return True
    if not row.pid or row.pid == me.pid or not me.sees_pids_of(row):
        return False  # a live heartbeat, and no process check that can be trusted
    started = process_started(row.pid)
    if started is None:
        return True
    return row.pid_started is not None and abs(started - row.pid_started) > 1.0
