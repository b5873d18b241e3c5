"""Notifications to local sinks on 127.0.0.1: a webhook server (answering, failing, hanging) and
an SMTP server; a failed firing notifies without holding up the loop or the other schedules."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.scheduler.notify import Notifier
from jupyter_mlplat.scheduler.service import ScheduleService
from jupyter_mlplat.schemas import DescribeFiring, NotificationOutcome, ScheduleNotify

from .conftest import notebook, wait_for


class Sink:
    """What the local servers received."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.mails: list[str] = []
        self.hosts: list[str] = []
        self.release = threading.Event()  # lets the dripping handler go at the end


@pytest.fixture
def sink() -> Iterator[tuple[Sink, str, int]]:
    """(sink, webhook base URL, SMTP port), both on 127.0.0.1."""
    got = Sink()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.posts.append((self.path, body))
            got.hosts.append(self.headers["Host"])
            if self.path == "/drip":  # an answer a byte at a time, never finished
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 1000:
                    if got.release.wait(0.2):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                return
            if self.path == "/redirect":
                self.send_response(307)
                self.send_header("Location", "/ok")
                self.end_headers()
                return
            self.send_response(500 if self.path == "/fail" else 200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Smtp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 sink ESMTP\r\n")
            data: list[bytes] | None = None
            while line := self.rfile.readline():
                if data is not None:
                    if line.rstrip(b"\r\n") == b".":
                        got.mails.append(b"".join(data).decode())
                        data = None
                        self.wfile.write(b"250 queued\r\n")
                    else:
                        data.append(line)
                    continue
                verb = line.strip().split(b" ")[0].upper()
                if verb == b"EHLO":
                    self.wfile.write(b"250-sink\r\n250 SIZE 1000000\r\n")
                elif verb == b"DATA":
                    data = []
                    self.wfile.write(b"354 go on\r\n")
                elif verb == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 ok\r\n")

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
    smtp.daemon_threads = http.daemon_threads = True
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (http, smtp)]
    for t in threads:
        t.start()
    yield got, f"http://127.0.0.1:{http.server_address[1]}", smtp.server_address[1]
    got.release.set()
    for server in (http, smtp):
        server.shutdown()
        server.server_close()


def test_failed_firing_notifies_without_blocking_the_loop(mlplat_isolated_env, sink, loops,
                                                          tmp_path: Path) -> None:
    got, base, smtp_port = sink
    # 5 s: time for the local sinks to answer on a loaded machine; the drip still takes minutes
    config = MLPlat(notify_timeout=5.0, smtp_host="127.0.0.1", smtp_port=smtp_port,
                    smtp_starttls=False, smtp_from="mlplat@test.local",
                    notify_allowed_networks="127.0.0.1")
    service = ScheduleService(config)
    broken = notebook(tmp_path, "broken", "n = 1", "raise KeyError('no such column: n')")
    fine = notebook(tmp_path, "fine", "n = 1", "print(n)")
    failing = service.create({
        "notebook": str(broken), "cron": "@daily", "paused": True,
        "notify": {"webhook": [f"{base}/ok?token=s3cret", f"{base}/fail", f"{base}/drip"],
                   "email": ["ops@example.com"]}})
    other = service.create({"notebook": str(fine), "cron": "@daily", "paused": True,
                            "notify": {"webhook": [f"{base}/ok"], "on": ["success"]}})
    loop = loops(config=config)
    first = service.run_now(failing.id)
    loop.tick()
    assert loop.drain(60)
    wait_for(lambda: any(path == "/drip" for path, _ in got.posts), timeout=10)
    # the dripping webhook holds a notifier thread; the loop fires the next schedule at once
    second = service.run_now(other.id)
    started = time.monotonic()
    assert loop.tick() == [second.id]
    assert time.monotonic() - started < 3.0  # not held until the drip is cut (5 s)
    assert loop.drain(60)
    assert service.firing(second.id).status == "succeeded"

    firing = wait_for(lambda: (f := service.firing(first.id)) and len(f.notifications) == 4
                      and f, timeout=30)
    assert firing.status == "failed" and "KeyError" in firing.error
    outcomes = sorted((n.channel, n.status, n.detail or "") for n in firing.notifications)
    assert outcomes[0] == ("email", "sent", "")
    assert outcomes[1:3] == [("webhook", "failed", "HTTP 500"), ("webhook", "failed",
                                                                 outcomes[2][2])]
    assert "timed out" in outcomes[2][2].lower()  # the dripping one, after notify_timeout
    assert outcomes[3] == ("webhook", "sent", "HTTP 200")
    assert all("s3cret" not in n.target for n in firing.notifications)  # URLs' secrets stay

    (body,) = [b for path, b in got.posts if path.startswith("/ok?")]
    assert body["event"] == "failure"
    assert body["schedule"]["id"] == failing.id and body["schedule"]["name"] == "broken"
    assert body["firing"]["status"] == "failed" and body["firing"]["run_id"]
    assert body["firing"]["executed_notebook"]
    assert "KeyError" in body["text"] and "no such column" in body["firing"]["error"]
    success = [b for path, b in got.posts if path == "/ok"]
    assert [b["event"] for b in success] == ["success"]
    assert success[0]["firing"]["id"] == second.id
    (mail,) = got.mails
    assert "Subject: mlplat: schedule 'broken'" in mail and "ops@example.com" in mail


