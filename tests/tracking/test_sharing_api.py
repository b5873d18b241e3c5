"""``mlp.create_project``, ``mlp.share`` and ``mlp.shared``: the Python front door to sharing."""

from __future__ import annotations

import pytest

import jupyter_mlplat as mlp
from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.errors import NotFoundError
from jupyter_mlplat.store.sql import Store


def test_share_and_list_from_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    store = Store(MLPlat().store_url, "alice")
    store.ensure_endpoint("scores")
    store.close()
    project = mlp.create_project("analytics", members=["bob"], description="team")
    assert (project.owner, project.members) == ("alice", ["bob"])
    item = mlp.share("endpoint", "scores", "analytics")
    assert (item.kind, item.project) == ("endpoint", "alice/analytics")
    assert mlp.shared(mine=True)[["kind", "name", "project"]].values.tolist() == [
        ["endpoint", "scores", "alice/analytics"]]

    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    seen = mlp.shared()
    assert seen[["kind", "owner", "name"]].values.tolist() == [["endpoint", "alice", "scores"]]
    with pytest.raises(NotFoundError):
        mlp.share("endpoint", "scores", None)  # bob cannot unshare alice's endpoint

    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    mlp.share("endpoint", "scores", None)
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    assert mlp.shared().empty
