"""The JupyterHub user behind a request to a hub service (``HubAuth``, token in the header).

A request carries the user's hub token (``Authorization: token <t>`` or ``Bearer <t>``); the hub
says whose token it is and which scopes it holds. A token in the URL or a cookie is never looked
at: the services here are APIs, called by programs, so no browser session can be ridden into
them.

A token gets in only with a scope that grants access to the service
(``access:services!service=<name>``, or what ``$JUPYTERHUB_OAUTH_ACCESS_SCOPES`` lists): never
"any valid token". A service the hub does not start itself gets no ``JUPYTERHUB_SERVICE_NAME``,
so the name falls back to the service's own default (``mlplat``, ``mlplat-serve``). The hub's
answers are cached for ``TOKEN_CACHE_SECONDS`` (JupyterHub's default is five minutes): a revoked
token keeps working at most that long.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidSpecError, MLPlatError

log = logging.getLogger(__name__)

#: Seconds the hub's answer about a token is reused (a revoked token works at most this long).
TOKEN_CACHE_SECONDS = 30

_AUTH_RE = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


class NotAuthenticatedError(MLPlatError):
    """No token, or one the hub does not know (answered with 401)."""


class NotPermittedError(MLPlatError):
    """A valid token without the scope a route needs (answered with 403)."""


@dataclass(frozen=True)
class HubUser:
    """Who a hub token belongs to, and what it may do."""

    name: str
    kind: str  # "user" or "service"
    scopes: frozenset[str]
    admin: bool = False
    groups: frozenset[str] = frozenset()  # the user's hub groups (projects can follow one)

    def has(self, scope: str) -> bool:
        """Whether the token holds ``scope`` for this user (unfiltered, or filtered to them)."""
        from jupyterhub.services.auth import check_scopes

        return bool(check_scopes({f"{scope}!user={self.name}"}, set(self.scopes)))


def request_token(headers: Any) -> str | None:
    """The token of an ``Authorization: token|Bearer <t>`` header, or None."""
    match = _AUTH_RE.match(headers.get("Authorization", "") or "")
    return match.group(1) if match else None


class HubIdentity:
    """Asks JupyterHub who a request's token belongs to.

    Parameters
    ----------
    hub_auth : HubAuth, optional
        Default: ``HubAuth.instance()``, configured from the service's environment
        (``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_SERVICE_NAME``), its
        answers cached for ``TOKEN_CACHE_SECONDS``.
    access_scopes : set of str, optional
        Scopes that let a token in at all; default the hub's for this service
        (``$JUPYTERHUB_OAUTH_ACCESS_SCOPES``, or ``access:services!service=<name>``).
    service_name : str
        The name used when the environment names no service (a service the hub does not
        start): tokens then need ``access:services!service=<service_name>``.

    Raises
    ------
    InvalidSpecError
        ``access_scopes`` given but empty: every valid token of the hub would get in.
    """

    def __init__(self, hub_auth: Any = None, access_scopes: set[str] | None = None, *,
                 service_name: str = "mlplat") -> None:
        if hub_auth is None:
            from jupyterhub.services.auth import HubAuth

            hub_auth = HubAuth.instance()
            hub_auth.allow_token_in_url = False
            hub_auth.cache_max_age = TOKEN_CACHE_SECONDS
        self.hub_auth = hub_auth
        if access_scopes is not None and not access_scopes:
            raise InvalidSpecError("access_scopes is empty: every valid token of the hub would "
                                   "get in; name the scopes a token needs, e.g. "
                                   f"{{'access:services!service={service_name}'}}")
        scopes = set(access_scopes if access_scopes is not None else hub_auth.access_scopes)
        if not scopes:  # neither JUPYTERHUB_OAUTH_ACCESS_SCOPES nor JUPYTERHUB_SERVICE_NAME
            name = os.environ.get("JUPYTERHUB_SERVICE_NAME") or service_name
            scopes = {f"access:services!service={name}"}
            log.info("the hub names no access scopes for this service; tokens need %s",
                     next(iter(scopes)))
        self.access_scopes = scopes

    async def identify(self, headers: Any) -> HubUser:
        """The hub user of a request's headers.

        Raises
        ------
        NotAuthenticatedError
            No token, or the hub does not know it.
        NotPermittedError
            The token may not use this service.
        """
        from jupyterhub.services.auth import check_scopes

        token = request_token(headers)
        if not token:
            raise NotAuthenticatedError(
                "no hub token: send 'Authorization: token <your JupyterHub API token>' "
                "($JUPYTERHUB_API_TOKEN in a user server)")
        model = await self.hub_auth.user_for_token(token, sync=False)
        if not model:
            raise NotAuthenticatedError("the hub does not know this token (expired or revoked)")
        scopes = frozenset(model.get("scopes") or ())
        if not check_scopes(self.access_scopes, set(scopes)):
            raise NotPermittedError(
                f"this token may not use this service; it needs "
                f"{' or '.join(sorted(self.access_scopes))}")
        return HubUser(name=str(model.get("name") or ""), kind=str(model.get("kind") or "user"),
                       scopes=scopes, admin=bool(model.get("admin")),
                       groups=frozenset(str(g) for g in model.get("groups") or ()))