def test_no_smtp_server_is_recorded_not_raised(mlplat_isolated_env, loops, tmp_path: Path
                                               ) -> None:
    config = MLPlat(smtp_host="")
    service = ScheduleService(config)
    nb = notebook(tmp_path, "fine", "n = 1", "print(n)")
    s = service.create({"notebook": str(nb), "cron": "@daily", "paused": True,
                        "notify": {"email": ["ops@example.com"], "on": ["success"]}})
    loop = loops(config=config)
    pending = service.run_now(s.id)
    loop.tick()
    assert loop.drain(60)
    firing = wait_for(lambda: (f := service.firing(pending.id)) and f.notifications and f)
    assert firing.status == "succeeded"
    (note,) = firing.notifications
    assert note.status == "failed" and "no SMTP server configured" in note.detail


def _firing(**fields: Any) -> DescribeFiring:
    now = datetime(2026, 3, 27, 12, tzinfo=UTC)
    return DescribeFiring(**{"id": 7, "schedule_id": "s1", "kind": "cron", "status": "failed",
                             "slot_at": now, "created_at": now, "error": "boom",
                             "parameters": {"api_key": "s3cret-key"}, **fields})


SCHEDULE = {"id": "s1", "name": "nightly", "owner": "me", "notebook": "n.ipynb",
            "target": "notebook", "cron": "@daily", "timezone": "UTC"}


def _deliver(notifier: Notifier, spec: ScheduleNotify, event: str = "failure"
             ) -> list[NotificationOutcome]:
    got: list[NotificationOutcome] = []
    notifier.send(event, spec, SCHEDULE, _firing(), on_done=got.append)
    assert notifier.wait(20)
    return got


def test_webhook_addresses_are_checked_when_sending_and_the_checked_one_is_called(
        mlplat_isolated_env, sink) -> None:
    """A public name that resolves to loopback when the notification goes out (DNS rebinding,
    or a name made to point inside) is refused; allowed, the connection goes to the address
    that was checked, the Host header still names the host. Redirects are not followed."""
    got, base, _ = sink
    port = int(base.rsplit(":", 1)[1])
    resolve = {"hooks.example.com": ["127.0.0.1"], "meta.example.com": ["169.254.169.254"]}
    strict = Notifier(MLPlat(notify_timeout=2.0), resolve=lambda host, port: resolve[host])
    try:
        spec = ScheduleNotify(webhook=[f"http://hooks.example.com:{port}/ok",
                                       f"http://meta.example.com:{port}/ok",
                                       f"{base}/ok"])
        outcomes = {o.target: o for o in _deliver(strict, spec)}
        assert [o.status for o in outcomes.values()] == ["failed"] * 3
        assert all("not a public address" in o.detail for o in outcomes.values())
        assert "169.254.169.254" in outcomes[f"http://meta.example.com:{port}"].detail
        assert got.posts == []
    finally:
        strict.close()
    allowed = Notifier(MLPlat(notify_timeout=2.0, notify_allowed_networks="127.0.0.0/8"),
                       resolve=lambda host, port: resolve[host])
    try:
        ok, moved = sorted(_deliver(allowed, ScheduleNotify(
            webhook=[f"http://hooks.example.com:{port}/ok",
                     f"http://hooks.example.com:{port}/redirect"])), key=lambda o: o.status,
            reverse=True)
        assert (ok.status, ok.detail) == ("sent", "HTTP 200")
        assert set(got.hosts) == {f"hooks.example.com:{port}"}
        assert moved.status == "failed" and "redirects are not followed" in moved.detail
        assert sorted(path for path, _ in got.posts) == ["/ok", "/redirect"]  # not /ok again
        assert all("parameters" not in body["firing"] for _, body in got.posts)  # opt-in
        _deliver(allowed, ScheduleNotify(webhook=[f"{base}/ok"], include_parameters=True))
        assert got.posts[-1][1]["firing"]["parameters"] == {"api_key": "s3cret-key"}
    finally:
        allowed.close()


def test_a_dripping_webhook_is_cut_at_the_deadline_and_cannot_hold_every_thread(
        mlplat_isolated_env, sink) -> None:
    got, base, _ = sink
    notifier = Notifier(MLPlat(notify_timeout=2.0, notify_allowed_networks="127.0.0.1"),
                        threads=2, per_schedule=2)
    try:
        started = time.monotonic()
        outcomes: list[NotificationOutcome] = []
        for _ in range(3):  # the third is one more than the schedule may have waiting
            notifier.send("failure", ScheduleNotify(webhook=[f"{base}/drip"]), SCHEDULE,
                          _firing(), on_done=outcomes.append)
        other: list[NotificationOutcome] = []
        notifier.send("failure", ScheduleNotify(webhook=[f"{base}/ok"]),
                      {**SCHEDULE, "id": "s2"}, _firing(schedule_id="s2"),
                      on_done=other.append)
        assert notifier.wait(10)
        elapsed = time.monotonic() - started
        assert elapsed < 8  # each delivery cut at its 2 s deadline, however slowly it drips
        details = sorted(o.detail or "" for o in outcomes)
        assert details[0].startswith("dropped: 2 notifications of this schedule")
        assert all("timed out" in d for d in details[1:])
        assert [(o.status, o.detail) for o in other] == [("sent", "HTTP 200")]
    finally:
        got.release.set()
        notifier.close()
