"""Persistence: the SQL store (runs, steps, metrics) and the content-addressed artifact store.

Two implementations behind one interface each: direct SQL and a local/fsspec folder (single
user, or a process that holds the database itself), or the same interfaces over HTTP through
``jupyter mlplat service`` (JupyterHub users, who hold no database credentials). The URL picks:
``store_url`` / ``artifacts_url`` of the form ``mlplat+http(s)://HOST[:PORT]/PREFIX`` select the
service, anything else SQL and fsspec. Build them with :func:`open_store` and
:func:`open_artifacts`, never by naming a class.
"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Any

from ..hub.protocol import SERVICE_SCHEMES, is_service_url

if TYPE_CHECKING:
    from ..config import MLPlat

__all__ = ["SERVICE_SCHEMES", "is_service_url", "open_artifacts", "open_store"]


def open_store(config: MLPlat | None = None, *, sweep: bool = True) -> Any:
    """The store ``config.store_url`` names, scoped to the configured owner.

    Parameters
    ----------
    config : MLPlat, optional
        Settings; read from the environment when omitted.
    sweep : bool
        Mark the owner's runs whose process is gone as ``interrupted`` on open.

    Returns
    -------
    Store or RemoteStore
        A SQL store for a SQLAlchemy URL; for ``mlplat+http(s)://...`` a store reached through
        ``jupyter mlplat service``, whose owner is the hub user of the token. Then
        ``config.owner`` becomes that user when it was only the OS user name.

    Raises
    ------
    InvalidSpecError
        A malformed or unreachable store; or an owner configured explicitly (or as
        ``JUPYTERHUB_USER``) that is not the user the service authenticates.
    """
    from ..config import MLPlat

    config = config or MLPlat()
    if is_service_url(config.store_url):
        from .remote import RemoteStore

        store = RemoteStore(config.store_url, sweep=sweep)
        _adopt_owner(config, store.owner)
        return store
    from .sql import Store

    return Store(config.store_url, config.owner, sweep=sweep)


def _adopt_owner(config: MLPlat, owner: str) -> None:
    if config.owner == owner:
        return
    if config.owner == getpass.getuser() and not os.environ.get("JUPYTERHUB_USER"):
        config.owner = owner  # the OS user was only a default: the hub knows better
        return
    from ..errors import InvalidSpecError

    raise InvalidSpecError(
        f"the store service authenticates this token as {owner!r}, but the owner configured "
        f"here is {config.owner!r}; a store service always acts for the token's user: use "
        "that user's token, or leave c.MLPlat.owner unset")


def open_artifacts(url: str | os.PathLike[str] | MLPlat | None = None) -> Any:
    """The artifact store at ``url`` (or ``url.artifacts_url`` for a config).

    Parameters
    ----------
    url : str, path or MLPlat, optional
        A folder or fsspec URL, or ``mlplat+http(s)://...`` for the store service; default the
        configured ``artifacts_url``.

    Returns
    -------
    ArtifactStore or RemoteArtifactStore
    """
    if url is None or not isinstance(url, str | os.PathLike):
        from ..config import MLPlat

        url = (url or MLPlat()).artifacts_url
    if is_service_url(os.fspath(url)):
        from .remote import RemoteArtifactStore

        return RemoteArtifactStore(os.fspath(url))
    from .artifacts import ArtifactStore

    return ArtifactStore(url)
