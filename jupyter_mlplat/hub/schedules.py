"""What a user's schedule rows may name, checked by the store service before they are written.

Schedules live in the shared store and are fired by ``jupyter mlplat scheduler`` running as a
hub service, not by the user's own server: a row must not point that process at another user's
files (the notebook is a path relative to the owner's root), at a kernel the hub did not choose,
or at hosts inside the hub's network (notification webhooks reach public hosts, or an allow-list).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidSpecError

#: Kernels a schedule may name unless the service is configured otherwise.
DEFAULT_KERNELS = frozenset({"python3", "mlplat-python3"})
#: Host names that reach the machine itself or a cloud's metadata service.
_BLOCKED_HOSTS = frozenset({"localhost", "metadata", "metadata.google.internal",
                            "metadata.azure.internal", "instance-data"})
_BLOCKED_SUFFIXES = (".localhost", ".internal", ".local")


@dataclass(frozen=True)
class SchedulePolicy:
    """What a user's schedule row may name, checked by the store service.

    Parameters
    ----------
    kernels : frozenset of str
        Kernel names a notebook target may ask for (None, the notebook's own, is always fine).
    webhook_hosts : frozenset of str
        Hosts notification webhooks may reach: exact names, or ``*.example.org`` for a domain.
        Empty: any host whose addresses are all public (never loopback, private, link-local
        such as the cloud metadata address 169.254.169.254, or reserved).
    resolve : callable, optional
        Host name -> its addresses (default: the system resolver).
    """

    kernels: frozenset[str] = DEFAULT_KERNELS
    webhook_hosts: frozenset[str] = frozenset()
    resolve: Any = None

    def check(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` of ``add_schedule`` / ``update_schedule``, checked and normalised.

        Raises
        ------
        InvalidSpecError
            A value the scheduler must not act on; the message says what is expected.
        """
        from ..schemas import ScheduleNotify, ScheduleOnSuccess

        out = dict(fields)
        if "notebook_path" in out:
            out["notebook_path"] = check_notebook_path(out["notebook_path"])
        if "target" in out and out["target"] not in ("notebook", "pipeline"):
            raise InvalidSpecError(f"target must be 'notebook' or 'pipeline'; got "
                                   f"{out['target']!r}")
        if out.get("kernel_name") is not None and out["kernel_name"] not in self.kernels:
            raise InvalidSpecError(
                f"kernel {out['kernel_name']!r} is not one the scheduler runs; choose one of "
                f"{', '.join(sorted(self.kernels))} (or none: the notebook's own)")
        if "missed" in out and out["missed"] not in ("latest", "skip"):
            raise InvalidSpecError(f"missed must be 'latest' or 'skip'; got {out['missed']!r}")
        if "cron" in out or "timezone" in out:
            from ..scheduler.cron import CronSchedule, parse_timezone

            if "cron" in out:
                CronSchedule(out["cron"], out.get("timezone") or "UTC")
            else:
                parse_timezone(out["timezone"])
        if "notify" in out:
            notify = _validated(ScheduleNotify, out["notify"] or {}, "notify")
            for url in notify.webhook:
                self.check_webhook(url)
            out["notify"] = notify.model_dump(mode="json")
        if "on_success" in out:
            from ..store.registry import check_model_name

            action = _validated(ScheduleOnSuccess, out["on_success"] or {}, "on_success")
            deploy = action.deploy_if_blessed
            if deploy is not None:
                check_model_name(deploy.model)
                if deploy.endpoint is not None:
                    check_model_name(deploy.endpoint, "endpoint name")
            out["on_success"] = action.model_dump(mode="json", exclude_none=True)
        return out

    def check_webhook(self, url: Any) -> None:
        """Refuse a webhook URL the scheduler must not call (see the class docstring)."""
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidSpecError(f"webhook {url!r} is not an http(s) URL; expected e.g. "
                                   "'https://hooks.example.com/T000/B000'")
        host = parts.hostname.lower().rstrip(".")
        if self.webhook_hosts:
            if not any(_host_matches(host, allowed) for allowed in self.webhook_hosts):
                raise InvalidSpecError(
                    f"webhook host {host!r} is not allowed by the store service; allowed: "
                    f"{', '.join(sorted(self.webhook_hosts))}")
            return
        if host in _BLOCKED_HOSTS or host.endswith(_BLOCKED_SUFFIXES):
            raise InvalidSpecError(f"webhook host {host!r} is internal; webhooks must reach a "
                                   "public host (or one the service's allow-list names)")
        for address in self._addresses(host):
            if not address.is_global:
                raise InvalidSpecError(
                    f"webhook host {host!r} is (or resolves to) {address}, which is not a "
                    "public address (loopback, private, link-local or reserved); webhooks must "
                    "reach a public host, or one the service's allow-list names")

    def _addresses(self, host: str) -> list[Any]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            found = (self.resolve or _resolve)(host)
        except OSError as exc:
            raise InvalidSpecError(
                f"webhook host {host!r} cannot be resolved ({exc}); webhooks must reach a "
                "public host, or one the service's allow-list names") from None
        return [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]


def _validated(model: Any, value: Any, where: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        at = ".".join(str(p) for p in err.get("loc", ()))
        raise InvalidSpecError(f"{where}{'.' + at if at else ''}: {err.get('msg')}") from None


def _resolve(host: str) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})


def _host_matches(host: str, allowed: str) -> bool:
    allowed = allowed.lower().rstrip(".")
    if allowed.startswith("*."):
        return host.endswith(allowed[1:])
    return host == allowed


def check_notebook_path(path: Any) -> str:
    """A schedule's notebook: a path relative to the owner's root, inside it.

    Raises
    ------
    InvalidSpecError
        Not a string, empty, absolute, with a ``..`` segment, a NUL or a ``~``, or not an
        ``.ipynb`` file.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidSpecError("a schedule needs a notebook path, e.g. 'retrain.ipynb'")
    if "\x00" in path:
        raise InvalidSpecError("the notebook path contains a NUL character")
    if len(path) > 4096:
        raise InvalidSpecError("the notebook path is longer than 4096 characters")
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\", "~")) or (len(path) > 1 and path[1] == ":"):
        raise InvalidSpecError(f"notebook path {path!r} is absolute; expected a path relative "
                               "to your home folder (the root of your server), e.g. "
                               "'work/retrain.ipynb'")
    if ".." in parts:
        raise InvalidSpecError(f"notebook path {path!r} leads outside your root ('..'); "
                               "expected a path inside it")
    if not path.endswith(".ipynb"):
        raise InvalidSpecError(f"notebook path {path!r} is not a notebook; expected an .ipynb "
                               "file")
    return "/".join(p for p in parts if p not in ("", "."))
