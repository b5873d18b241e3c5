"""The store's registry queries: models, versions, aliases, policies, verdicts, slices, eval data.

A mixin of :class:`jupyter_mlplat.store.sql.Store` (kept apart so ``sql.py`` stays about runs).
Like every store query, each one is scoped by ``self.owner``. Rows a lineage question needs are
only ever added: an alias move, a policy change, a verdict, a forced deploy are new rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidSpecError, NotFoundError
from . import orm
from .engine import insert_or_skip

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Model and alias names: what fits in a URL path segment and a ``name@alias`` reference.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_model_name(name: Any, what: str = "model name") -> str:
    """``name`` if it is a valid model or alias name, else a clear ``InvalidSpecError``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidSpecError(
            f"{what} {name!r} is not valid; expected 1-128 characters of letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return name


class RegistryQueries:
    """Registry rows of one owner (mixed into ``Store``, which provides the session and owner)."""

    owner: str

    if TYPE_CHECKING:
        def session(self) -> Any: ...
        def _run(self, s: Session, run_id: str) -> orm.Run: ...
        def _artifact_id(self, s: Session, ref: dict[str, Any]) -> int: ...

    # -- models and versions -------------------------------------------------------------------

    def _model(self, s: Session, name: str, *, create: bool = False,
               lock: bool = False) -> orm.Model:
        """The owner's model ``name``; ``create`` adds it when missing (once, races included);
        ``lock`` row-locks it until the transaction ends (PostgreSQL ``FOR UPDATE``)."""
        query = select(orm.Model).where(orm.Model.owner == self.owner, orm.Model.name == name)
        if lock:
            query = query.with_for_update()
        row = s.scalar(query)
        if row is None:
            if not create:
                raise NotFoundError(f"no model {name!r}; `jupyter mlplat models` lists them")
            insert_or_skip(s, orm.Model, {"owner": self.owner, "name": name})
            row = s.scalar(query)  # ours, or the one another process committed first
        return row

    def ensure_model(self, name: str) -> int:
        """The id of model ``name``, created if new (two processes creating it: one row)."""
        check_model_name(name)
        with self.session() as s:
            return self._model(s, name, create=True).id

    def add_model_version(self, name: str, **fields: Any) -> orm.ModelVersion:
        """Register the next version of model ``name``; ``fields`` are ``ModelVersion`` columns,
        ``artifact`` an ``ArtifactRef`` dict. Concurrent registrations get distinct numbers."""
        artifact = fields.pop("artifact")
        check_model_name(name)
        for _ in range(20):
            try:
                with self.session() as s:
                    # The model row's lock serialises numbering on PostgreSQL (a second writer
                    # waits, then reads the first one's number); on SQLite the unique constraint
                    # and this retry do it.
                    model_id = self._model(s, name, create=True, lock=True).id
                    latest = s.scalar(
                        select(func.max(orm.ModelVersion.version)).where(
                            orm.ModelVersion.model_id == model_id
                        )
                    )
                    row = orm.ModelVersion(
                        owner=self.owner, model_id=model_id, version=(latest or 0) + 1,
                        artifact_id=self._artifact_id(s, artifact), **fields,
                    )
                    s.add(row)
                    s.flush()
                    return row
            except IntegrityError:
                continue  # another process took that number: take the next one
        raise InvalidSpecError(f"could not allocate a version number for model {name!r}")

    def models(self) -> list[dict[str, Any]]:
        """Every model with its version count and newest version number."""
        with self.session() as s:
            rows = s.execute(
                select(orm.Model, func.count(orm.ModelVersion.id), func.max(orm.ModelVersion.version))
                .outerjoin(orm.ModelVersion, orm.ModelVersion.model_id == orm.Model.id)
                .where(orm.Model.owner == self.owner)
                .group_by(orm.Model.id)
                .order_by(orm.Model.name)
            ).all()
        return [{"model": m, "versions": n, "latest": latest} for m, n, latest in rows]

    def model_versions(self, name: str) -> list[orm.ModelVersion]:
        """Versions of ``name``, oldest first."""
        with self.session() as s:
            model = self._model(s, name)
            return list(s.scalars(
                select(orm.ModelVersion).where(orm.ModelVersion.model_id == model.id)
                .order_by(orm.ModelVersion.version)
            ).all())

    def model_version(self, name: str, version: int) -> orm.ModelVersion:
        with self.session() as s:
            model = self._model(s, name)
            row = s.scalar(select(orm.ModelVersion).where(
                orm.ModelVersion.model_id == model.id, orm.ModelVersion.version == version))
        if row is None:
            raise NotFoundError(
                f"model {name!r} has no version {version}; `jupyter mlplat model show {name}` "
                "lists its versions"
            )
        return row

    def model_version_by_id(self, model_version_id: int) -> orm.ModelVersion:
        with self.session() as s:
            row = s.scalar(select(orm.ModelVersion).where(
                orm.ModelVersion.id == model_version_id, orm.ModelVersion.owner == self.owner))
        if row is None:
            raise NotFoundError(f"no model version {model_version_id}")
        return row

    def model_name(self, model_id: int) -> str:
        with self.session() as s:
            name = s.scalar(select(orm.Model.name).where(
                orm.Model.id == model_id, orm.Model.owner == self.owner))
        if name is None:
            raise NotFoundError(f"no model {model_id}")
        return name

    def run_model_versions(self, run_id: str) -> list[tuple[str, orm.ModelVersion]]:
        """(model name, version row) registered by ``run_id``, in registration order."""
        with self.session() as s:
            rows = s.execute(
                select(orm.Model.name, orm.ModelVersion)
                .join(orm.Model, orm.Model.id == orm.ModelVersion.model_id)
                .where(orm.ModelVersion.owner == self.owner, orm.ModelVersion.run_id == run_id)
                .order_by(orm.ModelVersion.id)
            ).all()
        return [(name, mv) for name, mv in rows]

    def artifact_ref(self, artifact_id: int) -> dict[str, Any]:
        """An ``ArtifactRef`` dict for an artifacts row of this owner."""
        with self.session() as s:
            a = s.scalar(select(orm.Artifact).where(
                orm.Artifact.id == artifact_id, orm.Artifact.owner == self.owner))
        if a is None:
            raise NotFoundError(f"no artifact {artifact_id}")
        return {"name": a.type_name.rsplit(".", 1)[-1], "sha256": a.sha256, "uri": a.uri,
                "format": a.format, "type_name": a.type_name, "size": a.size,
                "trusted_only": a.trusted_only, "meta": a.meta or {}}

    def step_inputs(self, step_run_id: int) -> dict[str, str]:
        """Input artifacts of a step run: variable name -> sha256."""
        with self.session() as s:
            rows = s.execute(
                select(orm.StepIO.name, orm.Artifact.sha256)
                .join(orm.Artifact, orm.Artifact.id == orm.StepIO.artifact_id)
                .where(orm.StepIO.owner == self.owner, orm.StepIO.step_run_id == step_run_id,
                       orm.StepIO.direction == "in")
            ).all()
        return {name: sha for name, sha in rows}

    def step_version_code(self, version: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(orm.StepVersion.code).where(
                orm.StepVersion.owner == self.owner, orm.StepVersion.version == version))

    # -- aliases -------------------------------------------------------------------------------

    def add_alias_event(self, name: str, alias: str, version: int | None, *, actor: str,
                        reason: str | None = None) -> orm.AliasEvent:
        """Point ``alias`` of ``name`` at ``version`` (None: remove it), recording the move."""
        check_model_name(alias, "alias")
        with self.session() as s:
            model = self._model(s, name)
            if version is not None and s.scalar(select(orm.ModelVersion.id).where(
                    orm.ModelVersion.model_id == model.id,
                    orm.ModelVersion.version == version)) is None:
                raise NotFoundError(f"model {name!r} has no version {version}")
            previous = self._alias_target(s, model.id, alias)
            row = orm.AliasEvent(owner=self.owner, model_id=model.id, alias=alias,
                                 version=version, previous=previous, actor=actor, reason=reason)
            s.add(row)
            s.flush()
            return row

    def _alias_target(self, s: Session, model_id: int, alias: str) -> int | None:
        return s.scalar(
            select(orm.AliasEvent.version)
            .where(orm.AliasEvent.model_id == model_id, orm.AliasEvent.alias == alias)
            .order_by(orm.AliasEvent.id.desc()).limit(1)
        )

    def alias_target(self, name: str, alias: str) -> int | None:
        with self.session() as s:
            return self._alias_target(s, self._model(s, name).id, alias)

    def aliases(self, name: str) -> dict[str, int]:
        """Current aliases of ``name``: alias -> version (removed ones left out)."""
        current: dict[str, int | None] = {}
        for event in self.alias_history(name):
            current[event.alias] = event.version
        return {alias: v for alias, v in sorted(current.items()) if v is not None}

    def alias_history(self, name: str) -> list[orm.AliasEvent]:
        with self.session() as s:
            model = self._model(s, name)
            return list(s.scalars(select(orm.AliasEvent).where(
                orm.AliasEvent.model_id == model.id).order_by(orm.AliasEvent.id)).all())

    # -- policies, verdicts, overrides ---------------------------------------------------------

    def add_policy(self, name: str, policy: dict[str, Any], *, actor: str,
                   source: str = "api") -> None:
        model_id = self.ensure_model(name)
        with self.session() as s:
            s.add(orm.PolicyEvent(owner=self.owner, model_id=model_id, policy=policy,
                                  actor=actor, source=source))

    def policy(self, name: str) -> orm.PolicyEvent | None:
        """The policy in force for ``name`` (the newest), or None."""
        with self.session() as s:
            model = s.scalar(select(orm.Model).where(
                orm.Model.owner == self.owner, orm.Model.name == name))
            if model is None:
                return None
            return s.scalar(select(orm.PolicyEvent).where(orm.PolicyEvent.model_id == model.id)
                            .order_by(orm.PolicyEvent.id.desc()).limit(1))

    def add_validation(self, model_version_id: int, *, run_id: str | None, status: str,
                       policy: dict[str, Any], report: dict[str, Any],
                       promote: dict[str, Any] | None = None) -> bool:
        """Store a verdict; with ``promote`` also move an alias, in the same transaction.

        ``promote`` = ``{"alias", "expected", "actor", "reason"}``: the alias moves to this
        version only while it still points at ``expected`` (what the verdict was judged against;
        None: no target), and never back to an older version. Returns whether it moved.
        """
        with self.session() as s:
            mv = s.scalar(select(orm.ModelVersion).where(
                orm.ModelVersion.id == model_version_id, orm.ModelVersion.owner == self.owner))
            if mv is None:
                raise NotFoundError(f"no model version {model_version_id}")
            s.add(orm.Validation(owner=self.owner, model_version_id=model_version_id,
                                 run_id=run_id, status=status, policy=policy, report=report))
            if promote is None:
                return False
            current = self._alias_target(s, mv.model_id, promote["alias"])
            if current != promote["expected"] or (current is not None and current > mv.version):
                return False
            s.add(orm.AliasEvent(owner=self.owner, model_id=mv.model_id, alias=promote["alias"],
                                 version=mv.version, previous=current, actor=promote["actor"],
                                 reason=promote.get("reason")))
            return True

    def validations(self, model_version_ids: Iterable[int]) -> dict[int, orm.Validation]:
        """The newest verdict of each of ``model_version_ids`` that has one."""
        with self.session() as s:
            rows = s.scalars(select(orm.Validation).where(
                orm.Validation.owner == self.owner,
                orm.Validation.model_version_id.in_(set(model_version_ids)),
            ).order_by(orm.Validation.id)).all()
        return {row.model_version_id: row for row in rows}

    def add_override(self, model_version_id: int, *, actor: str, reason: str) -> orm.DeployOverride:
        with self.session() as s:
            row = orm.DeployOverride(owner=self.owner, model_version_id=model_version_id,
                                     actor=actor, reason=reason)
            s.add(row)
            s.flush()
            return row

    def overrides(self, model_version_id: int) -> list[orm.DeployOverride]:
        with self.session() as s:
            return list(s.scalars(select(orm.DeployOverride).where(
                orm.DeployOverride.owner == self.owner,
                orm.DeployOverride.model_version_id == model_version_id,
            ).order_by(orm.DeployOverride.id)).all())

    # -- slice metrics and evaluation data -----------------------------------------------------

    def add_slices(self, run_id: str, step_run_id: int | None, *, metric: str, by: str,
                   rows: list[dict[str, Any]]) -> None:
        with self.session() as s:
            self._run(s, run_id)
            for r in rows:
                s.add(orm.SliceMetric(
                    owner=self.owner, run_id=run_id, step_run_id=step_run_id, metric=metric,
                    by=by, slice=str(r["slice"]), value=r.get("value"), count=int(r["count"]),
                ))

    def slice_metrics(self, run_ids: Iterable[str]) -> list[orm.SliceMetric]:
        with self.session() as s:
            return list(s.scalars(select(orm.SliceMetric).where(
                orm.SliceMetric.owner == self.owner,
                orm.SliceMetric.run_id.in_(set(run_ids)),
            ).order_by(orm.SliceMetric.id)).all())

    def add_eval_set(self, run_id: str, step_run_id: int | None, *, x: dict[str, Any],
                     y: dict[str, Any], slices: dict[str, Any] | None, slices_name: str | None,
                     count: int, model: str | None = None) -> None:
        with self.session() as s:
            self._run(s, run_id)
            # In content order, as ``record_io``: concurrent writers never wait in a cycle.
            for ref in sorted((r for r in (x, y, slices) if r is not None),
                              key=lambda r: r["sha256"]):
                self._artifact_id(s, ref)
            s.add(orm.EvalSet(owner=self.owner, run_id=run_id, step_run_id=step_run_id, x=x,
                              y=y, slices=slices, slices_name=slices_name, count=count,
                              model=model))

    def eval_sets(self, run_id: str) -> list[orm.EvalSet]:
        with self.session() as s:
            return list(s.scalars(select(orm.EvalSet).where(
                orm.EvalSet.owner == self.owner, orm.EvalSet.run_id == run_id,
            ).order_by(orm.EvalSet.id)).all())

    def eval_set(self, run_id: str, model: str | None = None) -> orm.EvalSet | None:
        """The evaluation data ``run_id`` logged last for ``model``, else for every model."""
        sets = self.eval_sets(run_id)
        named = [e for e in sets if model is not None and e.model == model]
        shared = [e for e in sets if e.model is None]
        return (named or shared or [None])[-1]
