"""Review fixes: reload races, retries, client mistakes, leaks, revisions, batching, errors."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from typing import Any

import numpy as np
import pytest

from jupyter_mlplat.serving.batching import BatcherClosedError, MicroBatcher
from jupyter_mlplat.serving.model import ModelLoadError, ServedModel
from jupyter_mlplat.serving.server import StatePoller

from .conftest import ADMIN, ROWS, Faulty

TOKEN = "ep-token-456"


def _artifact_path(world: Any, model: str, version: int) -> str:
    ref = world.store.artifact_ref(world.store.model_version(model, version).artifact_id)
    return str(world.registry.artifacts.local_path(ref["uri"]))


async def test_reload_uses_fresh_states_and_retries_only_its_endpoint(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    os.remove(_artifact_path(world, "lin", v2))
    world.deploy("ep", [("lin", v1, 100)])
    world.deploy("adm", [("lin", v1, 100)])
    world.deploy("bad", [("ghost", 1, 100)])
    async with harness() as h:
        await h.apply()
        await h.service.unload("adm")  # the admin stopped it: only a named reload restarts it
        world.deploy("ep", [("lin", v2, 100)])  # revision 2 cannot load
        assert (await h.apply())["ep"].startswith("failed")
        assert (await h.service.reload("bad")).startswith("failed")
        assert "adm" not in h.service._tables
        # a rollback (revision 3) is being applied when the admin asks to reload ep
        world.deploy("ep", [("lin", v1, 100)])
        states = await asyncio.to_thread(world.store.serving_states)
        acquire = h.service.repository.acquire

        async def slow(key: Any) -> Any:
            await asyncio.sleep(0.2)
            return await acquire(key)

        h.service.repository.acquire = slow  # type: ignore[method-assign]
        applying = asyncio.create_task(h.service.apply(states))
        await asyncio.sleep(0.05)
        outcome = await h.service.reload("ep")
        assert (await applying)["ep"] == "switched"
        assert outcome == "unchanged"  # not revision 2 again from a stale list
        assert h.service.state("ep").revision == 3
        assert h.service.table("ep").state.revision == 3
        assert "adm" not in h.service._tables
        assert (await h.service.reload("adm")) == "switched"


async def test_poller_retries_a_failed_revision_with_backoff(world, harness, tmp_path) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    path = _artifact_path(world, "lin", v2)
    shutil.move(path, tmp_path / "saved")
    world.deploy("ep", [("lin", v1, 100)])
    async with harness() as h:
        poller = StatePoller(world.store, h.service, interval=0.05, retry_backoff=0.1,
                             retry_backoff_max=0.4)
        await poller.poll_once()
        await asyncio.to_thread(world.deploy, "ep", [("lin", v2, 100)])
        await poller.poll_once()
        assert h.service.retryable() == {"ep": 2}
        poller.start()
        try:
            start = time.monotonic()
            while poller._retry_delay <= 0.1:  # failed retries: the backoff grows
                assert time.monotonic() - start < 10.0, "no failed retry within 10 s"
                await asyncio.sleep(0.02)
            assert h.service.table("ep").state.revision == 1
            assert poller._retry_delay <= 0.4  # never past retry_backoff_max
            shutil.move(tmp_path / "saved", path)  # the artifact store is back
            start = time.monotonic()
            while h.service.table("ep").state.revision != 2:
                assert time.monotonic() - start < 10.0, "not retried within 10 s"
                await asyncio.sleep(0.02)
            assert h.service.retryable() == {}
            r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
            assert r.code == 200 and r.version == f"lin@{v2}"
        finally:
            await poller.stop()


async def test_a_hung_load_times_out() -> None:
    release = threading.Event()

    class Hung(ServedModel):
        def load_model(self) -> tuple[Any, Any]:
            release.wait(10.0)  # hangs far past the timeout (until the test lets it go)
            return None, None

    model = Hung("hung", 1, registry=None)  # type: ignore[arg-type]
    start = time.monotonic()
    try:
        with pytest.raises(ModelLoadError, match="within 0.1 s"):
            await model.load(timeout=0.1)
        assert time.monotonic() - start < 2.0 and not model.ready
    finally:
        release.set()  # the abandoned load thread ends now, not at interpreter exit


async def test_client_mistakes_are_400_not_500(world, harness) -> None:
    v = world.linear("lin", 2.0)
    world.deploy("lin", [("lin", v, 100)])
    async with harness() as h:
        await h.apply()
        deep = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        r = await h.fetch("/v1/models/lin:predict", raw=deep)
        assert r.code == 400 and "nested too deeply" in r.json["error"]
        for path in ("/v2/models/lin/versions/%C2%B2/ready", "/v2/models/lin/versions/%C2%B2",
                     "/v2/models/lin/versions/lin@%C2%B2/ready"):
            r = await h.fetch(path)
            assert r.code == 400 and "must be a number" in r.json["error"], path
        r = await h.fetch("/v2/models/lin/versions/%C2%B2/infer", {"inputs": [
            {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]})
        assert r.code == 400


async def test_large_bodies_do_not_block_the_loop(world, harness) -> None:
    v = world.linear("lin", 2.0)
    world.deploy("lin", [("lin", v, 100)])
    rows = np.random.default_rng(0).normal(size=(450_000, 2)).round(6)
    body = json.dumps({"instances": rows.tolist()}).encode()
    assert len(body) > 9 * 1024 * 1024
    async with harness(max_body_size=32 * 1024 * 1024) as h:
        await h.apply()
        big = asyncio.create_task(h.fetch("/v1/models/lin:predict", raw=body))
        worst = 0.0
        while not big.done():
            start = time.perf_counter()
            assert (await h.fetch("/v2/health/live")).code == 200
            worst = max(worst, time.perf_counter() - start)
            await asyncio.sleep(0.01)
        r = await big
        assert r.code == 200 and len(r.json["predictions"]) == len(rows)
        # 0.2 s is the goal, not met reliably yet: C calls (json, numpy) in the worker thread
        # hold the GIL and the garbage collector runs over millions of new objects (stalls up
        # to ~0.8 s seen); this bound only guards against decoding back on the loop
        assert worst < 1.5, worst


async def test_ready_means_synced(world, harness) -> None:
    world.deploy("bad", [("ghost", 1, 100)])
    async with harness() as h:
        assert (await h.fetch("/v2/health/ready")).code == 503  # not synced yet
        await h.apply()
        assert (await h.fetch("/v2/health/ready")).code == 200
        assert (await h.fetch("/v2/models/bad/ready")).code == 503


async def test_no_leaks_without_a_token(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    path = _artifact_path(world, "lin", v2)
    os.remove(path)
    world.deploy("secret-name", [("lin", v1, 100)], public=False, token=TOKEN)
    world.deploy("broken", [("lin", v2, 100)])
    async with harness() as h:
        await h.apply()
        for p in ("/v1/models/nope:predict", "/v2/models/nope/ready", "/v2/models/nope"):
            r = await h.fetch(p, {"instances": [[1, 2]]} if "predict" in p else None)
            assert r.code == 404 and "secret-name" not in r.body.decode(), p
        r = await h.fetch("/invocations", {"instances": [[1, 2]]})
        assert r.code == 404 and "secret-name" not in r.body.decode()
        r = await h.fetch(f"/v2/models/secret-name/versions/{v1 + 5}/ready")
        assert r.code == 404 and f"lin@{v1}" not in r.body.decode()
        # a load failure: a short reason for callers, the detail for the admin
        r = await h.fetch("/v1/models/broken:predict", {"instances": ROWS.tolist()})
        assert r.code == 503 and "ModelLoadError" in r.json["error"]
        assert os.path.dirname(path) not in r.body.decode() and "<path>" in r.json["error"]
        meta = (await h.fetch("/v2/models/broken")).json
        assert os.path.dirname(path) not in meta["last_failure"]["error"]
        index = (await h.fetch("/v2/repository/index", {}, token=ADMIN)).json
        assert os.path.dirname(path) in {e["name"]: e["reason"] for e in index}["broken"]
        # the token is checked before the body is read: no body is ever sent here
        host, port = h.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/models/secret-name:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000000\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 2)
        assert status.split()[1] == b"401"
        writer.close()


async def test_revision_header_is_the_serving_tables(world, harness) -> None:
    v1 = world.linear("lin", 1.0)
    v2 = world.linear("lin", 2.0)
    os.remove(_artifact_path(world, "lin", v2))
    world.deploy("ep", [("lin", v1, 100)], sticky_header="X-User")
    async with harness() as h:
        await h.apply()
        world.deploy("ep", [("lin", v2, 100)])  # revision 2 fails: revision 1 serves
        await h.apply()
        assert h.service.state("ep").revision == 2
        r = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()},
                          headers={"X-User": "u1"})
        assert r.code == 200 and r.headers["X-Endpoint-Revision"] == "1"
        result = await h.service.infer("ep", ROWS)
        assert result.revision == 1


async def test_batches_never_mix_dtypes() -> None:
    calls: list[str] = []

    def predict(X: np.ndarray) -> np.ndarray:
        calls.append(X.dtype.kind)
        time.sleep(0.005)
        return np.array([X.dtype.kind] * len(X))

    batcher = MicroBatcher(predict, max_batch=64, max_wait_ms=20)
    try:
        alone = await batcher.submit(np.array([[1, 2]]))
        ints, floats, wide = await asyncio.gather(
            batcher.submit(np.array([[1, 2]])), batcher.submit(np.array([[1.5, 2.0]])),
            batcher.submit(np.array([[1, 2, 3]])))
        assert alone.tolist() == ints.tolist() == ["i"]
        assert floats.tolist() == ["f"] and wide.tolist() == ["i"]
    finally:
        batcher.close()


async def test_a_failed_batch_is_split_in_halves() -> None:
    calls: list[int] = []

    def predict(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        if np.isnan(X).any():
            raise ValueError("NaN in input")
        return X.sum(axis=1)

    batcher = MicroBatcher(predict, max_batch=64, max_wait_ms=20)
    try:
        inputs = [np.full((1, 2), float(i)) for i in range(16)]
        inputs[5] = np.array([[np.nan, 1.0]])
        results = await asyncio.gather(*(batcher.submit(x) for x in inputs),
                                       return_exceptions=True)
        assert isinstance(results[5], ValueError)
        assert all(np.array_equal(r, x.sum(axis=1)) for i, (r, x) in
                   enumerate(zip(results, inputs)) if i != 5)
        assert len(calls) <= 1 + 2 * 4  # halving, not 16 single calls
    finally:
        batcher.close()


async def test_close_mid_batch_answers_every_caller() -> None:
    started, release = threading.Event(), threading.Event()

    def predict(X: np.ndarray) -> np.ndarray:
        started.set()
        release.wait(10.0)  # still running at close(), however slow the machine
        return X.sum(axis=1)

    batcher = MicroBatcher(predict, max_batch=1, max_wait_ms=0)
    try:
        running = asyncio.ensure_future(batcher.submit(np.ones((1, 2))))
        assert await asyncio.to_thread(started.wait, 30), "predict never started"
        queued = asyncio.ensure_future(batcher.submit(np.ones((1, 2))))
        await asyncio.sleep(0.01)
        start = time.monotonic()
        batcher.close()
        for fut in (running, queued):
            with pytest.raises(BatcherClosedError):
                await asyncio.wait_for(fut, 5)
        assert time.monotonic() - start < 1.5  # not after the running predict
    finally:
        release.set()


async def test_server_side_model_faults_are_500(world, harness, toys, caplog) -> None:
    f = world.toy("faulty", Faulty())
    b = world.toy("boom", toys.boom())
    world.deploy("faulty", [("faulty", f, 100)])
    world.deploy("boom", [("boom", b, 100)])
    bad = {"instances": (-ROWS).tolist()}
    async with harness() as h:
        await h.apply()
        r = await h.fetch("/v1/models/boom:predict", bad)
        assert r.code == 400 and "ValueError" in r.json["error"]
        r = await h.fetch("/v1/models/faulty:predict", bad)
        assert r.code == 500 and "MemoryError" in r.json["error"]
        assert "/srv/secret" not in r.body.decode() and r.version == f"faulty@{f}"
    assert any("/srv/secret" in (r.exc_text or "") for r in caplog.records)


async def test_v2_ids_and_headers_on_decode_errors(world, harness) -> None:
    v = world.linear("lin", 2.0)
    world.deploy("lin", [("lin", v, 100)])
    async with harness() as h:
        await h.apply()
        r = await h.fetch("/v2/models/lin/infer", {"inputs": [
            {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]})
        assert r.code == 200 and "id" not in r.json
        r = await h.fetch("/v2/models/lin/infer", {"inputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0]}]})
        assert r.code == 400 and r.version == f"lin@{v}"
        r = await h.fetch(f"/v2/models/lin/versions/{v}/infer", {"inputs": [
            {"name": "x", "shape": [1, 2], "datatype": "INT64", "data": [1.5, 2.0]}]})
        assert r.code == 400 and r.version == f"lin@{v}"


async def test_token_needed_on_version_infer_and_default_invocations(world, harness) -> None:
    v = world.linear("lin", 2.0)
    world.deploy("closed", [("lin", v, 100)], public=False, token=TOKEN)
    v2 = {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP64",
                      "data": ROWS.tolist()}]}
    mlflow = {"inputs": ROWS.tolist()}
    async with harness() as h:
        await h.apply()
        for path, body in ((f"/v2/models/closed/versions/{v}/infer", v2),
                           (f"/v2/models/closed/versions/lin@{v}/infer", v2),
                           ("/invocations", mlflow)):
            assert (await h.fetch(path, body)).code == 401, path
            assert (await h.fetch(path, body, token="wrong")).code == 403, path
            r = await h.fetch(path, body, token=TOKEN)
            assert r.code == 200 and r.version == f"lin@{v}", path
