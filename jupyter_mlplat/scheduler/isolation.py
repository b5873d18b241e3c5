"""What the kernels of a firing get: an allow-listed environment and an owner-scoped store.

A scheduler holds credentials its kernels must never see: its database URL, its hub token, the
SMTP password. So a kernel never starts from the scheduler's ``os.environ``. It gets:

- the variables of :data:`BASE_ENV` (``PATH``, ``HOME``, locale, Jupyter and thread settings,
  ...) and those ``scheduler_kernel_env`` names, from the scheduler's environment; never one of
  :data:`NEVER_PASSED` (the scheduler's own tokens and passwords), whatever is configured;
- the platform's settings for the schedule's owner (``MLPLAT_*``), and ``JUPYTERHUB_USER`` when
  the owner is not the scheduler's own user, so ``mlp.*`` in the kernel acts as the owner.

Where the store comes from depends on whom the scheduler serves:

- one owner (:class:`DirectKernelAccess`: the Jupyter server's loop, ``jupyter mlplat scheduler``
  for oneself or for ``--owner NAME``): the scheduler's own store and artifact URLs, as a kernel
  of that user's own server would have them;
- several owners (:class:`HubKernelAccess`, ``--all-owners``): the store service
  (``mlplat+http(s)://.../services/mlplat``, ``scheduler_service_url``) and a hub token of the
  schedule's owner, made for the firing through JupyterHub's REST API
  (``POST /hub/api/users/{owner}/tokens``, the scheduler's own ``JUPYTERHUB_API_TOKEN``, whose
  role needs the ``tokens`` scope), expiring soon after the firing's timeout and revoked when the
  firing ends. The service scopes every query to that owner. Without that configuration a
  scheduler for several owners refuses to start (:func:`kernel_access_for`).

Kernels still run as the scheduler's OS user: what that user can read on disk (a SQLite file,
the artifact folder) a kernel can read too. The scheduler's own process and its Dask workers are
made non-dumpable when it serves several owners (:mod:`.hardening`), so a kernel cannot read
their environment or memory. A scheduler serving several owners belongs where users' code
cannot reach its files: see the README ("Scheduling").
"""

from __future__ import annotations

import fnmatch
import getpass
import logging
import os
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from ..config import MLPlat
from ..errors import InvalidSpecError, MLPlatError

log = logging.getLogger(__name__)

#: Variables a kernel gets from the scheduler's environment (``*`` matches any characters).
BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "LC_*", "TZ",
    "TMPDIR", "TMP", "TEMP", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
    "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR",
    "IPYTHONDIR", "MPLBACKEND", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
    "XDG_DATA_HOME", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
#: Never passed to a kernel, even when ``scheduler_kernel_env`` names them: the scheduler's own
#: credentials. ``MLPLAT_*`` settings are set for the owner, never copied.
NEVER_PASSED = ("MLPLAT_*", "JUPYTERHUB_*", "JPY_*", "JUPYTER_TOKEN", "JUPYTER_PASSWORD")
#: Seconds a hub call of the scheduler may take.
HUB_TIMEOUT = 10.0


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def extra_env_names(config: MLPlat) -> tuple[str, ...]:
    """The ``scheduler_kernel_env`` names (comma-separated, ``*`` wildcards)."""
    return tuple(n.strip() for n in (config.scheduler_kernel_env or "").split(",") if n.strip())


def passed_on(name: str, extra: Collection[str] = ()) -> bool:
    """Whether the scheduler's variable ``name`` reaches its kernels."""
    return _matches(name, (*BASE_ENV, *extra)) and not _matches(name, NEVER_PASSED)


def kernel_environ(owner_env: dict[str, str], extra: Collection[str] = (),
                   environ: dict[str, str] | None = None) -> dict[str, str]:
    """A kernel's whole environment: the allowed part of ``environ`` (default ``os.environ``)
    and then ``owner_env``."""
    source = os.environ if environ is None else environ
    return {**{k: v for k, v in source.items() if passed_on(k, extra)}, **owner_env}


def blanked_environ(extra: Collection[str] = (), environ: dict[str, str] | None = None
                    ) -> dict[str, str]:
    """Every variable of ``environ`` (default ``os.environ``) a kernel must not see, as an empty
    string: for kernels that a pool starts from the process environment plus overrides
    (pipeline steps), so the overrides hide what the process holds."""
    source = os.environ if environ is None else environ
    return {k: "" for k in source if not passed_on(k, extra)}


@dataclass
class FiringAccess:
    """What one firing's kernels get: ``env`` (``MLPLAT_*``, identity, token) and the artifact
    URL their tracking context writes to. ``close()`` revokes what was issued for the firing."""

    env: dict[str, str]
    artifacts_url: str
    _close: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._close is not None:
            closer, self._close = self._close, None
            closer()


