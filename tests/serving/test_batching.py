"""Micro-batching: concurrent requests share predict calls; a lone one is barely delayed."""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np
import pytest

from jupyter_mlplat.serving.batching import MicroBatcher

from .conftest import ROWS


async def test_batcher_gathers_and_splits_back() -> None:
    calls: list[int] = []

    def predict(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        time.sleep(0.005)
        return X.sum(axis=1)

    batcher = MicroBatcher(predict, max_batch=16)
    try:
        inputs = [np.full((1 + i % 3, 2), float(i)) for i in range(40)]
        outs = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        for x, out in zip(inputs, outs):
            assert np.array_equal(out, x.sum(axis=1))
        assert max(calls) > 1 and max(calls) <= 16
        assert sum(calls) == sum(len(x) for x in inputs)
        assert len(calls) < len(inputs)
        assert list(batcher.batch_sizes) == calls
    finally:
        batcher.close()


async def test_a_bad_request_fails_alone() -> None:
    def prepare(X: np.ndarray) -> np.ndarray:
        if X.shape[1] != 2:
            raise ValueError("wrong width")
        return X

    def predict(X: np.ndarray) -> np.ndarray:
        if np.isnan(X).any():
            raise ValueError("NaN in input")
        time.sleep(0.002)
        return X.sum(axis=1)

    batcher = MicroBatcher(predict, prepare=prepare, max_batch=64, max_wait_ms=5)
    try:
        good = [np.ones((2, 2)) * i for i in range(10)]
        poison = np.array([[np.nan, 1.0]])
        narrow = np.ones((1, 3))
        results = await asyncio.gather(*(batcher.submit(x) for x in [*good, poison, narrow]),
                                       return_exceptions=True)
        for x, out in zip(good, results):
            assert np.array_equal(out, x.sum(axis=1))
        assert isinstance(results[-2], ValueError) and "NaN" in str(results[-2])
        assert isinstance(results[-1], ValueError) and "width" in str(results[-1])
    finally:
        batcher.close()


async def test_batching_in_the_served_model(world, harness, toys) -> None:
    r = world.toy("rec", toys.recorder())
    v = world.linear("lin", 3.0)
    world.deploy("rec", [("rec", r, 100)])
    world.deploy("lin", [("lin", v, 100)])
    async with harness() as h:
        await h.apply()
        inputs = [ROWS[: 1 + i % 3] + i for i in range(48)]
        results = await asyncio.gather(*(h.fetch("/v1/models/rec:predict",
                                                 {"instances": x.tolist()}) for x in inputs))
        for x, res in zip(inputs, results):
            assert res.code == 200
            assert np.allclose(res.json["predictions"], x.sum(axis=1))
        served = h.service.repository.get(("rec", r))
        assert served is not None and max(served.batcher.batch_sizes) > 1
        metrics = (await h.fetch("/metrics")).body.decode()
        assert 'mlplat_serving_batch_rows_bucket{le="1.0",model="rec",version="1"}' in metrics
        # a lone request waits at most ~1 ms for company
        lin = h.service
        await lin.infer("lin", ROWS)
        times = []
        for _ in range(50):
            start = time.perf_counter()
            await lin.infer("lin", ROWS)
            times.append(time.perf_counter() - start)
        assert statistics.median(times) < 0.005, times


@pytest.mark.parametrize("max_batch", [1, 4])
async def test_max_batch_is_respected(max_batch: int) -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(lambda X: X[:, 0], max_batch=max_batch,
                           on_batch=sizes.append)
    try:
        outs = await asyncio.gather(*(batcher.submit(np.full((1, 2), i)) for i in range(20)))
        assert [o.tolist() for o in outs] == [[i] for i in range(20)]
        assert max(sizes) <= max_batch
    finally:
        batcher.close()
