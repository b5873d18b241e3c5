"""``jupyter mlplat scheduler --health-port``: 200 while the loop polls, 503 before its first
poll, when polls stop going through, and once it stops; nothing about schedules or owners."""

from __future__ import annotations

import pytest
import requests

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.scheduler.health import HealthServer

from .conftest import wait_for


def test_health_follows_the_loop(loops) -> None:
    loop = loops(poll_interval=0.05)
    server = HealthServer(loop, prefix="/services/mlplat-scheduler/").start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        starting = requests.get(f"{base}/health", timeout=10)
        assert starting.status_code == 503 and starting.json()["status"] == "starting"
        loop.start()
        ok = wait_for(lambda: (r := requests.get(f"{base}/health", timeout=10)).status_code
                      == 200 and r)
        assert set(ok.json()) == {"status", "running", "last_poll_seconds_ago"}
        assert ok.json()["status"] == "ok" and ok.json()["running"] == 0
        assert ok.headers["Content-Type"] == "application/json"
        behind_proxy = requests.get(f"{base}/services/mlplat-scheduler/health", timeout=10)
        assert behind_proxy.status_code == 200
        missing = requests.get(f"{base}/services/other/health", timeout=10)
        assert missing.status_code == 404 and "/services/mlplat-scheduler/health" in (
            missing.json()["error"])
        loop.request_stop()
        stopped = requests.get(f"{base}/health", timeout=10)
        assert stopped.status_code == 503 and stopped.json()["status"] == "stopped"
    finally:
        server.close()


def test_stale_polls_are_unhealthy(loops) -> None:
    loop = loops(poll_interval=0.05)
    loop.polled_at = 0.0  # a poll went through, long ago
    server = HealthServer(loop).start()
    try:
        answer = requests.get(f"http://127.0.0.1:{server.port}/health", timeout=10)
        assert answer.status_code == 503 and answer.json()["status"] == "stale"
    finally:
        server.close()


def test_a_taken_port_is_a_clear_error(loops) -> None:
    loop = loops()
    first = HealthServer(loop).start()
    try:
        with pytest.raises(InvalidSpecError, match="choose another --health-port"):
            HealthServer(loop, port=first.port)
    finally:
        first.close()
