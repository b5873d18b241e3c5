"""The store's projects and sharing queries (a ``Store`` mixin).

A **project** groups users: the users its owner added, or the members of a JupyterHub group it
follows (``hub_group``; the store learns the caller's hub groups from the store service, so a
hub group counts only under JupyterHub). Everything is private by default. Sharing a model,
endpoint, pipeline or schedule with a project sets that row's ``project``; every member may then
*read* it through the ``shared_*`` queries here, never change it. Every other query of the store
stays scoped to ``self.owner`` alone.

Reads of another owner's row go through :meth:`ProjectQueries._shared_view`, which first checks
that the row is shared with a project the caller belongs to; anything else reads as not found,
exactly like a name that never existed, so existence does not leak. What another owner shared
never carries secrets: endpoint token hashes and schedule notification targets stay out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update

from ..errors import ConflictError, InvalidSpecError, NotFoundError
from . import orm
from .engine import insert_or_skip

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Project names: lowercase, one URL path segment; a project is ``owner/name``.
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: A user or hub group name as JupyterHub allows it (no control characters, no '/').
_USER_RE = re.compile(r"^[^\x00-\x1f\x7f-\x9f/]{1,255}$")
#: Members a project can be created with in one call (more are added one by one).
MAX_NEW_MEMBERS = 500
#: Control characters a description may not hold (a terminal would obey them).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: What can be shared, and the table holding it.
SHAREABLE: dict[str, type[Any]] = {
    "model": orm.Model, "endpoint": orm.Endpoint, "pipeline": orm.Pipeline,
    "schedule": orm.Schedule,
}
#: Formats of another owner's objects the store service hands out (never pickle-based).
SAFE_SHARED_FORMATS: dict[str, str] = {"skops": ".skops", "json": ".json", "npy": ".npy",
                                       "parquet": ".parquet"}


def check_project_name(name: Any) -> str:
    """``name`` if it is a valid project name, else a clear ``InvalidSpecError``."""
    if not isinstance(name, str) or not PROJECT_RE.match(name):
        raise InvalidSpecError(
            f"project name {name!r} is not valid; expected 1-64 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit")
    return name


def check_user_name(name: Any, what: str = "user name") -> str:
    if not isinstance(name, str) or not _USER_RE.match(name) or name != name.strip():
        raise InvalidSpecError(f"{what} {name!r} is not valid; expected a JupyterHub user name "
                               "(1-255 characters, no '/', no control characters, no spaces at "
                               "the ends)")
    return name


def check_kind(kind: Any) -> str:
    if kind not in SHAREABLE:
        raise InvalidSpecError(f"cannot share a {kind!r}; expected one of "
                               f"{', '.join(SHAREABLE)}")
    return kind


class ProjectQueries:
    """Projects, their members, and reads of what others shared (mixed into ``Store``)."""

    owner: str
    #: The caller's JupyterHub groups (set by the store service for each call; empty otherwise).
    groups: frozenset[str] = frozenset()

    if TYPE_CHECKING:
        def session(self) -> Any: ...
        def match_schedules(self, ref: str) -> list[orm.Schedule]: ...

    # -- projects ------------------------------------------------------------------------------

    def _project_key(self, ref: Any) -> str:
        """``"fraud"`` (the caller's own) or ``"alice/fraud"`` -> ``"owner/name"``."""
        if not isinstance(ref, str) or not ref:
            raise InvalidSpecError(f"name a project as NAME (yours) or OWNER/NAME; got {ref!r}")
        owner, _, name = ref.rpartition("/")
        check_project_name(name)
        return f"{check_user_name(owner, 'project owner') if owner else self.owner}/{name}"

    def _my_projects(self, s: Session) -> Any:
        """A subquery of the keys of the projects the caller belongs to."""
        member = select(orm.ProjectMember.project_id).where(orm.ProjectMember.user == self.owner)
        clauses = [orm.Project.owner == self.owner, orm.Project.id.in_(member)]
        if self.groups:
            clauses.append(orm.Project.hub_group.in_(sorted(self.groups)))
        return select(orm.Project.key).where(or_(*clauses))

    def _project(self, s: Session, ref: str, *, own: bool = False,
                 lock: bool = False) -> orm.Project:
        """Project ``ref`` if the caller belongs to it (``own``: if the caller owns it);
        ``lock`` holds it (shared lock) until the transaction ends, so it cannot be deleted
        under a share or a new member."""
        key = self._project_key(ref)
        query = select(orm.Project).where(orm.Project.key == key,
                                          orm.Project.key.in_(self._my_projects(s)))
        if lock:
            query = query.with_for_update(read=True, of=orm.Project)
        row = s.scalar(query)
        if row is None:
            raise NotFoundError(f"no project {ref!r} of yours; `jupyter mlplat project list` "
                                "lists the projects you belong to")
        if own and row.owner != self.owner:
            raise ConflictError(f"only the owner of project {row.key!r} can change it")
        return row

    def _project_dict(self, s: Session, row: orm.Project) -> dict[str, Any]:
        members = sorted(s.scalars(select(orm.ProjectMember.user).where(
            orm.ProjectMember.project_id == row.id)).all())
        role = ("owner" if row.owner == self.owner else
                "member" if self.owner in members else "hub group")
        return {"key": row.key, "name": row.name, "owner": row.owner,
                "hub_group": row.hub_group, "description": row.description,
                "members": members, "role": role, "created_at": row.created_at}

    def create_project(self, name: str, *, hub_group: str | None = None,
                       description: str = "",
                       members: list[str] | None = None) -> dict[str, Any]:
        """A new project ``owner/name`` of the caller's with ``members`` (user names); with
        ``hub_group`` (one the caller is in), that hub group's members belong too. The project
        and its members are created together or not at all."""
        check_project_name(name)
        if members is None:
            members = []
        if not isinstance(members, list | tuple):  # a str would be its letters: users "b", "o"
            raise InvalidSpecError(f"members is a list of user names; got "
                                   f"{type(members).__name__} {members!r:.80}")
        for user in members:
            check_user_name(user)
        members = list(dict.fromkeys(members))
        if len(members) > MAX_NEW_MEMBERS:
            raise InvalidSpecError(f"a new project takes at most {MAX_NEW_MEMBERS} members; got "
                                   f"{len(members)} (add the others once it exists: `jupyter "
                                   "mlplat project add`, PUT projects/OWNER/NAME/members/USER)")
        if hub_group is not None:
            check_user_name(hub_group, "hub group")
            if hub_group not in self.groups:
                raise InvalidSpecError(
                    f"a project can follow only a hub group you are in; you are not in "
                    f"{hub_group!r} (your groups: {', '.join(sorted(self.groups)) or 'none'})")
        if not isinstance(description, str) or len(description) > 2000 \
                or _CONTROL_RE.search(description):
            raise InvalidSpecError("a project description is text of at most 2000 characters, "
                                   "without control characters")
        with self.session() as s:
            created = insert_or_skip(s, orm.Project, {
                "owner": self.owner, "name": name, "key": f"{self.owner}/{name}",
                "hub_group": hub_group, "description": description})
            if created is None:
                raise ConflictError(f"you have a project named {name!r} already")
            s.add_all(orm.ProjectMember(project_id=created, user=user, added_by=self.owner)
                      for user in members)
            return self._project_dict(s, s.get(orm.Project, created))

    def projects(self) -> list[dict[str, Any]]:
        """The projects the caller belongs to (owns, was added to, or is in its hub group)."""
        with self.session() as s:
            rows = s.scalars(select(orm.Project).where(
                orm.Project.key.in_(self._my_projects(s))).order_by(orm.Project.key)).all()
            return [self._project_dict(s, row) for row in rows]

    def project(self, ref: str) -> dict[str, Any]:
        """One project the caller belongs to, with its members and what is shared with it."""
        with self.session() as s:
            row = self._project(s, ref)
            out = self._project_dict(s, row)
            out["shared"] = self._shared_rows(s, projects=[row.key])
            return out

    def add_project_member(self, ref: str, user: str) -> dict[str, Any]:
        """Add ``user`` to the caller's project (adding a member twice is no change)."""
        check_user_name(user)
        with self.session() as s:
            row = self._project(s, ref, own=True, lock=True)
            insert_or_skip(s, orm.ProjectMember, {"project_id": row.id, "user": user,
                                                  "added_by": self.owner})
            return self._project_dict(s, row)

    def remove_project_member(self, ref: str, user: str) -> dict[str, Any]:
        """Remove ``user`` from the caller's project; any member may remove themselves (leave).
        """
        check_user_name(user)
        with self.session() as s:
            row = self._project(s, ref, own=user != self.owner)
            gone = s.execute(delete(orm.ProjectMember).where(
                orm.ProjectMember.project_id == row.id, orm.ProjectMember.user == user))
            if not gone.rowcount:
                raise NotFoundError(f"{user!r} is not a member of project {row.key!r}")
            return self._project_dict(s, row)

    def delete_project(self, ref: str) -> int:
        """Delete the caller's project: its members go, and whatever was shared with it becomes
        private again. Returns how many shared rows that was."""
        with self.session() as s:
            row = self._project(s, ref, own=True)
            s.execute(select(orm.Project.id).where(orm.Project.id == row.id)
                      .with_for_update())  # waits for shares and new members in flight
            unshared = 0
            for table in SHAREABLE.values():
                unshared += s.execute(update(table).where(table.project == row.key)
                                      .values(project=None)).rowcount or 0
            s.execute(delete(orm.ProjectMember).where(orm.ProjectMember.project_id == row.id))
            s.delete(row)
            return unshared

    # -- sharing -------------------------------------------------------------------------------

    def _own_row(self, s: Session, kind: str, ref: str) -> Any:
        """The caller's ``kind`` row named ``ref`` (a schedule: its id or name)."""
        table = SHAREABLE[check_kind(kind)]
        if not isinstance(ref, str) or not ref:
            raise InvalidSpecError(f"name the {kind} to share; got {ref!r}")
        if kind == "schedule":
            found = self.match_schedules(ref)
            if len(found) > 1:
                raise InvalidSpecError(f"{ref!r} names {len(found)} schedules; use the id")
            if not found:
                raise NotFoundError(f"no schedule {ref!r}")
            return s.get(table, found[0].id)
        rows = s.scalars(select(table).where(table.owner == self.owner, table.name == ref)
                         .limit(2)).all()
        if kind == "pipeline" and not rows:
            rows = s.scalars(select(table).where(table.owner == self.owner,
                                                 table.path == ref)).all()
        if len(rows) > 1:
            raise InvalidSpecError(f"{ref!r} names more than one pipeline; give its notebook "
                                   "path instead")
        if not rows:
            raise NotFoundError(f"no {kind} {ref!r}")
        return rows[0]

    def share(self, kind: str, name: str, project: str | None) -> dict[str, Any]:
        """Share the caller's ``kind`` ``name`` with ``project`` (``NAME`` of the caller's own,
        or ``OWNER/NAME`` of one the caller belongs to); None makes it private again."""
        check_kind(kind)
        with self.session() as s:
            key = None
            if project is not None:
                key = self._project(s, project, lock=True).key
            row = self._own_row(s, kind, name)
            row.project = key
            s.flush()  # SQLite: the write lock is ours from here on
            if key is not None and s.scalar(select(orm.Project.id).where(
                    orm.Project.key == key)) is None:
                raise NotFoundError(f"no project {project!r} of yours (it was just deleted)")
            return {"kind": kind, "name": row.name, "id": str(row.id), "owner": row.owner,
                    "project": key}

    def _shared_rows(self, s: Session, *, projects: Any, kind: str | None = None,
                     others_only: bool = False) -> list[dict[str, Any]]:
        out = []
        for k, table in SHAREABLE.items():
            if kind is not None and k != kind:
                continue
            q = select(table).where(table.project.in_(projects))
            if others_only:
                q = q.where(table.owner != self.owner)
            if k == "schedule":
                q = q.where(table.deleted_at.is_(None))
            for row in s.scalars(q.order_by(table.owner, table.name)).all():
                out.append({"kind": k, "owner": row.owner, "name": row.name, "id": str(row.id),
                            "project": row.project})
        return out

    def shared_with_me(self, kind: str | None = None) -> list[dict[str, Any]]:
        """What other owners shared with the caller's projects: ``kind``, ``owner``, ``name``,
        ``id``, ``project`` (read it with the ``shared_*`` queries)."""
        if kind is not None:
            check_kind(kind)
        with self.session() as s:
            return self._shared_rows(s, projects=self._my_projects(s), kind=kind,
                                     others_only=True)

    def shares(self) -> list[dict[str, Any]]:
        """What the caller shared, and with which project."""
        out = []
        with self.session() as s:
            for k, table in SHAREABLE.items():
                q = select(table).where(table.owner == self.owner, table.project.is_not(None))
                if k == "schedule":
                    q = q.where(table.deleted_at.is_(None))
                for row in s.scalars(q.order_by(table.name)).all():
                    out.append({"kind": k, "owner": row.owner, "name": row.name,
                                "id": str(row.id), "project": row.project})
        return out

    # -- reading what others shared ------------------------------------------------------------

    def _shared_view(self, kind: str, owner: str, ref: str) -> tuple[Any, Any]:
        """(``owner``'s read view, the shared row) when ``owner``'s ``kind`` ``ref`` is shared
        with a project of the caller's; else not found, as for a name that never existed."""
        check_kind(kind)
        check_user_name(owner, "owner")
        table = SHAREABLE[kind]
        with self.session() as s:
            q = select(table).where(table.owner == owner,
                                    table.project.in_(self._my_projects(s)))
            if kind == "schedule":  # by id, or by name when one shared schedule has it
                q = q.where(table.deleted_at.is_(None))
                rows = s.scalars(q.where(table.id == ref)).all() or \
                    s.scalars(q.where(table.name == ref).limit(2)).all()
                if len(rows) > 1:
                    raise InvalidSpecError(f"{owner} shared {len(rows)} schedules named "
                                           f"{ref!r} with you; use the id")
                row = rows[0] if rows else None
            else:
                row = s.scalar(q.where(table.name == ref).limit(1))
        if row is None:
            raise NotFoundError(f"no {kind} {owner}/{ref} shared with you; `jupyter mlplat "
                                "shared` lists what others shared with your projects")
        view = copy.copy(self)  # same engine, other owner: for the reads below only
        view.owner = owner
        view.groups = frozenset()
        return view, row

    def shared_model(self, owner: str, name: str, selector: str | None = None
                     ) -> dict[str, Any]:
        """A version of ``owner``'s shared model ``name`` (``selector``: a number, an alias,
        ``latest`` or None for the newest) with its artifact reference and aliases."""
        view, _ = self._shared_view("model", owner, name)
        versions = view.model_versions(name)
        aliases = view.aliases(name)
        if not versions:
            raise NotFoundError(f"model {owner}/{name} has no versions yet")
        if selector is None or selector == "latest":
            mv = versions[-1]
        elif isinstance(selector, str) and selector.isascii() and selector.isdigit():
            mv = view.model_version(name, int(selector))
        elif selector in aliases:
            mv = view.model_version(name, aliases[selector])
        else:
            raise NotFoundError(f"model {owner}/{name} has no alias {selector!r} (aliases: "
                                f"{', '.join(aliases) or 'none'})")
        # what loading and describing it needs; not where it came from (runs, notebook paths,
        # cells and input data stay the owner's)
        version = {"version": mv.version, "flavor": mv.flavor, "signature": mv.signature or {},
                   "meta": mv.meta or {}, "created_at": mv.created_at}
        return {"owner": owner, "name": name, "version": version, "aliases": aliases,
                "versions": [v.version for v in versions],
                "artifact": view.artifact_ref(mv.artifact_id)}

    def shared_endpoint(self, owner: str, name: str) -> dict[str, Any]:
        """``owner``'s shared endpoint ``name``: public or not and its revisions (no token)."""
        view, row = self._shared_view("endpoint", owner, name)
        revisions = view.endpoint_revisions(name)
        return {"owner": owner, "name": name, "project": row.project, "public": row.public,
                "revisions": [{"revision": r.revision, "action": r.action,
                               "routes": list(r.routes or []), "shadow": r.shadow,
                               "sticky_header": r.sticky_header, "public": r.public,
                               "forced": r.forced, "reason": r.reason, "actor": r.actor,
                               "at": r.created_at} for r in revisions]}

    def shared_pipeline(self, owner: str, pipeline: str, limit: int = 20) -> dict[str, Any]:
        """``owner``'s shared pipeline: its newest runs (at most ``limit``) with their params and
        metrics (the last value of each)."""
        view, row = self._shared_view("pipeline", owner, pipeline)
        limit = max(1, min(int(limit), 200))
        with view.session() as s:
            runs = list(s.scalars(select(orm.Run).where(
                orm.Run.owner == owner, orm.Run.pipeline_id == row.id,
            ).order_by(orm.Run.created_at.desc()).limit(limit)).all())
        ids = [r.id for r in runs]
        params: dict[str, dict[str, Any]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        if ids:
            for p in view.params(ids):
                params[p.run_id][p.name] = p.value
            for m in view.metrics(ids):  # oldest first: the last one stays
                metrics[m.run_id][m.name] = m.value
        return {"owner": owner, "name": row.name, "path": row.path, "project": row.project,
                "runs": [{"id": r.id, "status": r.status, "created_at": r.created_at,
                          "finished_at": r.finished_at, "parameters": r.parameters,
                          "params": params[r.id], "metrics": metrics[r.id]} for r in runs]}

    def shared_schedule(self, owner: str, schedule: str) -> dict[str, Any]:
        """``owner``'s shared schedule: when and what it runs and its latest firings (no
        notification targets: webhook URLs and addresses can hold secrets)."""
        view, row = self._shared_view("schedule", owner, schedule)
        firings = view.firings(row.id, limit=10)
        return {"owner": owner, "id": row.id, "name": row.name, "target": row.target,
                "notebook_path": row.notebook_path, "cron": row.cron, "timezone": row.timezone,
                "paused": row.paused, "next_fire_at": row.next_fire_at,
                "parameters": row.parameters, "project": row.project,
                "firings": [{"kind": f.kind, "status": f.status, "slot_at": f.slot_at,
                             "run_id": f.run_id, "finished_at": f.finished_at}
                            for f in firings]}

    def shared_object_owner(self, uri: str, owners: Collection[str] | None = None
                            ) -> str | None:
        """The owner of artifact ``uri`` when it belongs to a model version shared with the
        caller (its model file, or its sample input or output) and is in a safe format
        (:data:`SAFE_SHARED_FORMATS`, by its recorded format and its file name alike, whatever
        the owner marked it); else None. The store service hands such an object to the caller
        and nothing else of another owner's."""
        if not isinstance(uri, str) or not uri:
            return None
        safe_name = uri.endswith(tuple(SAFE_SHARED_FORMATS.values()))
        with self.session() as s:
            shared = (select(orm.Model.id).where(orm.Model.project.in_(self._my_projects(s)),
                                                 orm.Model.owner != self.owner))
            if owners is not None:
                shared = shared.where(orm.Model.owner.in_(list(owners)))
            found = s.execute(
                select(orm.Artifact.owner, orm.Artifact.trusted_only, orm.Artifact.format)
                .join(orm.ModelVersion, orm.ModelVersion.artifact_id == orm.Artifact.id)
                .where(orm.Artifact.uri == uri, orm.ModelVersion.model_id.in_(shared))
                .limit(1)).first()
            if found is not None:
                ok = (safe_name and not found.trusted_only
                      and uri.endswith(SAFE_SHARED_FORMATS.get(found.format, "\0")))
                return found.owner if ok else None
            for mv in s.scalars(select(orm.ModelVersion).where(
                    orm.ModelVersion.model_id.in_(shared))).all():
                for ref in (mv.sample_input, mv.sample_output):
                    if ref and ref.get("uri") == uri:
                        ok = (safe_name and not ref.get("trusted_only")
                              and uri.endswith(SAFE_SHARED_FORMATS.get(ref.get("format"), "\0")))
                        return mv.owner if ok else None
        return None
