"""Notifications about firings: a JSON POST to webhooks, an e-mail through SMTP.

Deliveries run on a few daemon threads of their own, never on the scheduler loop:

- each delivery has one deadline for all of it (``notify_timeout``: name lookup, connecting,
  sending, the answer), so a server that answers a byte at a time holds a thread no longer than
  that; a webhook that hangs or answers 500 and an SMTP server that is down are logged and
  recorded on the firing, and nothing else waits for them;
- the queue is bounded, and one schedule has at most ``per_schedule`` deliveries waiting or in
  flight: more are recorded as dropped, so one schedule's slow webhook cannot hold up the
  others' notifications for long.

Webhooks reach public hosts only (:class:`WebhookPolicy`): the host name is resolved when the
notification is sent, every address it resolves to must be public (not loopback, private,
link-local such as a cloud's metadata address, or reserved) unless ``notify_allowed_networks``
allows it, and the connection goes to the address that was checked (the ``Host`` header and the
TLS certificate still name the host). Redirects are not followed. A webhook URL can carry a
secret (Slack's do): logs and records name its host only, and what is recorded about a failure
says what kind of failure it was, never the network's answer in detail. The firing's parameters
are sent only when the schedule asks for them (``include_parameters``).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import queue
import smtplib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..config import MLPlat
from ..errors import InvalidSpecError
from ..schemas import DescribeFiring, NotificationOutcome, ScheduleNotify

log = logging.getLogger(__name__)

Deliver = Callable[[NotificationOutcome], None]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_INTERNAL_NAMES = ("localhost",)
_INTERNAL_SUFFIXES = (".localhost",)


def webhook_host(url: str) -> str:
    """What logs show of a webhook URL: scheme and host, never its path or query (secrets)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{port}" if port else "")


def event_text(event: str, schedule: dict[str, Any], firing: DescribeFiring) -> str:
    """One line for people (chat webhooks show ``text``; the e-mail subject)."""
    what = {"failure": f"failed ({firing.status})", "success": "succeeded",
            "missed": f"missed {firing.missed_slots} slot(s)"}.get(event, event)
    line = (f"mlplat: schedule {schedule['name']!r} ({schedule['notebook']}) {what}; slot "
            f"{firing.slot_at.isoformat()}")
    if firing.run_id:
        line += f", run {firing.run_id}"
    if event in ("failure", "missed") and firing.error:
        line += f": {firing.error.splitlines()[0][:300]}"
    return line


class WebhookRefusedError(InvalidSpecError):
    """A webhook whose host is not one the scheduler may call."""


