"""SharingService: projects, their members, and what is shared with them. Every front door (CLI,
REST, Python API) uses it; the store does the scoping (:mod:`jupyter_mlplat.store.projects`).

Everything is private by default. A project groups users (added by its owner, or the members of
a JupyterHub group it follows); sharing a model, endpoint, pipeline or schedule with a project
lets its members read it, never change it. A model another user shared loads in your process in
safe formats only: ``mlp.load_model("alice/churn@production")``.
"""

from __future__ import annotations

from typing import Any

from ..config import MLPlat
from ..schemas import (
    DescribeSharedModel,
    ListProjectsResponse,
    ListSharedResponse,
    ProjectInfo,
    SharedEndpointInfo,
    SharedItem,
    SharedPipelineInfo,
    SharedScheduleInfo,
)
from .registry import ModelRegistry, split_owner


class SharingService:
    """Projects and sharing for one owner.

    Parameters
    ----------
    config : MLPlat, optional
        Settings; read from the environment when omitted.
    store, artifacts : optional
        Ready-made stores; built from ``config`` when omitted.
    """

    def __init__(self, config: MLPlat | None = None, *, store: Any = None,
                 artifacts: Any = None) -> None:
        self.config = config or MLPlat()
        if store is None:
            from ..store import open_store

            store = open_store(self.config)
        self.store = store
        self._artifacts = artifacts

    @property
    def registry(self) -> ModelRegistry:
        """The owner's registry (artifacts opened on first use: most calls need none)."""
        registry = ModelRegistry.for_config(self.config, store=self.store,
                                            artifacts=self._artifacts)
        self._artifacts = registry.artifacts
        return registry

    # -- projects ------------------------------------------------------------------------------

    def create_project(self, name: str, *, hub_group: str | None = None,
                       description: str = "", members: list[str] | None = None) -> ProjectInfo:
        """A new project of yours with ``members``; with ``hub_group``, that hub group's members
        belong too. Nothing is created unless every member's name is valid."""
        # members only when there are some: an older store service's create_project has none
        extra = {"members": members} if members else {}
        return _project(self.store.create_project(name, hub_group=hub_group,
                                                  description=description, **extra))

    def list_projects(self) -> ListProjectsResponse:
        """The projects you own or belong to."""
        return ListProjectsResponse(projects=[_project(p) for p in self.store.projects()])

    def describe_project(self, name: str) -> ProjectInfo:
        """A project of yours with its members and everything shared with it."""
        return _project(self.store.project(name))

    def add_member(self, name: str, user: str) -> ProjectInfo:
        return _project(self.store.add_project_member(name, user))

    def remove_member(self, name: str, user: str) -> ProjectInfo:
        return _project(self.store.remove_project_member(name, user))

    def delete_project(self, name: str) -> int:
        """Delete a project of yours; what was shared with it becomes private again."""
        return int(self.store.delete_project(name))

    # -- sharing -------------------------------------------------------------------------------

    def share(self, kind: str, name: str, project: str) -> SharedItem:
        """Share your ``kind`` ``name`` with ``project`` (one you belong to)."""
        return SharedItem(**self.store.share(kind, name, project))

    def unshare(self, kind: str, name: str) -> SharedItem:
        """Make your ``kind`` ``name`` private again."""
        return SharedItem(**self.store.share(kind, name, None))

    def shared_with_me(self, kind: str | None = None) -> ListSharedResponse:
        """What other users shared with your projects."""
        return ListSharedResponse(shared=[SharedItem(**row)
                                          for row in self.store.shared_with_me(kind)])

    def my_shares(self) -> ListSharedResponse:
        """What you shared, and with which project."""
        return ListSharedResponse(shared=[SharedItem(**row) for row in self.store.shares()])

    def describe_model(self, ref: str) -> DescribeSharedModel:
        """A version of a model shared with you: ``"alice/churn"``, ``"alice/churn@production"``.
        """
        owner, rest = split_owner(ref, self.store.owner)
        if owner is None:
            from ..errors import InvalidSpecError

            raise InvalidSpecError(f"name a model another user shared with you as "
                                   f"'OWNER/NAME[@VERSION|@ALIAS]'; got {ref!r}")
        info = self.registry.shared(owner, rest)
        version, artifact = info["version"], info["artifact"]
        return DescribeSharedModel(
            owner=owner, name=info["name"], version=version["version"],
            versions=info["versions"], aliases=info["aliases"], flavor=version["flavor"],
            format=artifact["format"], loadable=_loadable(version["flavor"], artifact),
            signature=version["signature"], created_at=version["created_at"])

    def describe_endpoint(self, owner: str, name: str) -> SharedEndpointInfo:
        """An endpoint ``owner`` shared with you: what it serves, its revisions (no token)."""
        return SharedEndpointInfo(**self.store.shared_endpoint(owner, name))

    def describe_pipeline(self, owner: str, name: str, limit: int = 20) -> SharedPipelineInfo:
        """A pipeline ``owner`` shared with you: its newest runs with params and metrics."""
        return SharedPipelineInfo(**self.store.shared_pipeline(owner, name, limit))

    def describe_schedule(self, owner: str, schedule: str) -> SharedScheduleInfo:
        """A schedule ``owner`` shared with you (by id) and its latest firings."""
        return SharedScheduleInfo(**self.store.shared_schedule(owner, schedule))

    def describe(self, kind: str, ref: str) -> Any:
        """What ``ref`` (``OWNER/NAME``; a model also ``OWNER/NAME@VERSION``) of ``kind`` is."""
        from ..errors import InvalidSpecError

        if kind == "model":
            return self.describe_model(ref)
        owner, _, name = ref.partition("/")
        if not owner or not name or "/" in name:
            raise InvalidSpecError(f"name a shared {kind} as OWNER/NAME; got {ref!r}")
        describe = {"endpoint": self.describe_endpoint, "pipeline": self.describe_pipeline,
                    "schedule": self.describe_schedule}.get(kind)
        if describe is None:
            raise InvalidSpecError(f"expected a kind among model, endpoint, pipeline, schedule; "
                                   f"got {kind!r}")
        return describe(owner, name)

    def close(self) -> None:
        self.store.close()


def _project(row: dict[str, Any]) -> ProjectInfo:
    return ProjectInfo(**{**row, "shared": [SharedItem(**s) for s in row.get("shared", [])]})


def _loadable(flavor: str, artifact: dict[str, Any]) -> bool:
    """Whether another user's process may load this model (what ``load_shared`` accepts)."""
    from .flavors.base import PICKLE_FORMATS

    return (artifact.get("format") == "skops" and flavor == "sklearn"
            and not artifact.get("trusted_only")
            and not (artifact.get("meta") or {}).get("trusted_only")
            and artifact.get("format") not in PICKLE_FORMATS)
