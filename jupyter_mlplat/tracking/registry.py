"""ModelRegistry: register, resolve, load, alias, validate ("bless") and release model versions.

A version is registered from what ``log_model`` saved (the artifact, its signature, the sample
input and the predictions on it) plus its lineage. When the run that registered it ends, the
model's validation policy judges it like for like: the candidate and the version aliased
``production`` are both scored on the evaluation data the run logged (``log_eval``), overall and
per slice. Only a blessed version is :meth:`ModelRegistry.deployable` unless the caller forces it,
and a forced release is recorded with who and why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSpecError, MLPlatError, NotBlessedError, NotFoundError
from ..store.registry import check_model_name

if TYPE_CHECKING:
    from ..store import orm
    from ..store.artifacts import ArtifactStore
    from ..store.sql import Store
    from .flavors import LoadedModel
    from .metrics import Scores
    from .validation import ValidationPolicy, Verdict

log = logging.getLogger(__name__)

#: The alias a candidate is compared against.
PRODUCTION = "production"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"churn"`` -> ("churn", None); ``"churn@3"`` / ``"churn@production"`` -> (name, selector)."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidSpecError(
            f"expected a model reference such as 'churn', 'churn@3' or 'churn@production'; "
            f"got {ref!r}"
        )
    name, _, selector = ref.strip().partition("@")
    check_model_name(name)
    if _ and not selector:
        raise InvalidSpecError(f"model reference {ref!r} ends with '@'; expected a version "
                               "number or an alias after it")
    return name, selector or None


def split_owner(ref: str, me: str) -> tuple[str | None, str]:
    """``"alice/churn@3"`` -> ("alice", "churn@3"); a reference without an owner, or naming
    ``me``, -> (None, the reference without it)."""
    if not isinstance(ref, str) or "/" not in ref:
        return None, ref
    owner, _, rest = ref.strip().partition("/")
    if not owner or not rest or "/" in rest:
        raise InvalidSpecError(f"expected a model reference such as 'churn@production' or, for "
                               f"a model shared with you, 'alice/churn@production'; got {ref!r}")
    return (None, rest) if owner == me else (owner, rest)


@dataclass(frozen=True)
class RunVerdict:
    """The outcome of validating one model version at the end of a run."""

    model: str
    version: int
    status: str  # blessed | rejected | unvalidated
    summary: str
    verdict: Verdict | None = None
    promoted_to: str | None = None

    def __str__(self) -> str:
        promoted = f"; now {self.promoted_to}" if self.promoted_to else ""
        return f"model {self.model} v{self.version}: {self.summary}{promoted}"


class ModelRegistry:
    """The owner's models, over a :class:`Store` and an :class:`ArtifactStore`.

    Parameters
    ----------
    store : Store
        Owner-scoped; every model read or written is that owner's.
    artifacts : ArtifactStore
        Where model files, sample inputs and evaluation data live.
    actor : str, optional
        Who acts (recorded on alias moves, policies and forced releases); default the owner.
    """

    def __init__(self, store: Store, artifacts: ArtifactStore, *, actor: str | None = None) -> None:
        self.store = store
        self.artifacts = artifacts
        self.actor = actor or store.owner

    @classmethod
    def for_config(cls, config: Any, *, store: Any = None, artifacts: Any = None) -> ModelRegistry:
        """The registry of ``config``'s owner, acting as that owner; ``store`` and ``artifacts``
        are opened from ``config`` when not given (``open_store`` / ``open_artifacts``)."""
        from ..store import open_artifacts, open_store

        return cls(store if store is not None else open_store(config),
                   artifacts if artifacts is not None else open_artifacts(config.artifacts_url),
                   actor=config.owner)

    # -- versions ------------------------------------------------------------------------------

    def register(self, name: str, saved: dict[str, Any], *, run_id: str | None,
                 step_run_id: int | None = None, step_name: str | None = None,
                 step_version: str | None = None, notebook_path: str | None = None,
                 cell_ids: list[str] | None = None,
                 input_artifacts: dict[str, str] | None = None) -> orm.ModelVersion:
        """Register a new version of ``name`` from a ``SavedModel`` dict (``log_model``)."""
        check_model_name(name)
        return self.store.add_model_version(
            name, artifact=saved["artifact"], flavor=saved["flavor"],
            signature=saved.get("signature") or {}, sample_input=saved.get("sample_input"),
            sample_output=saved.get("sample_output"), run_id=run_id, step_run_id=step_run_id,
            step_name=step_name, step_version=step_version, notebook_path=notebook_path,
            cell_ids=list(cell_ids or []), input_artifacts=dict(input_artifacts or {}),
            meta=dict(saved.get("meta") or {}), created_by=self.actor,
        )

    def resolve(self, ref: str) -> tuple[str, orm.ModelVersion]:
        """(name, version row) for ``name``, ``name@N``, ``name@latest`` or ``name@alias``.

        A bare name means its newest version.
        """
        name, selector = parse_ref(ref)
        if selector is None or selector == "latest":
            versions = self.store.model_versions(name)
            if not versions:
                raise NotFoundError(f"model {name!r} has no versions yet")
            return name, versions[-1]
        if selector.isascii() and selector.isdigit():
            return name, self.store.model_version(name, int(selector))
        check_model_name(selector, "alias")
        target = self.store.alias_target(name, selector)
        if target is None:
            known = ", ".join(self.store.aliases(name)) or "none"
            raise NotFoundError(f"model {name!r} has no alias {selector!r} (aliases: {known}); "
                                f"set one with `jupyter mlplat alias set {name} {selector} N`")
        return name, self.store.model_version(name, target)

    def load(self, ref: str | tuple[str, orm.ModelVersion], *, trusted: bool = True
             ) -> LoadedModel:
        """The model behind ``ref`` wrapped with its flavour and signature.

        ``trusted``: the caller trusts the producer (its own models, the default); a shared
        process passes False, and trusted-only flavours (cloudpickle) are then refused.
        """
        from .flavors import LoadedModel, load_model_artifact

        if isinstance(ref, str):
            owner, ref = split_owner(ref, self.store.owner)
            if owner is not None:
                return self.load_shared(owner, ref)
        _, mv = self.resolve(ref) if isinstance(ref, str) else ref
        artifact = self.store.artifact_ref(mv.artifact_id)
        native = load_model_artifact(artifact, mv.flavor, store=self.artifacts, trusted=trusted)
        # the flavour's details (torch task and input dtype, ...) travel on the artifact
        meta = {**(artifact.get("meta") or {}), **(mv.meta or {})}
        return LoadedModel(native, mv.flavor, mv.signature or {}, meta=meta)

    def shared(self, owner: str, ref: str) -> dict[str, Any]:
        """``owner``'s model version ``ref`` (``name[@selector]``) that they shared with a
        project of yours: the version row, its artifact reference, aliases and versions."""
        name, selector = parse_ref(ref)
        return self.store.shared_model(owner, name, selector)

    def load_shared(self, owner: str, ref: str) -> LoadedModel:
        """Load ``owner``'s shared model ``ref`` in this process: safe formats only (skops with
        the trusted types); a pickled, tree or torch model of another user is refused before a
        byte of it is read, however it was shared."""
        from .flavors import LoadedModel, load_model_artifact

        info = self.shared(owner, ref)
        version, artifact = info["version"], info["artifact"]
        native = load_model_artifact(artifact, version["flavor"], store=self.artifacts,
                                     trusted=False, by_uri=True)
        meta = {**(artifact.get("meta") or {}), **(version.get("meta") or {})}
        return LoadedModel(native, version["flavor"], version.get("signature") or {}, meta=meta)

    def sample(self, mv: orm.ModelVersion) -> tuple[Any, Any]:
        """The stored sample input of a version and the predictions logged for it."""
        from ..pipeline.marshal import ArtifactRef, load_value

        def load(ref: dict[str, Any] | None) -> Any:
            if ref is None:
                return None
            return load_value(ArtifactRef.from_dict(ref), store=self.artifacts)

        return load(mv.sample_input), load(mv.sample_output)

    # -- aliases -------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int | None, *,
                  reason: str | None = None, actor: str | None = None) -> orm.AliasEvent:
        """Point ``alias`` at ``version`` (None removes it); every move is kept."""
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or version < 1):
            raise InvalidSpecError(f"version must be a positive int; got {version!r}")
        if alias == "latest" or (alias.isascii() and alias.isdigit()):
            raise InvalidSpecError(f"{alias!r} cannot be an alias: it already means a version")
        return self.store.add_alias_event(name, alias, version, actor=actor or self.actor,
                                          reason=reason)

    # -- policies and verdicts -----------------------------------------------------------------

    def set_policy(self, name: str, policy: ValidationPolicy | dict[str, Any], *,
                   source: str = "api") -> ValidationPolicy:
        """Make ``policy`` the validation policy of model ``name`` (recorded, newest wins)."""
        from pydantic import ValidationError

        from .validation import ValidationPolicy

        check_model_name(name)
        if not isinstance(policy, ValidationPolicy):
            try:
                policy = ValidationPolicy.model_validate(policy)
            except ValidationError as exc:
                raise InvalidSpecError(_pydantic_message(f"validation policy of {name!r}", exc)
                                       ) from None
        data = policy.model_dump(mode="json")
        current = self.store.policy(name)
        if current is None or current.policy != data:
            self.store.add_policy(name, data, actor=self.actor, source=source)
        return policy

    def policy(self, name: str) -> ValidationPolicy | None:
        from .validation import ValidationPolicy

        row = self.store.policy(name)
        return None if row is None else ValidationPolicy.model_validate(row.policy)

    def verdict(self, mv: orm.ModelVersion) -> Verdict | None:
        """The newest verdict on ``mv``, or None when it was never validated."""
        row = self.store.validations([mv.id]).get(mv.id)
        if row is None or row.status == "unvalidated":
            return None
        return verdict_from_report(row.report)

    def evaluate_run(self, run_id: str) -> list[RunVerdict]:
        """Validate every version ``run_id`` registered that has no verdict yet."""
        out: list[RunVerdict] = []
        registered = self.store.run_model_versions(run_id)
        if not registered:
            return out
        judged = self.store.validations([mv.id for _, mv in registered])
        for name, mv in registered:
            if mv.id in judged:
                continue
            try:
                out.append(self.evaluate(name, mv, run_id))
            except Exception as exc:  # noqa: BLE001 - one version's failure is recorded, not fatal
                reason = f"validation could not run: {type(exc).__name__}: {exc}"
                log.warning("validating %s v%s failed: %s", name, mv.version, reason)
                policy = self.store.policy(name)
                self.store.add_validation(
                    mv.id, run_id=run_id, status="unvalidated",
                    policy=policy.policy if policy is not None else {},
                    report={"status": "unvalidated", "summary": reason})
                out.append(RunVerdict(name, mv.version, "unvalidated", reason))
        return out

    def evaluate(self, name: str, mv: orm.ModelVersion, run_id: str | None) -> RunVerdict:
        """Judge ``mv`` by the policy of ``name`` on ``run_id``'s evaluation data; store it."""
        from .validation import evaluate_policy

        policy = self.policy(name)
        if policy is None:
            return RunVerdict(name, mv.version, "unvalidated",
                              f"no validation policy for {name!r}: set one with "
                              f"mlp.set_policy({name!r}, metric=..., min_value=...)")
        prod = self.store.alias_target(name, PRODUCTION)
        baseline_mv = (self.store.model_version(name, prod)
                       if prod is not None and prod != mv.version else None)
        candidate, baseline, note = self._scores(name, mv, baseline_mv, policy.metric, run_id)
        verdict = evaluate_policy(policy, candidate, baseline,
                                  baseline_version=baseline_mv.version if baseline_mv else None)
        if note:
            verdict.note = f"{verdict.note}; {note}" if verdict.note else note
        if baseline_mv is not None and baseline is None and (
                policy.max_regression is not None or policy.max_slice_regression is not None):
            # a regression gate that cannot compare must not pass silently
            self._fail_regression(verdict, baseline_mv.version, note)
        promote = None
        if verdict.status == "blessed" and policy.promote_to:
            if policy.promote_to == PRODUCTION:
                expected = prod  # what the candidate was judged against (None: no production)
            else:
                expected = self.store.alias_target(name, policy.promote_to)
            promote = {"alias": policy.promote_to, "expected": expected,
                       "actor": f"policy:{self.actor}", "reason": f"blessed in run {run_id}"}
        moved = self.store.add_validation(mv.id, run_id=run_id, status=verdict.status,
                                          policy=policy.model_dump(mode="json"),
                                          report=verdict_report(verdict), promote=promote)
        if promote is not None and not moved:
            log.info("%s v%s blessed but not promoted to %s: the alias moved meanwhile (or "
                     "points at a newer version)", name, mv.version, policy.promote_to)
        return RunVerdict(name, mv.version, verdict.status, verdict.summary(), verdict,
                          policy.promote_to if moved else None)

    @staticmethod
    def _fail_regression(verdict: Verdict, baseline_version: int, why: str | None) -> None:
        from .validation import Check

        reason = (f"{PRODUCTION} v{baseline_version} could not be scored on this evaluation "
                  f"data, so the allowed regression cannot be checked ({why or 'no score'})")
        verdict.checks = [c for c in verdict.checks if c.name != "max_regression"]
        verdict.checks.append(Check(name="max_regression", status="failed", reason=reason))
        verdict.status = "rejected"

    def _scores(self, name: str, mv: orm.ModelVersion, baseline_mv: orm.ModelVersion | None,
                metric: str, run_id: str | None) -> tuple[Scores, Scores | None, str | None]:
        ev = self.store.eval_set(run_id, name) if run_id else None
        if ev is None:
            return self._logged_scores(mv, baseline_mv, metric, run_id)
        from ..pipeline.marshal import ArtifactRef, load_value

        def load(ref: dict[str, Any] | None) -> Any:
            return None if ref is None else load_value(ArtifactRef.from_dict(ref),
                                                       store=self.artifacts)

        X, y, by = load(ev.x), load(ev.y), load(ev.slices)
        candidate = self._score(mv, metric, X, y, by, ev.slices_name)
        if baseline_mv is None:
            return candidate, None, None
        try:
            baseline = self._score(baseline_mv, metric, X, y, by, ev.slices_name)
        except MLPlatError as exc:
            return candidate, None, (f"{PRODUCTION} v{baseline_mv.version} could not be scored "
                                     f"on this evaluation data ({exc}); floors only")
        return candidate, baseline, None

    def _score(self, mv: orm.ModelVersion, metric: str, X: Any, y: Any, by: Any,
               by_name: str | None) -> Scores:
        from .metrics import metric_def, score_predictions

        model = self.load((self.store.model_name(mv.model_id), mv))
        needs = metric_def(metric).needs
        try:
            y_pred = model.predict(X) if needs == "labels" else None
            y_score = model.predict_proba(X) if needs == "scores" else None
        except MLPlatError:
            raise
        except Exception as exc:  # noqa: BLE001 - any model error makes it unscorable
            raise MLPlatError(f"v{mv.version} failed to predict: {type(exc).__name__}: "
                              f"{exc}") from exc
        labels = getattr(model.model, "classes_", None)  # probability columns, in order
        return score_predictions(metric, y, y_pred=y_pred, y_score=y_score, by=by,
                                 by_name=by_name,
                                 labels=list(labels) if labels is not None else None)

    def _logged_scores(self, mv: orm.ModelVersion, baseline_mv: orm.ModelVersion | None,
                       metric: str, run_id: str | None
                       ) -> tuple[Scores, Scores | None, str | None]:
        """Without evaluation data: the run's logged metric and slice metrics of that name."""
        from .metrics import Scores

        value: float | None = None
        if run_id:
            for point in self.store.metrics([run_id]):
                if point.name == metric:
                    value = point.value  # the last logged value
        slices = [s for s in self.store.slice_metrics([run_id] if run_id else [])
                  if s.metric == metric]
        candidate = Scores(metric=metric, overall=value, count=0,
                           slices=[{"slice": s.slice, "value": s.value, "count": s.count}
                                   for s in slices],
                           by=slices[-1].by if slices else None)
        note = ("no evaluation data was logged (mlp.log_eval): judged on the run's logged "
                f"{metric!r} metric")
        baseline = None
        if baseline_mv is not None:
            previous = self.verdict(baseline_mv)
            if previous is not None:
                baseline = Scores.from_dict(previous.candidate)
                note += f", against {PRODUCTION} v{baseline_mv.version}'s own validation score"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            note += f" (none was logged: log it with mlp.log_metric({metric!r}, ...))"
        return candidate, baseline, note + " - not like for like"

    # -- release -------------------------------------------------------------------------------

    def deployable(self, name: str, version: int | None = None, *, force: bool = False,
                   reason: str | None = None) -> orm.ModelVersion:
        """The version to release: ``version``, or the newest blessed one.

        Raises
        ------
        NotBlessedError
            The version was rejected or never validated, and ``force`` is False; the message
            carries the verdict's reasons.
        InvalidSpecError
            ``force`` without a ``reason``.
        """
        check_model_name(name)
        if force and not (isinstance(reason, str) and reason.strip()):
            raise InvalidSpecError("a forced deploy needs a reason (--reason \"...\"); it is "
                                   "recorded with your name")
        versions = self.store.model_versions(name)
        if not versions:
            raise NotFoundError(f"model {name!r} has no versions yet")
        verdicts = self.store.validations([v.id for v in versions])
        if version is None:
            blessed = [v for v in versions if getattr(verdicts.get(v.id), "status", None)
                       == "blessed"]
            if blessed:
                return blessed[-1]
            if not force:
                raise NotBlessedError(
                    f"model {name!r} has no blessed version (newest: v{versions[-1].version}, "
                    f"{self._why_not(versions[-1], verdicts.get(versions[-1].id))}); pick a "
                    "version and force it with a reason, or fix the model"
                )
            mv = versions[-1]
        else:
            mv = self.store.model_version(name, version)
        row = verdicts.get(mv.id)
        if row is not None and row.status == "blessed":
            return mv
        if not force:
            raise NotBlessedError(
                f"model {name!r} v{mv.version} is not blessed: "
                f"{self._why_not(mv, row)}; deploy a blessed version, or force this one with "
                "a reason (recorded)"
            )
        self.store.add_override(mv.id, actor=self.actor, reason=str(reason).strip())
        log.warning("%s forced release of %s v%s: %s", self.actor, name, mv.version, reason)
        return mv

    def _why_not(self, mv: orm.ModelVersion, row: orm.Validation | None) -> str:
        if row is None:
            return "it was never validated (no policy, or its run did not finish)"
        if row.status == "unvalidated":
            return (row.report or {}).get("summary") or "it could not be validated"
        reasons = verdict_from_report(row.report).reasons()
        return "rejected: " + ("; ".join(reasons) or row.status)

    # -- lineage -------------------------------------------------------------------------------

    def lineage(self, ref: str) -> dict[str, Any]:
        """Notebook cells -> step version -> input artifacts -> run -> model version."""
        name, mv = self.resolve(ref)
        run = None
        if mv.run_id:
            try:
                run = self.store.run_row(mv.run_id)
            except NotFoundError:
                run = None
        code = None
        if mv.step_version:
            code = self.store.step_version_code(mv.step_version)
        artifact = self.store.artifact_ref(mv.artifact_id)
        return {
            "model": name,
            "version": mv.version,
            "flavor": mv.flavor,
            "artifact": {"sha256": artifact["sha256"], "uri": artifact["uri"],
                         "format": artifact["format"]},
            "notebook": mv.notebook_path,
            "cells": list(mv.cell_ids or []),
            "step": mv.step_name,
            "step_version": mv.step_version,
            "step_code": code,
            "inputs": dict(mv.input_artifacts or {}),
            "run": None if run is None else {
                "id": run.id, "status": run.status, "parameters": run.parameters,
                "pipeline_version": run.pipeline_version,
                "started_at": run.started_at.isoformat() if run.started_at else None,
            },
            "created_by": mv.created_by,
            "created_at": mv.created_at.isoformat(),
            "aliases": [a for a, v in self.store.aliases(name).items() if v == mv.version],
            "endpoints": self._served_by(name, mv.version),
        }

    def _served_by(self, name: str, version: int) -> list[dict[str, Any]]:
        """Endpoint revisions that routed traffic (or a shadow share) to ``name`` v``version``."""
        out = []
        for endpoint, _ in self.store.endpoints():
            for r in self.store.endpoint_revisions(endpoint.name):
                weight = next((x["weight"] for x in r.routes
                               if x["model"] == name and x["version"] == version), None)
                shadow = bool(r.shadow and r.shadow["model"] == name
                              and r.shadow["version"] == version)
                if weight or shadow:
                    out.append({"endpoint": endpoint.name, "revision": r.revision,
                                "action": r.action, "weight": weight or 0, "shadow": shadow,
                                "actor": r.actor, "at": r.created_at.isoformat()})
        return out


def verdict_report(verdict: Verdict) -> dict[str, Any]:
    """A verdict as stored: its fields plus its one-line summary (for lists and the UI)."""
    return {**verdict.model_dump(mode="json"), "summary": verdict.summary()}


def verdict_from_report(report: dict[str, Any]) -> Verdict:
    from .validation import Verdict

    return Verdict.model_validate({k: v for k, v in report.items() if k != "summary"})


def _pydantic_message(what: str, exc: Any) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{loc}: {err.get('msg')} (got {err.get('input')!r})")
    return f"{what} is not valid: " + "; ".join(parts)
