"""A scheduler process for the two-process test: the real loop on the real store, with a clock
that runs ``scale`` times faster than the wall clock from a shared origin (so cron minutes come
every second) and a target that writes what it does to a shared file.

    python scheduler_proc.py ORIGIN_SIM ORIGIN_WALL SCALE OUT_FILE WORK_SECONDS

``WORK_SECONDS`` = ``notebook``: the real runner instead (the schedule's notebook on a kernel).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime, timedelta

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.loop import SchedulerLoop
from jupyter_mlplat.scheduler.runner import (
    BaseFiringRunner,
    DefaultFiringRunner,
    FiringContext,
    FiringResult,
)


class FileRunner(BaseFiringRunner):
    """The target: append ``start`` and ``end`` lines (one write each, O_APPEND) around work."""

    def __init__(self, path: str, seconds: float) -> None:
        self.path, self.seconds = path, seconds

    def _line(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{text}\n".encode())
        finally:
            os.close(fd)

    def run(self, ctx: FiringContext) -> FiringResult:
        # a run row first, as the real runner makes one before its target starts
        run_id = ctx.store.create_run(
            pipeline_id=ctx.store.pipeline_id("job", "/job.ipynb"), pipeline_version="v",
            notebook_path="/job.ipynb", parameters={}, options={}, steps=["job"])
        ctx.on_run(run_id)
        self._line(f"start {ctx.firing_id} {os.getpid()}")
        time.sleep(self.seconds)
        self._line(f"end {ctx.firing_id} {os.getpid()}")
        ctx.store.finish_run(run_id, "succeeded", None)
        return FiringResult("succeeded", run_id=run_id)


def main() -> int:
    origin_sim = datetime.fromisoformat(sys.argv[1])
    origin_wall, scale = float(sys.argv[2]), float(sys.argv[3])

    def clock() -> datetime:
        return origin_sim + timedelta(seconds=(time.time() - origin_wall) * scale)

    runner = (DefaultFiringRunner() if sys.argv[5] == "notebook"
              else FileRunner(sys.argv[4], float(sys.argv[5])))
    # the lease and the beats are real seconds (the database's clock); the grace is clock time.
    # Beats every 0.25 s keep a 3 s lease through a stall of either process on a loaded machine
    # (a firing whose heartbeat outlasts the lease is swept, though it then finishes)
    loop = SchedulerLoop(MLPlat(), clock=clock, runner=runner, poll_interval=0.05,
                         lease=3.0, misfire_grace=600, beat_interval=0.25)
    signal.signal(signal.SIGTERM, lambda *a: loop.request_stop())
    print(f"ready {loop.id}", flush=True)
    try:
        loop.run_forever()
    finally:
        loop.stop(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
