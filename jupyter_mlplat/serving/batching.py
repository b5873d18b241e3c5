"""Adaptive micro-batching: concurrent requests to one model become one predict call.

Requests queue on the event loop; a batching task takes what is queued (up to ``max_batch``
rows) and hands it to one dedicated worker thread, so the loop never runs a model. While the
worker is busy, new requests pile up and form the next, larger batch: the batch size follows the
load. A request that arrives alone waits at most ``max_wait_ms`` for company, and only when the
previous call batched several requests (under concurrency); sequential callers never wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: How many recent batch sizes a batcher keeps (for tests and debugging; metrics get them all).
RECENT = 1000


#: A lone request runs on the event loop when its model predicts faster than this (seconds).
INLINE_BELOW = 0.0005


@dataclass
class _Request:
    X: Any
    rows: int
    future: asyncio.Future[Any] = field(repr=False)


class BatcherClosedError(RuntimeError):
    """The batcher was closed before the request ran."""


def count_rows(X: Any) -> int:
    """Rows in a request, as far as can be told cheaply (1 when unknown)."""
    shape = getattr(X, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(X, dict):
        first = next(iter(X.values()), None)
        return count_rows(first) if isinstance(first, (list, tuple)) or hasattr(
            first, "shape") else 1
    if isinstance(X, (list, tuple)):
        return len(X)
    return 1


def batch_key(X: Any) -> Any:
    """What requests must share to run in one predict call, or None when ``X`` runs alone.

    Same kind (array, DataFrame, Series), same dtype(s), and same trailing shape (arrays) or
    columns (DataFrames): concatenating anything else would change what the model sees (an
    int request batched with a float one would be predicted as floats).
    """
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return ("frame", tuple(map(str, X.columns)), tuple(str(d) for d in X.dtypes))
    if isinstance(X, pd.Series):
        return ("series", str(X.name), str(X.dtype))
    if isinstance(X, np.ndarray) and X.ndim >= 1:
        return ("array", X.dtype.str, X.shape[1:])
    return None


def _concat(parts: list[Any]) -> Any:
    import numpy as np
    import pandas as pd

    if all(isinstance(p, pd.DataFrame) for p in parts):
        cols = list(parts[0].columns)
        if any(list(p.columns) != cols for p in parts):
            raise ValueError("requests have different columns")
        return pd.concat(parts, ignore_index=True)
    if all(isinstance(p, pd.Series) for p in parts):
        return pd.concat(parts, ignore_index=True)
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts, axis=0)
    raise ValueError("requests of different kinds")


def _split(out: Any, sizes: list[int]) -> list[Any] | None:
    """``out`` cut back into one piece per request, or None when it has not one row per input."""
    import numpy as np
    import pandas as pd

    if isinstance(out, (pd.DataFrame, pd.Series)):
        if len(out) != sum(sizes):
            return None
        cut = [out.iloc[a:a + n].reset_index(drop=True) for a, n in _offsets(sizes)]
        return cut
    if isinstance(out, (list, tuple)):
        out = np.asarray(out)
    if not isinstance(out, np.ndarray) or out.ndim == 0 or out.shape[0] != sum(sizes):
        return None
    return [out[a:a + n] for a, n in _offsets(sizes)]


def _offsets(sizes: list[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for n in sizes:
        out.append((start, n))
        start += n
    return out


class MicroBatcher:
    """Gathers concurrent requests to one model into batches run in one worker thread.

    Parameters
    ----------
    predict : callable
        ``predict(batch) -> outputs``, called in the worker thread with a prepared batch (a
        DataFrame, Series or numpy array of all gathered rows). Only requests of the same kind,
        dtype(s) and trailing shape or columns share a call (:func:`batch_key`). Its output must
        have one row per input row to be split back; when it has not, or when it raises, the
        batch is run again in halves (recursively), so one bad request cannot fail the others.
    prepare : callable, optional
        ``prepare(X) -> X'``, called in the worker thread on each request before batching (the
        signature check); what it raises fails that request only.
    max_batch : int
        Most rows per predict call (default 64). A larger single request runs alone.
    max_wait_ms : float
        How long a request that arrives alone waits for company (default 1 ms; 0: never).
    name : str
        Names the worker thread.
    on_batch : callable, optional
        ``on_batch(rows)`` after every predict call (from the worker thread).
    """

    def __init__(self, predict: Callable[[Any], Any], *,
                 prepare: Callable[[Any], Any] | None = None, max_batch: int = 64,
                 max_wait_ms: float = 1.0, name: str = "model",
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        self._predict = predict
        self._prepare = prepare or (lambda X: X)
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._last_size = 1  # requests in the previous predict call
        self._solo_cost = float("inf")  # seconds a lone request's predict takes (estimate)
        self._on_batch = on_batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"mlplat-predict-{name}")
        self._pending: deque[_Request] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._running: list[_Request] = []
        #: Rows of recent predict calls, newest last.
        self.batch_sizes: deque[int] = deque(maxlen=RECENT)

    async def submit(self, X: Any) -> Any:
        """Predictions for ``X`` (its own rows of the batch it ran in).

        Raises
        ------
        Exception
            Whatever ``prepare`` or ``predict`` raised for this request alone.
        BatcherClosedError
            The batcher was closed first.
        """
        if self._closed:
            raise BatcherClosedError("this model was unloaded")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(), name="mlplat-batcher")
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Request(X, count_rows(X), future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            # Wait for company only when there is some: after a batch that held several
            # requests. A caller on its own (one connection, sequential requests) never waits.
            if len(self._pending) == 1 and self.max_wait > 0 and self._last_size > 1 and \
                    self._pending[0].rows < self.max_batch:
                await self._wait_for_company(loop, wakeup)
            batch = self._take()
            self._last_size = len(batch)
            self._running = batch
            cost = None
            try:
                if len(batch) == 1 and self._solo_cost < INLINE_BELOW:
                    # A lone request to a model that answers in well under a millisecond: the
                    # hand-off to the worker thread and back would cost more than the predict.
                    results, cost = self._timed([batch[0].X])
                else:
                    results, cost = await loop.run_in_executor(self._executor, self._timed,
                                                               [r.X for r in batch])
            except Exception as exc:  # noqa: BLE001 - executor shut down, or a bug above
                results = [(False, exc)] * len(batch)
            finally:
                self._running = []
            if len(batch) == 1 and cost is not None:  # what one request costs this model
                self._solo_cost = cost if self._solo_cost == float("inf") else \
                    0.8 * self._solo_cost + 0.2 * cost
            for req, (ok, value) in zip(batch, results):
                if req.future.done():  # the caller gave up (client gone)
                    continue
                if ok:
                    req.future.set_result(value)
                else:
                    req.future.set_exception(value)

    async def _wait_for_company(self, loop: asyncio.AbstractEventLoop,
                                wakeup: asyncio.Event) -> None:
        deadline = loop.time() + self.max_wait
        while sum(r.rows for r in self._pending) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            wakeup.clear()
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Request]:
        batch = [self._pending.popleft()]
        rows = batch[0].rows
        while self._pending and rows + self._pending[0].rows <= self.max_batch:
            req = self._pending.popleft()
            rows += req.rows
            batch.append(req)
        return batch

    # -- worker thread -------------------------------------------------------------------------

    def _timed(self, items: list[Any]) -> tuple[list[tuple[bool, Any]], float]:
        started = time.perf_counter()
        results = self._run_batch(items)
        return results, time.perf_counter() - started

    def _run_batch(self, items: list[Any]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any] | None] = [None] * len(items)
        groups: dict[Any, list[tuple[int, Any]]] = {}
        alone: list[tuple[int, Any]] = []
        for i, X in enumerate(items):
            try:
                prepared = self._prepare(X)
            except Exception as exc:  # noqa: BLE001 - fails this request only
                results[i] = (False, exc)
                continue
            key = batch_key(prepared)
            if key is None:
                alone.append((i, prepared))
            else:
                groups.setdefault(key, []).append((i, prepared))
        for group in groups.values():
            for (i, _), result in zip(group, self._together([p for _, p in group])):
                results[i] = result
        for i, p in alone:
            results[i] = self._alone(p)
        return [r if r is not None else (False, RuntimeError("not run")) for r in results]

    def _alone(self, X: Any) -> tuple[bool, Any]:
        try:
            return True, self._call(X)
        except Exception as exc:  # noqa: BLE001 - this request's failure
            return False, exc

    def _together(self, parts: list[Any]) -> list[tuple[bool, Any]]:
        """Run compatible ``parts`` in one call; on failure, each half again (recursively).

        One bad request among ``n`` costs about ``2 log2(n)`` extra calls, not ``n``.
        """
        if len(parts) == 1:
            return [self._alone(parts[0])]
        try:
            out = _split(self._call(_concat(parts)), [len(p) for p in parts])
        except Exception as exc:  # noqa: BLE001 - split up: one bad request fails alone
            log.debug("batch of %d requests failed (%s); splitting it", len(parts), exc)
            out = None
        if out is not None:
            return [(True, part) for part in out]
        half = len(parts) // 2
        return self._together(parts[:half]) + self._together(parts[half:])

    def _call(self, X: Any) -> Any:
        out = self._predict(X)
        rows = count_rows(X)
        self.batch_sizes.append(rows)
        if self._on_batch is not None:
            try:
                self._on_batch(rows)
            except Exception:  # noqa: BLE001 - metrics must never fail a prediction
                log.exception("on_batch hook failed")
        return out

    def close(self) -> None:
        """Fail what is queued or running (BatcherClosedError) and stop the worker.

        A batch already in the worker thread finishes there, but its results are dropped: every
        caller gets an answer now.
        """
        self._closed = True
        for req in [*self._running, *self._pending]:
            if not req.future.done():
                req.future.set_exception(BatcherClosedError("this model was unloaded"))
        self._pending.clear()
        self._running = []
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
