"""Which hub tokens get into a service (the hub's answer itself: ``test_hub``)."""

from __future__ import annotations

import pytest
from jupyterhub.services.auth import HubAuth

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.hub.auth import TOKEN_CACHE_SECONDS, HubIdentity, NotPermittedError


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service the hub did not start: no scopes, no service name in the environment."""
    for name in ("JUPYTERHUB_OAUTH_ACCESS_SCOPES", "JUPYTERHUB_OAUTH_SCOPES",
                 "JUPYTERHUB_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


def _hub_auth(**kwargs: object) -> HubAuth:
    return HubAuth(api_token="unused", api_url="http://127.0.0.1:9/hub/api", **kwargs)


def test_no_scope_in_the_environment_is_never_any_token(bare_env, monkeypatch) -> None:
    assert _hub_auth().access_scopes == set()  # what HubAuth alone would accept: anything
    assert HubIdentity(_hub_auth()).access_scopes == {"access:services!service=mlplat"}
    assert HubIdentity(_hub_auth(), service_name="mlplat-serve").access_scopes == {
        "access:services!service=mlplat-serve"}
    with pytest.raises(InvalidSpecError, match="every valid token"):
        HubIdentity(_hub_auth(), access_scopes=set())


async def test_a_token_without_the_services_scope_is_refused(bare_env) -> None:
    class Hub(HubAuth):
        """The hub's answer for a narrow token of alice's."""

        async def user_for_token(self, token, sync=True, **kwargs):  # noqa: ANN001, ANN201
            return {"name": "alice", "kind": "user", "scopes": ["read:users!user=alice"]}

    identity = HubIdentity(Hub(api_token="unused", api_url="http://127.0.0.1:9/hub/api"))
    with pytest.raises(NotPermittedError, match="access:services!service=mlplat"):
        await identity.identify({"Authorization": "token narrow"})


def test_token_lookups_are_cached_briefly(bare_env, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "unused")
    identity = HubIdentity()  # as the services build it
    # a revoked token keeps working this long at most (JupyterHub's default is 300 s)
    assert identity.hub_auth.cache_max_age == TOKEN_CACHE_SECONDS <= 60
    assert identity.hub_auth.allow_token_in_url is False
