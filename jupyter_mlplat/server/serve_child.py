"""The serve process a Jupyter server starts for its user: ``jupyter mlplat serve`` that ends
when that server is gone.

A server that stops cleanly stops its child (``ServeChild.stop``). One that is killed
(SIGKILL, out of memory) cannot, and the child would go on listening with the user's models.
So the server starts it as ``python -m jupyter_mlplat.server.serve_child --parent-pid PID serve
...``: a thread checks every second that the child's parent is still ``PID`` (a child whose
parent dies is re-parented), and if not, stops the child the way ``SIGTERM`` does (requests in
flight finish), exiting hard if that takes longer than ``GRACE`` seconds. A parent watched by
pid, not by ``PR_SET_PDEATHSIG``: that signal fires when the *thread* that started the child
ends, and the server starts it from a pool thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: Seconds between checks of the parent.
INTERVAL = 1.0
#: Seconds a graceful stop may take once the parent is gone.
GRACE = 30.0


def watch_parent(parent: int, *, interval: float = INTERVAL, grace: float = GRACE
                 ) -> threading.Thread:
    """Start a daemon thread that stops this process once its parent is no longer ``parent``.

    Parameters
    ----------
    parent : int
        The pid of the process that started this one.
    interval : float
        Seconds between checks.
    grace : float
        Seconds between the ``SIGTERM`` this process sends itself and a hard exit.

    Returns
    -------
    threading.Thread
        The watcher (already started).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the Jupyter server that started this serve process (pid %d) is gone; "
                    "stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)  # the serve loop drains and returns
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=watch, name="mlplat-parent-watch", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    """``--parent-pid PID`` then the arguments of ``jupyter-mlplat`` (``serve ...``)."""
    parser = argparse.ArgumentParser(prog="python -m jupyter_mlplat.server.serve_child")
    parser.add_argument("--parent-pid", type=int, required=True,
                        help="stop when this process is no longer our parent")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the jupyter-mlplat command line to run (serve ...)")
    args = parser.parse_args(argv)
    if os.getppid() != args.parent_pid:  # gone before we got here
        return 0
    watch_parent(args.parent_pid)
    from ..cli.main import main as mlplat_main

    return mlplat_main(args.command)


if __name__ == "__main__":
    sys.exit(main())
