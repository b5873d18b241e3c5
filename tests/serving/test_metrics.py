"""Prometheus metrics on a per-app registry; a model's own error is a 400 naming the version."""

from __future__ import annotations

from prometheus_client import REGISTRY

from jupyter_mlplat.serving.metrics import ServingMetrics

from .conftest import ROWS


def test_metrics_live_on_their_own_registry() -> None:
    a, b = ServingMetrics(), ServingMetrics()  # no duplicate-timeseries error
    a.observe_request("ep", "m", 1, 200, 0.01, None)
    assert a.registry is not b.registry and a.registry is not REGISTRY
    assert b"mlplat_serving_requests_total" in a.render()[0]
    assert REGISTRY.get_sample_value("mlplat_serving_requests_total",
                                     {"endpoint": "ep", "model": "m", "version": "1",
                                      "code": "200"}) is None


async def test_request_counters_and_model_errors(world, harness, toys) -> None:
    b = world.toy("boom", toys.boom())
    world.deploy("ep", [("boom", b, 100)])
    async with harness() as h:
        await h.apply()
        ok = await h.fetch("/v1/models/ep:predict", {"instances": abs(ROWS).tolist()})
        assert ok.code == 200
        bad = await h.fetch("/v1/models/ep:predict", {"instances": ROWS.tolist()})
        assert bad.code == 400 and bad.version == f"boom@{b}"
        assert "boom@1 failed to predict: ValueError: boom" in bad.json["error"]
        await h.fetch("/v1/models/nope:predict", {"instances": [[1, 2]]})
        text = (await h.fetch("/metrics")).body.decode()
    assert 'mlplat_serving_requests_total{code="200",endpoint="ep",model="boom",version="1"}' \
        in text
    assert 'mlplat_serving_requests_total{code="400",endpoint="ep",model="boom",version="1"}' \
        in text
    assert 'mlplat_serving_requests_total{code="404",endpoint="-",model="-",version="-"}' in text
    assert 'mlplat_serving_errors_total{endpoint="ep",kind="client"} 1.0' in text
    assert 'mlplat_serving_request_seconds_bucket{endpoint="ep"' in text