class BaseKernelAccess:
    """How a scheduler's kernels reach the store, per owner. Subclasses override
    :meth:`open` (and :meth:`owner_config` where the scheduler itself writes elsewhere)."""

    def owner_config(self, config: MLPlat, owner: str) -> MLPlat:
        """The settings a firing of ``owner`` runs with (the executor's, the deploy's)."""
        values = config.trait_values(config=True)
        values["owner"] = owner
        return MLPlat(**values)

    def owner_artifacts(self, config: MLPlat, owner: str, default: Any) -> Any:
        """Where the scheduler itself writes ``owner``'s artifacts (executed notebooks, logs)."""
        return default

    def open(self, config: MLPlat, owner: str, lifetime: float) -> FiringAccess:
        """The access of one firing of ``owner`` lasting at most ``lifetime`` seconds."""
        raise NotImplementedError


def _identity(owner: str) -> dict[str, str]:
    # the owner, unless the kernel's own OS user already names them: mlp.* in the kernel acts
    # as the owner (JUPYTERHUB_USER is what every front door reads first)
    return {"JUPYTERHUB_USER": owner} if owner != getpass.getuser() else {}


class DirectKernelAccess(BaseKernelAccess):
    """A scheduler for one owner: its kernels get the scheduler's own store and artifact URLs,
    as that user's own kernels would."""

    def open(self, config: MLPlat, owner: str, lifetime: float) -> FiringAccess:
        env = {**config.env(), **_identity(owner)}
        return FiringAccess(env=env, artifacts_url=config.artifacts_url)


class HubTokenError(MLPlatError):
    """JupyterHub did not issue a token for a schedule's owner."""