@dataclass(frozen=True)
class WebhookPolicy:
    """Which webhook hosts the scheduler calls: public addresses, and ``allowed`` networks.

    Parameters
    ----------
    allowed : tuple of networks
        Non-public networks webhooks may reach anyway (``notify_allowed_networks``, e.g. a
        company's chat server at 10.1.2.3).
    """

    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, config: MLPlat) -> WebhookPolicy:
        """From ``notify_allowed_networks`` (comma-separated addresses or CIDR networks).

        Raises
        ------
        InvalidSpecError
            An entry that is neither.
        """
        nets = []
        for item in (config.notify_allowed_networks or "").split(","):
            if item.strip():
                try:
                    nets.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise InvalidSpecError(
                        f"notify_allowed_networks: {item.strip()!r} is not an address or a "
                        "network; expected e.g. '10.0.0.0/8,192.168.1.20'") from None
        return cls(tuple(nets))

    def allows(self, address: Address) -> bool:
        """Whether a webhook may connect to ``address``."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_global or any(address in net for net in self.allowed)

    def check_url(self, url: Any) -> None:
        """Refuse what is wrong with a webhook URL before any lookup: not http(s), no host, or a
        host that is a non-public address or a loopback name (when not allowed).

        Raises
        ------
        WebhookRefusedError
        """
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookRefusedError(f"webhook {url!r} is not an http(s) URL; expected e.g. "
                                      "'https://hooks.example.com/T000/B000'")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise WebhookRefusedError(f"webhook {webhook_host(url)} has an invalid port") from None
        host = parts.hostname.lower().rstrip(".")
        literal = _literal(host)
        if host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES):
            literal = ipaddress.ip_address("127.0.0.1")
        if literal is not None and not self.allows(literal):
            raise WebhookRefusedError(self._why(host, literal))

    def check_addresses(self, host: str, addresses: list[Address]) -> None:
        """Refuse ``host`` unless every address it resolved to is allowed.

        Raises
        ------
        WebhookRefusedError
        """
        if not addresses:
            raise WebhookRefusedError(f"webhook host {host!r} has no address")
        for address in addresses:
            if not self.allows(address):
                raise WebhookRefusedError(self._why(host, address))

    @staticmethod
    def _why(host: str, address: Address) -> str:
        return (f"webhook host {host!r} is (or resolves to) {address}, which is not a public "
                "address (loopback, private, link-local or reserved); webhooks must reach a "
                "public host, or a network that c.MLPlat.notify_allowed_networks "
                "(MLPLAT_NOTIFY_ALLOWED_NETWORKS) allows")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class _Deadline:
    """One delivery's deadline: closes its socket when it passes, so a blocked read ends."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self.expired = False

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError
        return left

    def guard(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (a later call moves the guard to
        another socket: the TLS one that wraps it)."""
        self._sock = sock
        if self._timer is None:
            self._timer = threading.Timer(max(0.0, self.at - time.monotonic()), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Notifier:
    """Sends notifications on background threads; ``send`` returns at once.

    Parameters
    ----------
    config : MLPlat
        ``notify_timeout``, ``notify_allowed_networks`` and the ``smtp_*`` settings.
    threads : int
        Deliveries in flight at once; more wait in a queue.
    queue_size : int
        Deliveries that may wait; more are recorded as dropped.
    per_schedule : int
        Deliveries of one schedule that may wait or be in flight at once.
    resolve : callable, optional
        ``(host, port) -> list of addresses`` (default: the system resolver).
    """

    def __init__(self, config: MLPlat, *, threads: int = 4, queue_size: int = 200,
                 per_schedule: int = 8,
                 resolve: Callable[[str, int], list[str]] | None = None) -> None:
        self.config = config
        self.timeout = float(config.notify_timeout)
        self.policy = WebhookPolicy.from_config(config)
        self.per_schedule = per_schedule
        self._resolve_fn = resolve or _system_resolve
        self._queue: queue.Queue[tuple[str, Callable[[], None]] | None] = queue.Queue(
            maxsize=queue_size)
        self._counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._dns = ThreadPoolExecutor(2, thread_name_prefix="mlplat-notify-dns")
        self._threads = [threading.Thread(target=self._work, name=f"mlplat-notify-{i}",
                                          daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                schedule_id, job = item
                try:
                    job()
                finally:
                    with self._count_lock:
                        self._counts[schedule_id] -= 1
            except Exception:  # noqa: BLE001 - a delivery's own errors are recorded by it
                log.exception("a notification failed")
            finally:
                self._queue.task_done()

    def send(self, event: str, spec: ScheduleNotify, schedule: dict[str, Any],
             firing: DescribeFiring, on_done: Deliver | None = None) -> int:
        """Queue the deliveries ``spec`` asks for on ``event``; return how many were queued.

        ``schedule``: id, name, owner, notebook, cron, timezone, target. ``on_done`` gets each
        delivery's :class:`NotificationOutcome` (on a notifier thread; a dropped one at once).
        """
        if event not in spec.on:
            return 0
        shown = firing.model_dump(mode="json")
        if not spec.include_parameters:
            shown.pop("parameters", None)
        body = {"event": event, "text": event_text(event, schedule, firing),
                "schedule": schedule, "firing": shown}
        jobs: list[tuple[str, str, Callable[[], NotificationOutcome]]] = [
            ("webhook", webhook_host(url), lambda url=url: self._webhook(url, event, body))
            for url in spec.webhook]
        if spec.email:
            jobs.append(("email", ", ".join(spec.email),
                         lambda: self._email(spec.email, event, body)))
        key = str(schedule.get("id") or "")
        count = 0
        for channel, target, deliver in jobs:
            with self._count_lock:
                waiting = self._counts[key]
                full = waiting >= self.per_schedule
                if not full:
                    self._counts[key] += 1
            if not full:
                try:
                    self._queue.put_nowait(
                        (key, lambda deliver=deliver: self._finish(on_done, deliver())))
                    count += 1
                    continue
                except queue.Full:
                    with self._count_lock:
                        self._counts[key] -= 1
                    why = "the notification queue is full"
            else:
                why = f"{waiting} notifications of this schedule are waiting already"
            self._finish(on_done, self._failed(channel, target, event, f"dropped: {why}"))
        return count

    @staticmethod
    def _finish(on_done: Deliver | None, outcome: NotificationOutcome) -> None:
        if on_done is not None:
            on_done(outcome)

    # -- webhooks -------------------------------------------------------------------------------

    def _addresses(self, host: str, port: int, deadline: _Deadline) -> list[Address]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        future = self._dns.submit(self._resolve_fn, host, port)
        found = future.result(timeout=deadline.left())
        return [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]

    def _webhook(self, url: str, event: str, body: dict[str, Any]) -> NotificationOutcome:
        target = webhook_host(url)
        deadline = _Deadline(self.timeout)
        sock: socket.socket | None = None
        try:
            self.policy.check_url(url)
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addresses = self._addresses(host, port, deadline)
            self.policy.check_addresses(host, addresses)
            sock = socket.create_connection((str(addresses[0]), port), timeout=deadline.left())
            deadline.guard(sock)
            if parts.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=host, do_handshake_on_connect=False)
                deadline.guard(sock)
                sock.do_handshake()
            conn = http.client.HTTPConnection(host, port, timeout=deadline.left())
            conn.sock = sock
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request("POST", path, body=json.dumps(body, default=str).encode(), headers={
                "Content-Type": "application/json",
                "User-Agent": f"jupyter-mlplat/{__version__}"})
            answer = conn.getresponse()
            answer.read(65536)
            status = answer.status
            if deadline.expired:
                raise TimeoutError
        except WebhookRefusedError as exc:
            return self._failed("webhook", target, event, f"refused: {exc}")
        except TimeoutError:  # socket timeouts and the lookup's too (same class)
            return self._failed("webhook", target, event,
                                f"no answer within {self.timeout:g}s (timed out)")
        except socket.gaierror:
            return self._failed("webhook", target, event, "the host name could not be resolved")
        except ssl.SSLError:
            return self._failed("webhook", target, event, "the TLS connection failed")
        except (OSError, http.client.HTTPException):
            if deadline.expired:
                return self._failed("webhook", target, event,
                                    f"no answer within {self.timeout:g}s (timed out)")
            return self._failed("webhook", target, event, "could not connect or no valid "
                                "HTTP answer")
        finally:
            deadline.cancel()
            if sock is not None:
                sock.close()
        if 300 <= status < 400:
            return self._failed("webhook", target, event,
                                f"HTTP {status}: redirects are not followed")
        if status >= 400:
            return self._failed("webhook", target, event, f"HTTP {status}")
        return NotificationOutcome(channel="webhook", target=target, event=event, status="sent",
                                   detail=f"HTTP {status}", at=datetime.now(UTC))

    # -- e-mail ---------------------------------------------------------------------------------

    def _email(self, to: list[str], event: str, body: dict[str, Any]) -> NotificationOutcome:
        target = ", ".join(to)
        cfg = self.config
        if not cfg.smtp_host:
            return self._failed("email", target, event, "no SMTP server configured "
                                "(c.MLPlat.smtp_host / MLPLAT_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = cfg.smtp_from
        message["To"] = target
        message["Subject"] = body["text"][:200]
        message.set_content(body["text"] + "\n\n" + json.dumps(body["firing"], indent=2,
                                                               default=str))
        deadline = _Deadline(self.timeout)
        try:
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=self.timeout) as smtp:
                if smtp.sock is not None:
                    deadline.guard(smtp.sock)
                if cfg.smtp_starttls:
                    smtp.starttls()
                if cfg.smtp_username:
                    smtp.login(cfg.smtp_username, cfg.smtp_password)
                smtp.send_message(message)
        except Exception as exc:  # noqa: BLE001 - down, refused, auth: recorded, not raised
            detail = (f"no answer within {self.timeout:g}s (timed out)" if deadline.expired
                      else f"{type(exc).__name__}: {exc}")
            return self._failed("email", target, event, detail)
        finally:
            deadline.cancel()
        return NotificationOutcome(channel="email", target=target, event=event, status="sent",
                                   at=datetime.now(UTC))

    @staticmethod
    def _failed(channel: str, target: str, event: str, detail: str) -> NotificationOutcome:
        log.warning("%s notification to %s failed: %s", channel, target, detail)
        return NotificationOutcome(channel=channel, target=target, event=event,  # type: ignore[arg-type]
                                   status="failed", detail=detail, at=datetime.now(UTC))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty (tests, shutdown); False on timeout."""
        done = threading.Event()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the queued deliveries, waiting at most ``timeout`` seconds."""
        self.wait(timeout)
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=1.0)
            except queue.Full:
                break
        self._dns.shutdown(wait=False, cancel_futures=True)


def _system_resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)})
