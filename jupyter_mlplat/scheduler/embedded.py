"""The scheduler loop inside a long-running process that has an event loop (the Jupyter server).

``start_scheduler(config)`` returns at once: the loop polls and fires on threads of its own, so
the tornado loop never waits for SQL or papermill. ``await handle.aclose()`` (or ``stop()``)
stops it: running firings get a few seconds to finish, then their kernels are interrupted and
they are recorded ``interrupted``; the loop's leases are released so a ``jupyter mlplat
scheduler`` elsewhere takes its schedules over at once.

Wiring in the server extension (``MLPlatApp``)::

    def initialize_settings(self):
        config = MLPlat(parent=self)
        self._mlplat_scheduler = None
        if config.run_scheduler:  # on by default; off under JupyterHub
            from ..scheduler.embedded import start_scheduler
            self._mlplat_scheduler = start_scheduler(config)

    async def stop_extension(self):
        if self._mlplat_scheduler is not None:
            await self._mlplat_scheduler.aclose()
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..config import MLPlat

log = logging.getLogger(__name__)


class SchedulerHandle:
    """A started :class:`~jupyter_mlplat.scheduler.loop.SchedulerLoop` and how to stop it."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    @property
    def scheduler_id(self) -> str:
        return self.loop.id

    def wake(self) -> None:
        """Make the loop poll now (e.g. right after a run-now request)."""
        self.loop.wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (blocks up to ``timeout`` + a few seconds; not on an event loop)."""
        self.loop.stop(timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop the loop without blocking the running event loop."""
        await asyncio.to_thread(self.loop.stop, timeout)


def start_scheduler(config: MLPlat | None = None, *, owners: list[str] | None = None,
                    **options: Any) -> SchedulerHandle:
    """Start a scheduler loop on background threads and return its handle at once.

    Parameters
    ----------
    config : MLPlat, optional
        Settings (store, ``scheduler_*``); read from the environment when omitted.
    owners : list of str, optional
        Whose schedules it fires; default ``config.owner`` (the server's user).
    **options
        Passed to :class:`~jupyter_mlplat.scheduler.loop.SchedulerLoop`.

    Returns
    -------
    SchedulerHandle
    """
    from .loop import SchedulerLoop

    loop = SchedulerLoop(config or MLPlat(), owners=owners, **options)
    loop.start()
    return SchedulerHandle(loop)
