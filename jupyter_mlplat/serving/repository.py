"""ModelRepository: the loaded model versions of a serve process, keyed by (model, version).

A version is loaded once and shared by every endpoint (and shadow) that routes to it. The
service tells the repository which versions are still in use after each switch; the others are
unloaded in the background once the requests they accepted have finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .model import ServedModel

if TYPE_CHECKING:
    from ..tracking.registry import ModelRegistry

log = logging.getLogger(__name__)

Key = tuple[str, int]


class ModelRepository:
    """Loaded :class:`ServedModel` objects, loaded once and unloaded when unused.

    Parameters
    ----------
    registry : ModelRegistry
        Where versions are loaded from.
    trusted : bool
        Whether trusted-only formats may load (the owner's own serve process: True).
    model_class : type, optional
        The runtime class (a :class:`ServedModel` subclass); default :class:`ServedModel`.
    max_batch, max_wait_ms : int, float
        Micro-batching limits of every model.
    on_batch : callable, optional
        ``on_batch(model, version, rows)`` after every predict call (metrics).
    load_timeout : float, optional
        Seconds one version may take to load and warm (None: no limit).
    """

    def __init__(self, registry: ModelRegistry, *, trusted: bool = True,
                 model_class: type[ServedModel] = ServedModel, max_batch: int = 64,
                 max_wait_ms: float = 1.0,
                 on_batch: Callable[[str, int, int], None] | None = None,
                 load_timeout: float | None = None) -> None:
        self.registry = registry
        self.trusted = trusted
        self.model_class = model_class
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self.load_timeout = load_timeout
        self._models: dict[Key, ServedModel] = {}
        self._loading: dict[Key, asyncio.Task[ServedModel]] = {}
        self._unloading: set[asyncio.Task[None]] = set()

    def get(self, key: Key) -> ServedModel | None:
        """The loaded version ``key``, or None."""
        return self._models.get(key)

    def loaded(self) -> list[ServedModel]:
        """Every loaded version."""
        return list(self._models.values())

    async def acquire(self, key: Key) -> ServedModel:
        """The loaded version ``key``, loading and warming it first when needed.

        Concurrent calls for one key share one load. Raises ModelLoadError when it cannot serve
        (nothing is kept then; a later call tries again).
        """
        model = self._models.get(key)
        if model is not None:
            return model
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key))
            self._loading[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: Key) -> ServedModel:
        try:
            model = self.model_class(key[0], key[1], self.registry, trusted=self.trusted,
                                     max_batch=self.max_batch, max_wait_ms=self.max_wait_ms,
                                     on_batch=self.on_batch)
            await model.load(self.load_timeout)
            self._models[key] = model
            return model
        finally:
            self._loading.pop(key, None)

    def prune(self, in_use: Iterable[Key]) -> list[Key]:
        """Unload (in the background, after their in-flight requests) versions not ``in_use``."""
        keep = set(in_use)
        gone = [k for k in self._models if k not in keep]
        for key in gone:
            model = self._models.pop(key)
            task = asyncio.get_running_loop().create_task(model.unload())
            self._unloading.add(task)
            task.add_done_callback(self._unloading.discard)
        return gone

    async def close(self, timeout: float = 30.0) -> None:
        """Unload everything (waiting up to ``timeout`` for in-flight requests)."""
        for task in list(self._loading.values()):
            task.cancel()
        models = list(self._models.values())
        self._models.clear()
        await asyncio.gather(*(m.unload(timeout) for m in models), *self._unloading,
                             return_exceptions=True)

    def describe(self) -> list[dict[str, Any]]:
        """``[{"model", "version", "state", "inflight"}]`` for the repository index."""
        out = [{"model": m.name, "version": m.version, "state": "READY",
                "inflight": m.inflight} for m in self._models.values()]
        out += [{"model": k[0], "version": k[1], "state": "LOADING", "inflight": 0}
                for k in self._loading]
        return sorted(out, key=lambda d: (d["model"], d["version"]))