class HubKernelAccess(BaseKernelAccess):
    """A scheduler for several owners: kernels reach the store service with a short-lived hub
    token of the schedule's owner.

    Parameters
    ----------
    service_url : str
        ``mlplat+http(s)://HOST[:PORT]/services/NAME``: the store service.
    hub_api_url : str
        JupyterHub's REST API (``$JUPYTERHUB_API_URL``, e.g. ``http://127.0.0.1:8081/hub/api``).
    hub_token : str
        The scheduler's own hub token; its role needs the ``tokens`` scope.
    scopes : list of str, optional
        Scopes of the tokens made for owners; default: access to the store service
        (``access:services!service=NAME``).
    """

    def __init__(self, service_url: str, hub_api_url: str, hub_token: str,
                 scopes: list[str] | None = None) -> None:
        from ..store import is_service_url

        if not is_service_url(service_url):
            raise InvalidSpecError(
                f"scheduler_service_url {service_url!r} is not a store service URL; expected "
                "mlplat+http(s)://HOST[:PORT]/services/mlplat")
        self.service_url = service_url
        self.hub_api_url = hub_api_url.rstrip("/")
        self._hub_token = hub_token
        path = [p for p in (urlsplit(service_url.split("+", 1)[1]).path or "").split("/") if p]
        name = path[path.index("services") + 1] if "services" in path[:-1] else "mlplat"
        self.scopes = list(scopes) if scopes else [f"access:services!service={name}"]
        self._local = threading.local()

    def __repr__(self) -> str:  # never the token
        return f"HubKernelAccess({self.service_url!r}, {self.hub_api_url!r})"

    @classmethod
    def from_config(cls, config: MLPlat) -> HubKernelAccess:
        """Built from ``scheduler_service_url`` and ``$JUPYTERHUB_API_URL`` /
        ``$JUPYTERHUB_API_TOKEN`` (what JupyterHub gives a service it runs).

        Raises
        ------
        InvalidSpecError
            Any of the three is missing, naming what to set.
        """
        missing = []
        if not config.scheduler_service_url:
            missing.append("the store service URL (c.MLPlat.scheduler_service_url or "
                           "MLPLAT_SCHEDULER_SERVICE_URL, e.g. "
                           "mlplat+http://127.0.0.1:8765/services/mlplat)")
        api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get(
            "JUPYTERHUB_API_TOKEN")
        if not api_url or not token:
            missing.append("JupyterHub's API and a token of this scheduler with the 'tokens' "
                           "scope (JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN: run it as a "
                           "JupyterHub service)")
        if missing:
            raise InvalidSpecError(
                "a scheduler for several owners (--all-owners) runs every owner's notebooks, so "
                "their kernels must get an owner-scoped store (the store service and a hub "
                "token of each schedule's owner), never this scheduler's own database or "
                "tokens; missing: " + "; ".join(missing) + ". A scheduler for one owner "
                "(--owner NAME) needs none of this.")
        assert api_url is not None and token is not None
        return cls(config.scheduler_service_url, api_url, token)

    def owner_config(self, config: MLPlat, owner: str) -> MLPlat:
        values = config.trait_values(config=True)
        values.update(owner=owner, store_url=self.service_url,
                      artifacts_url=self._owner_artifacts_url(config, owner))
        return MLPlat(**values)

    def owner_artifacts(self, config: MLPlat, owner: str, default: Any) -> Any:
        return self._artifacts(config).store(owner)

    def _artifacts(self, config: MLPlat) -> Any:
        from ..hub.artifacts import OwnerArtifacts

        found = getattr(self._local, "artifacts", None)
        if found is None or found.root != config.artifacts_url.rstrip("/"):
            found = self._local.artifacts = OwnerArtifacts(config.artifacts_url)
        return found

    def _owner_artifacts_url(self, config: MLPlat, owner: str) -> str:
        # what the store service serves as the owner's objects; pipeline workers write there
        return self._artifacts(config).store(owner).url

    def open(self, config: MLPlat, owner: str, lifetime: float) -> FiringAccess:
        token, token_id = self._issue(owner, lifetime)
        env = {"MLPLAT_STORE_URL": self.service_url, "MLPLAT_ARTIFACTS_URL": self.service_url,
               "MLPLAT_SERVICE_TOKEN": token, "MLPLAT_LOGS_DIR": config.logs_dir,
               "JUPYTERHUB_USER": owner, "PYTHONPATH": kernel_pythonpath(),
               **({"MLPLAT_SERVING_URL": config.serving_url} if config.serving_url else {})}
        return FiringAccess(env=env, artifacts_url=self.service_url,
                            _close=lambda: self._revoke(owner, token_id))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        return requests.request(method, f"{self.hub_api_url}/{path}", timeout=HUB_TIMEOUT,
                                headers={"Authorization": f"token {self._hub_token}"},
                                **kwargs)

    def _issue(self, owner: str, lifetime: float) -> tuple[str, str | None]:
        import requests

        body = {"expires_in": max(60, int(lifetime)), "scopes": self.scopes,
                "note": "jupyter-mlplat scheduler: one firing of a schedule"}
        try:
            answer = self._request("POST", f"users/{quote(owner, safe='')}/tokens", json=body)
            # a hub that caps token lifetimes (token_expires_in_max_seconds) says by how much:
            # the firing gets the longest token it may have
            cap = _expires_in_max(answer)
            if cap is not None and cap < body["expires_in"]:
                log.info("the hub caps tokens at %d s; the firing's token of %s lasts that long",
                         cap, owner)
                answer = self._request("POST", f"users/{quote(owner, safe='')}/tokens",
                                       json={**body, "expires_in": cap})
        except requests.RequestException as exc:
            raise HubTokenError(f"JupyterHub at {self.hub_api_url} did not answer the request "
                                f"for a token of {owner!r}: {type(exc).__name__}") from None
        if answer.status_code not in (200, 201):
            raise HubTokenError(
                f"JupyterHub refused a token of {owner!r} for the firing (HTTP "
                f"{answer.status_code}: {_hub_message(answer)}); the scheduler's role needs "
                f"the 'tokens' scope and {owner!r} needs {', '.join(self.scopes)}")
        data = answer.json()
        return data["token"], data.get("id")

    def _revoke(self, owner: str, token_id: str | None) -> None:
        if token_id is None:
            return
        try:
            answer = self._request("DELETE", f"users/{quote(owner, safe='')}/tokens/"
                                             f"{quote(token_id, safe='')}")
            if answer.status_code not in (200, 204, 404):
                log.warning("revoking the firing token of %s: HTTP %s (it expires by itself)",
                            owner, answer.status_code)
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("revoking the firing token of %s failed (%s); it expires by itself",
                        owner, type(exc).__name__)


#: Its ``sitecustomize`` makes each kernel non-dumpable (every owner's kernels share one OS user).
KERNEL_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_site")


def kernel_pythonpath() -> str:
    """``PYTHONPATH`` for the kernels of several owners: :data:`KERNEL_SITE` first."""
    rest = os.environ.get("PYTHONPATH")
    return KERNEL_SITE + (os.pathsep + rest if rest else "")


def _expires_in_max(answer: Any) -> int | None:
    """The hub's token lifetime cap when ``answer`` refused a token for exceeding it."""
    import re

    if answer.status_code != 400:
        return None
    found = re.search(r"expires_in: \d+ must not exceed (\d+)", _hub_message(answer))
    return int(found.group(1)) if found else None


def _hub_message(answer: Any) -> str:
    try:
        return str(answer.json().get("message") or answer.reason)[:300]
    except ValueError:
        return str(answer.reason)


def serves_several_owners(owners: Collection[str] | None) -> bool:
    """Whether a loop for ``owners`` (None: everyone) runs more than one owner's code."""
    return owners is None or len(set(owners)) > 1


def kernel_access_for(config: MLPlat, owners: Collection[str] | None) -> BaseKernelAccess:
    """The access a loop for ``owners`` gives its kernels (see the module docstring).

    Raises
    ------
    InvalidSpecError
        Several owners, and the hub mode is not configured.
    """
    if serves_several_owners(owners):
        return HubKernelAccess.from_config(config)
    return DirectKernelAccess()
