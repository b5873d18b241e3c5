"""Targets for the processes store tests spawn: kept in a module with light imports, since a
spawned process imports the module its target lives in before it starts."""

from __future__ import annotations

from typing import Any

from jupyter_mlplat.store.sql import Store


def artifact_ref(sha: str) -> dict[str, Any]:
    """An ``ArtifactRef`` dict of a model file with content hash ``sha``."""
    return {"sha256": sha, "uri": f"/objects/{sha}.skops", "format": "skops",
            "type_name": "sklearn.linear_model.LogisticRegression", "size": 10,
            "trusted_only": False, "meta": {}}


def add_versions(url: str, owner: str, n: int) -> None:
    """Register ``n`` versions of model ``churn`` as ``owner``, contents named by owner and i."""
    store = Store(url, owner, sweep=False)
    try:
        for i in range(n):
            store.add_model_version("churn", artifact=artifact_ref(f"{owner[0]}{i:063d}"),
                                    flavor="sklearn", created_by=owner)
    finally:
        store.close()
