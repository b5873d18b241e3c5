"""On-success actions of a schedule: ``deploy_if_blessed``.

After a firing's run succeeded, the version of the named model that *this run* registered is
deployed to the endpoint when its validation policy blessed it (the verdict is given when the
run ends, so it exists by now). A rejected or unvalidated version is not deployed and the
endpoint keeps serving what it served; an older blessed version is never picked instead. The
deploy is the same ``DeployService.deploy`` as ``jupyter mlplat deploy``: a new endpoint
revision, which every serve process applies within a second.

The deploy commits only while the scheduler still holds the firing: the endpoint revision is
written in one transaction with the fence check (:class:`DeployFence`), with the schedule's row
held meanwhile, so a scheduler that was paused past its lease, and whose schedule another
scheduler has taken over, cannot deploy what an old firing produced, not even when it is paused
between a check and the write. Nor does a firing deploy a version older than one its schedule
deployed before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..schemas import ActionOutcome, DeployIfBlessed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployFence:
    """The firing a deploy belongs to, and the scheduler that must still hold it."""

    firing_id: int
    holder: str


class _FencedStore:
    """The owner's store, whose endpoint revisions are written under ``fence``."""

    def __init__(self, store: Any, fence: DeployFence, model: str, version: int) -> None:
        self._store, self._fence, self._model, self._version = store, fence, model, version

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def add_endpoint_revision(self, name: str, **fields: Any) -> Any:
        from ..store.scheduling import add_fenced_endpoint_revision

        return add_fenced_endpoint_revision(
            self._store, name, firing_id=self._fence.firing_id, holder=self._fence.holder,
            model=self._model, version=self._version, **fields)


def _why_not(row: Any) -> str:
    from ..tracking.registry import verdict_from_report

    if row is None:
        return "it has no verdict (its model has no validation policy)"
    if row.status == "unvalidated":
        return (row.report or {}).get("summary") or "it could not be validated"
    reasons = verdict_from_report(row.report).reasons()
    return "rejected: " + ("; ".join(reasons) or row.status)


def deploy_if_blessed(spec: DeployIfBlessed, *, run_id: str, config: Any, store: Any,
                      artifacts: Any, fence: DeployFence) -> ActionOutcome:
    """Deploy the version of ``spec.model`` that ``run_id`` registered, if it was blessed.

    Parameters
    ----------
    spec : DeployIfBlessed
        The model, the endpoint (default: the model's name) and whether a new one is public.
    run_id : str
        The firing's run (succeeded).
    config, store, artifacts
        The schedule owner's (``store`` a SQL store).
    fence : DeployFence
        The firing; the deploy commits only while its scheduler still holds it.

    Returns
    -------
    ActionOutcome
        ``deployed``, ``not_blessed``, ``no_version``, ``not_committed`` or ``failed``.
    """
    from ..serving.deploy import DeployService

    endpoint = spec.endpoint or spec.model
    base = dict(action="deploy_if_blessed", model=spec.model, endpoint=endpoint)
    registered = [mv for name, mv in store.run_model_versions(run_id) if name == spec.model]
    if not registered:
        return ActionOutcome(**base, status="no_version",
                             detail=f"run {run_id} registered no version of {spec.model!r}; "
                                    f"endpoint {endpoint!r} is left as it is")
    mv = registered[-1]
    verdict = store.validations([mv.id]).get(mv.id)
    if verdict is None or verdict.status != "blessed":
        return ActionOutcome(**base, version=mv.version, status="not_blessed",
                             detail=f"{spec.model} v{mv.version} was not deployed: "
                                    f"{_why_not(verdict)}; endpoint {endpoint!r} keeps "
                                    "serving what it served")
    from ..store.scheduling import FenceLostError

    if not store.still_fenced(fence.firing_id, fence.holder):  # before touching the endpoint
        return ActionOutcome(**base, version=mv.version, status="not_committed",
                             detail="this scheduler lost the schedule (another one took it "
                                    "over) before deploying; not deployed")
    fenced = _FencedStore(store, fence, spec.model, mv.version)
    try:
        result = DeployService(config, store=fenced, artifacts=artifacts).deploy(
            spec.model, mv.version, endpoint=endpoint, public=spec.public)
    except FenceLostError as exc:
        return ActionOutcome(**base, version=mv.version, status="not_committed",
                             detail=f"{spec.model} v{mv.version} was not deployed: {exc}")
    except Exception as exc:  # noqa: BLE001 - recorded on the firing, which then fails
        log.warning("deploy_if_blessed of %s v%s to %s failed: %s", spec.model, mv.version,
                    endpoint, exc)
        return ActionOutcome(**base, version=mv.version, status="failed",
                             detail=f"deploying {spec.model} v{mv.version} to {endpoint!r} "
                                    f"failed: {type(exc).__name__}: {exc}")
    detail = (f"{spec.model} v{mv.version} (blessed) now serves endpoint {endpoint!r} "
              f"(revision {result.endpoint.revision})")
    if result.token is not None:  # never stored or shown by a scheduler: make a new one
        detail += (f"; the new endpoint needs a token: `jupyter mlplat endpoints token "
                   f"{endpoint} --rotate` makes one")
    return ActionOutcome(**base, version=mv.version, status="deployed", detail=detail,
                         revision=result.endpoint.revision)
