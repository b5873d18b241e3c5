"""Traffic split by weight, sticky keys, direct versions, and shadow isolation (no HTTP)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import numpy as np
import pytest

from jupyter_mlplat.errors import InvalidSpecError, NotFoundError

from .conftest import ROWS, Harness


async def test_weighted_split_sticky_and_direct(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    world.deploy("ab", [("lin", v1, 70), ("lin", v2, 30)], sticky_header="X-User")
    async with harness(max_wait_ms=0) as h:
        await h.apply()
        service = h.service
        service.rng = random.Random(7)
        n = 3000
        counts = {f"lin@{v1}": 0, f"lin@{v2}": 0}
        for _ in range(0, n, 100):
            results = await asyncio.gather(*(service.infer("ab", ROWS[:1])
                                             for _i in range(100)))
            for r in results:
                counts[r.ref] += 1
                assert np.allclose(r.outputs, world.expected(r.model, r.version, ROWS[:1]))
        # 30% of 3000 = 900, sd ~25: 5 sd either way
        assert abs(counts[f"lin@{v2}"] - 900) < 125, counts
        # sticky: one key, one version, every time; keys spread over both
        by_key = {}
        for key in range(200):
            refs = {(await service.infer("ab", ROWS[:1], sticky_key=f"user-{key}")).ref
                    for _ in range(3)}
            assert len(refs) == 1
            by_key[key] = refs.pop()
        share = sum(r == f"lin@{v2}" for r in by_key.values()) / len(by_key)
        assert 0.15 < share < 0.45
        # over HTTP the sticky header picks the same way
        for key in range(5):
            r = await h.fetch("/v1/models/ab:predict", {"instances": ROWS.tolist()},
                              headers={"X-User": f"user-{key}"})
            assert r.version == by_key[key]
        # a direct version bypasses the split
        for _ in range(20):
            assert (await service.infer("ab", ROWS, version=v2)).version == v2
        assert (await service.infer("ab", ROWS, version=f"lin@{v1}")).version == v1
        with pytest.raises(NotFoundError):
            await service.infer("ab", ROWS, version=9)
        with pytest.raises(InvalidSpecError):
            await service.infer("ab", ROWS, version="one")


async def test_zero_weight_route_gets_no_traffic(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    world.deploy("canary", [("lin", v1, 100), ("lin", v2, 0)])
    async with harness(max_wait_ms=0) as h:
        await h.apply()
        refs = {(await h.service.infer("canary", ROWS)).version for _ in range(200)}
        assert refs == {v1}
        assert (await h.service.infer("canary", ROWS, version=v2)).version == v2


async def _metrics_with(h: Harness, needle: str, timeout: float = 10.0) -> str:
    """The ``/metrics`` text once it contains ``needle``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = (await h.fetch("/metrics")).body.decode()
        if needle in metrics:
            return metrics
        assert time.monotonic() < deadline, f"{needle} not in /metrics within {timeout}s"
        await asyncio.sleep(0.05)


async def test_shadow_that_raises_changes_nothing(world, harness, toys, caplog) -> None:
    v = world.linear("lin", 2.0)
    b = world.toy("boom", toys.boom())
    world.deploy("ep", [("lin", v, 100)], shadow=("boom", b, 1.0))
    async with harness() as h:
        await h.apply()
        for _ in range(10):
            r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
            assert r.code == 200 and r.version == f"lin@{v}"
            assert np.allclose(r.json["predictions"], world.expected("lin", v))
        # the shadow runs after the caller's answer: wait for its outcome to be counted
        await _metrics_with(h, 'mlplat_serving_shadow_total{endpoint="ep",outcome="error"}')
        # positive rows: the shadow answers; its answers are compared, never returned
        r = await h.fetch("/v1/models/ep:predict", {"instances": np.abs(ROWS).tolist()})
        assert r.code == 200 and r.version == f"lin@{v}"
        await _metrics_with(h, 'outcome="disagree"')
    assert any("shadow boom@1 on endpoint ep failed" in rec.getMessage()
               for rec in caplog.records)


async def test_slow_shadow_does_not_slow_the_caller(world, harness, toys) -> None:
    v = world.linear("lin", 2.0)
    s = world.toy("sleepy", toys.sleepy(0.5))
    world.deploy("ep", [("lin", v, 100)], shadow=("sleepy", s, 1.0))
    async with harness() as h:
        await h.apply()
        latencies = []
        for _ in range(10):
            start = time.perf_counter()
            r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
            latencies.append(time.perf_counter() - start)
            assert r.code == 200 and r.version == f"lin@{v}"
        # a caller that waited for the shadow would take >= 0.5 s every time; the median
        # ignores a stray stall of a loaded machine
        assert statistics.median(latencies) < 0.25, latencies
