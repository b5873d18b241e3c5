"""Hot-swap under load, failed loads keep the old version, the poll loop picks changes up."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from jupyter_mlplat.serving.server import StatePoller

from .conftest import ROWS


async def test_hot_swap_under_load_drops_nothing(world, harness) -> None:
    versions = [world.linear("lin", c) for c in (1.0, 2.0, 3.0, 4.0)]
    expected = {f"lin@{v}": world.expected("lin", v) for v in versions}
    assert len({tuple(e) for e in expected.values()}) == 4  # the versions answer differently
    world.deploy("ep", [("lin", versions[0], 100)])
    payload = {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP64",
                           "data": ROWS.tolist()}]}
    answers: list[tuple[int, str | None, list[float] | bytes]] = []
    async with harness() as h:
        await h.apply()
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                r = await h.fetch("/v2/models/ep/infer", payload)
                answers.append((r.code, r.version,
                                r.json["outputs"][0]["data"] if r.code == 200 else r.body))

        clients = [asyncio.create_task(client()) for _ in range(4)]
        await asyncio.sleep(0.2)
        for v in versions[1:]:
            world.deploy("ep", [("lin", v, 100)])
            report = await h.apply()
            assert report["ep"] == "switched"
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*clients)
        # versions no endpoint uses are unloaded
        await asyncio.sleep(0.05)
        assert [m.ref for m in h.service.repository.loaded()] == [f"lin@{versions[-1]}"]
    bad = [a for a in answers if a[0] != 200]
    assert not bad, bad[:3]
    seen = set()
    for _, ref, data in answers:
        assert ref in expected
        assert np.allclose(data, expected[ref]), (ref, data)
        seen.add(ref)
    assert f"lin@{versions[-1]}" in seen and len(answers) > 50
    assert answers[-1][1] == f"lin@{versions[-1]}"


async def test_failed_load_keeps_the_old_version(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 5.0)
    world.deploy("ep", [("lin", v1, 100)])
    # delete v2's model file: it cannot load
    artifact = world.store.artifact_ref(world.store.model_version("lin", v2).artifact_id)
    path = world.registry.artifacts.local_path(artifact["uri"])
    os.remove(path)
    async with harness() as h:
        await h.apply()
        world.deploy("ep", [("lin", v2, 100)])
        report = await h.apply()
        assert report["ep"].startswith("failed")
        r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
        assert r.code == 200 and r.version == f"lin@{v1}"
        assert np.allclose(r.json["predictions"], world.expected("lin", v1))
        meta = (await h.fetch("/v2/models/ep")).json
        assert meta["revision"] == 1 and meta["last_failure"]["revision"] == 2
        assert "lin@2" in meta["last_failure"]["error"]
        assert (await h.fetch("/v2/health/ready")).code == 200  # still serving revision 1
        # not retried on every poll; a rollback revision switches back cleanly
        assert (await h.apply())["ep"].startswith("failed")
        world.deploy("ep", [("lin", v1, 100)])
        assert (await h.apply())["ep"] == "switched"
        assert (await h.fetch("/v2/models/ep")).json["last_failure"] is None
        metrics = (await h.fetch("/metrics")).body.decode()
        assert 'mlplat_serving_load_failures_total{endpoint="ep"} 1.0' in metrics


async def test_first_revision_failing_is_503_not_500(world, harness) -> None:
    v = world.linear("lin", 1.0)
    world.deploy("ep", [("lin", v, 100), ("ghost", 1, 0)])  # ghost: no such model
    async with harness() as h:
        await h.apply()
        r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
        assert r.code == 503 and "no model 'ghost'" in r.json["error"]
        assert (await h.fetch("/v2/health/ready")).code == 200  # synced; ep is not ready
        assert (await h.fetch("/v2/models/ep/ready")).code == 503


async def test_poll_loop_applies_a_new_revision_and_an_undeploy(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    world.deploy("ep", [("lin", v1, 100)])
    async with harness() as h:
        poller = StatePoller(world.store, h.service, interval=0.25)
        assert await poller.poll_once() is True
        assert await poller.poll_once() is False
        poller.start()
        try:
            r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
            assert r.version == f"lin@{v1}"
            await asyncio.to_thread(world.deploy, "ep", [("lin", v2, 100)])
            # the loop (not this test) applies it; a generous deadline for a loaded machine
            start = time.monotonic()
            while True:
                r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
                assert r.code == 200
                if r.version == f"lin@{v2}":
                    break
                assert time.monotonic() - start < 10.0, "not applied within 10 s"
                await asyncio.sleep(0.02)
            # undeploying (no routes) stops serving the endpoint; until then v2 answers
            await asyncio.to_thread(world.deploy, "ep", [])
            start = time.monotonic()
            while True:
                r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
                if r.code == 404:
                    break
                assert r.code == 200 and r.version == f"lin@{v2}", (r.code, r.version)
                assert time.monotonic() - start < 10.0, "not undeployed within 10 s"
                await asyncio.sleep(0.02)
        finally:
            await poller.stop()
