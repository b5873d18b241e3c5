"""ModelService: list, describe, alias and trace models as API models. Every front door uses it."""

from __future__ import annotations

from typing import Any

from ..config import MLPlat
from ..schemas import (
    AliasMove,
    ArtifactInfo,
    DeployOverrideInfo,
    DescribeLineage,
    DescribeModel,
    DescribeModelVersion,
    DescribeVerdict,
    ListModelsResponse,
    ModelSummary,
    SliceMetricRow,
)
from .registry import ModelRegistry, parse_ref


class ModelService:
    """Queries and commands on one owner's models.

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
        self.registry = ModelRegistry.for_config(self.config, store=store, artifacts=artifacts)
        self.store = self.registry.store

    def list(self) -> ListModelsResponse:
        """Every model: version count, newest version and its verdict, aliases."""
        out = []
        for item in self.store.models():
            model = item["model"]
            versions = self.store.model_versions(model.name) if item["versions"] else []
            verdict = "unvalidated"
            if versions:
                row = self.store.validations([versions[-1].id]).get(versions[-1].id)
                verdict = row.status if row is not None else "unvalidated"
            out.append(ModelSummary(name=model.name, versions=item["versions"],
                                    latest=item["latest"], latest_verdict=verdict,
                                    aliases=self.store.aliases(model.name),
                                    created_at=model.created_at))
        return ListModelsResponse(models=out)

    def describe(self, name: str) -> DescribeModel:
        """A model: every version (verdict, metrics, slices, signature, lineage), aliases with
        their history, and the policy in force."""
        name, _ = parse_ref(name)
        versions = self.store.model_versions(name)
        policy = self.store.policy(name)
        return DescribeModel(
            name=name,
            versions=self._versions(name, versions),
            aliases=self.store.aliases(name),
            alias_history=[AliasMove(alias=e.alias, version=e.version, previous=e.previous,
                                     actor=e.actor, reason=e.reason, at=e.created_at)
                           for e in self.store.alias_history(name)],
            policy=policy.policy if policy is not None else None,
        )

    def describe_version(self, ref: str) -> DescribeModelVersion:
        """One version, by ``name@N``, ``name@alias`` or ``name`` (the newest)."""
        name, mv = self.registry.resolve(ref)
        return self._versions(name, [mv])[0]

    def _versions(self, name: str, versions: list[Any]) -> list[DescribeModelVersion]:
        from .signature import describe as describe_signature

        aliases: dict[int, list[str]] = {}
        for alias, version in self.store.aliases(name).items():
            aliases.setdefault(version, []).append(alias)
        verdicts = self.store.validations([v.id for v in versions])
        run_ids = sorted({v.run_id for v in versions if v.run_id})
        metrics: dict[tuple[str, int | None], dict[str, float]] = {}
        for m in self.store.metrics(run_ids):
            metrics.setdefault((m.run_id, m.step_run_id), {})[m.name] = m.value
        slices: dict[str, list[SliceMetricRow]] = {}
        for r in self.store.slice_metrics(run_ids):
            slices.setdefault(r.run_id, []).append(SliceMetricRow(
                metric=r.metric, by=r.by, slice=r.slice, value=r.value, count=r.count))
        out = []
        for mv in versions:
            artifact = self.store.artifact_ref(mv.artifact_id)
            run_metrics: dict[str, float] = {}
            for (run_id, _), values in metrics.items():
                if run_id == mv.run_id:
                    run_metrics.update(values)
            row = verdicts.get(mv.id)
            verdict = None
            if row is not None and row.status != "unvalidated":
                verdict = DescribeVerdict(**{k: v for k, v in (row.report or {}).items()
                                             if k in DescribeVerdict.model_fields},
                                          run_id=row.run_id, policy=row.policy or {},
                                          created_at=row.created_at)
            try:
                signature_text = describe_signature(mv.signature or {})
            except Exception:  # noqa: BLE001 - an unreadable signature is shown as empty
                signature_text = ""
            out.append(DescribeModelVersion(
                model=name, version=mv.version, flavor=mv.flavor, created_at=mv.created_at,
                created_by=mv.created_by, aliases=sorted(aliases.get(mv.version, [])),
                signature=mv.signature or {}, signature_text=signature_text,
                artifact=ArtifactInfo(**{k: v for k, v in artifact.items() if k != "meta"}),
                trusted_only=bool(artifact["trusted_only"]), run_id=mv.run_id,
                step=mv.step_name, step_version=mv.step_version, notebook=mv.notebook_path,
                cell_ids=list(mv.cell_ids or []), input_artifacts=dict(mv.input_artifacts or {}),
                metrics=run_metrics, slices=slices.get(mv.run_id or "", []),
                verdict=verdict, verdict_status=row.status if row is not None else "unvalidated",
                verdict_reason=(row.report or {}).get("summary") if row is not None else None,
                overrides=[DeployOverrideInfo(actor=o.actor, reason=o.reason, at=o.created_at)
                           for o in self.store.overrides(mv.id)],
            ))
        return out

    def lineage(self, ref: str) -> DescribeLineage:
        """Notebook cells -> step version -> input artifacts -> run -> model version."""
        return DescribeLineage(**self.registry.lineage(ref))

    def set_alias(self, name: str, alias: str, version: int | None, *,
                  reason: str | None = None) -> DescribeModel:
        """Move ``alias`` of ``name`` to ``version`` (None removes it); return the model."""
        name, _ = parse_ref(name)
        self.registry.set_alias(name, alias, version, reason=reason)
        return self.describe(name)
