"""DeployService: deploy, canary, shadow, roll back and undeploy endpoints; endpoint tokens.

Every change is a new endpoint revision in the store (who, when, what, forced or not); serve
processes apply the newest revision of each endpoint. Only a version its validation policy
blessed is deployed unless the caller forces it with a reason (recorded twice: on the model
version's overrides and on the revision). A token is created when a non-public endpoint is
created; it is returned once and only its sha256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from ..config import MLPlat
from ..errors import ConflictError, InvalidSpecError
from ..schemas import (
    DeployResult,
    DescribeEndpoint,
    EndpointRevisionInfo,
    ListEndpointsResponse,
    RouteSpec,
    ShadowSpec,
)
from ..store.registry import check_model_name
from ..tracking.registry import ModelRegistry, parse_ref


def hash_token(token: str) -> str:
    """What the store keeps of a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class DeployService:
    """Endpoint changes of one owner.

    Parameters
    ----------
    config : MLPlat, optional
        Settings; read from the environment when omitted (``serving_url`` gives endpoint URLs).
    store, artifacts : optional
        Ready-made stores; built from ``config`` when omitted.
    """

    def __init__(self, config: MLPlat | None = None, *, store: Any = None,
                 artifacts: Any = None) -> None:
        self.config = config or MLPlat()
        self.registry = ModelRegistry.for_config(self.config, store=store, artifacts=artifacts)
        self.store = self.registry.store

    # -- changes -------------------------------------------------------------------------------

    def deploy(self, model: str, version: int | None = None, *, endpoint: str | None = None,
               traffic: int | dict[str, int] | None = None, shadow: str | None = None,
               shadow_share: float = 1.0, force: bool = False, reason: str | None = None,
               public: bool | None = None, sticky_header: str | None = None) -> DeployResult:
        """Serve ``model`` (``"churn"``, ``"churn@3"``) on ``endpoint`` (default: its name).

        Parameters
        ----------
        version : int, optional
            Default: the newest blessed version (or the one in ``model``'s ``@N``).
        traffic : int or dict, optional
            None: all traffic to the new version. An int 1-99: a canary, that percentage to the
            new version and the rest to what the endpoint serves now. A dict
            ``{"churn@1": 90, "churn@2": 10}``: explicit weights summing to 100.
        shadow : str, optional
            ``"churn@4"``: mirror ``shadow_share`` of the traffic to it; answers logged only.
        force, reason
            Deploy a version that is not blessed; the reason is required and recorded.
        public : bool, optional
            Open the endpoint to callers without a token (default: keep; new endpoints need one).
        sticky_header : str, optional
            A request header whose value pins a caller to one route of a split.
        """
        name, selector = parse_ref(model)
        if selector is not None:
            if version is not None:
                raise InvalidSpecError(f"give the version once: {model!r} and version={version}")
            if not (selector.isascii() and selector.isdigit()):
                version = self.registry.resolve(model)[1].version
            else:
                version = int(selector)
        endpoint = endpoint or name
        check_model_name(endpoint, "endpoint name")
        mv = self.registry.deployable(name, version, force=force, reason=reason)
        row, created = self.store.ensure_endpoint(endpoint)
        current = self._current(endpoint)
        routes = self._routes(name, mv.version, traffic, current)
        # Every version that starts taking traffic passes the gate, not only the named one.
        serving = {(r["model"], r["version"]) for r in (current.routes if current else [])
                   if r["weight"]}
        verdict = self.store.validations([mv.id]).get(mv.id)
        forced = getattr(verdict, "status", None) != "blessed"
        serving.add((name, mv.version))  # gated above
        for route in routes:
            if route.weight and (route.model, route.version) not in serving:
                gated = self.registry.deployable(route.model, route.version, force=force,
                                                 reason=reason)
                verdict = self.store.validations([gated.id]).get(gated.id)
                forced = forced or getattr(verdict, "status", None) != "blessed"
        shadow_spec = self._shadow(shadow, shadow_share)
        is_public = row.public if public is None else bool(public)
        token = None
        if not is_public and (created or row.token_hash is None):
            token = new_token()
            self.store.set_endpoint_token(endpoint, hash_token(token))
        self.store.add_endpoint_revision(
            endpoint, routes=[r.model_dump() for r in routes],
            shadow=shadow_spec.model_dump() if shadow_spec else None,
            sticky_header=sticky_header if sticky_header is not None else (
                current.sticky_header if current is not None else None),
            public=is_public, action="deploy" if traffic is None else "traffic", forced=forced,
            reason=reason if forced else None, actor=self.config.owner,
        )
        return DeployResult(endpoint=self.describe(endpoint), token=token, forced=forced)

    def undeploy(self, endpoint: str) -> DescribeEndpoint:
        """Stop serving ``endpoint`` (a revision with no routes; its history stays)."""
        current = self._current(endpoint, required=True)
        if not current.routes:
            raise ConflictError(f"endpoint {endpoint!r} is not deployed")
        self.store.add_endpoint_revision(endpoint, routes=[], shadow=None, sticky_header=None,
                                         public=current.public, action="undeploy",
                                         actor=self.config.owner)
        return self.describe(endpoint)

    def rollback(self, endpoint: str) -> DescribeEndpoint:
        """Serve what ``endpoint`` served before its newest revision."""
        revisions = self.store.endpoint_revisions(endpoint)
        if len(revisions) < 2:
            raise ConflictError(f"endpoint {endpoint!r} has no earlier revision to roll back to")
        previous = revisions[-2]
        self.store.add_endpoint_revision(  # who may call it is not rolled back
            endpoint, routes=list(previous.routes), shadow=previous.shadow,
            sticky_header=previous.sticky_header, public=revisions[-1].public,
            action="rollback",
            forced=previous.forced, reason=f"rollback to revision {previous.revision}",
            actor=self.config.owner)
        return self.describe(endpoint)

    def set_traffic(self, endpoint: str, traffic: dict[str, int], *, force: bool = False,
                    reason: str | None = None) -> DescribeEndpoint:
        """New weights for ``endpoint``'s routes (``{"churn@1": 90, "churn@2": 10}``, sum 100);
        its shadow, token and publicity stay. Every version given traffic passes the gate."""
        current = self._current(endpoint, required=True)
        if not traffic:
            raise InvalidSpecError('traffic needs at least one "model@version": weight')
        primary = max(traffic, key=lambda ref: traffic[ref])
        shadow = current.shadow or {}
        self.deploy(primary, endpoint=endpoint, traffic=dict(traffic),
                    shadow=f"{shadow['model']}@{shadow['version']}" if shadow else None,
                    shadow_share=shadow.get("share", 1.0), force=force, reason=reason,
                    public=current.public)
        return self.describe(endpoint)

    def rotate_token(self, endpoint: str) -> DeployResult:
        """A new token for ``endpoint``; the old one stops working within a second."""
        self.store.endpoint_row(endpoint)
        token = new_token()
        self.store.set_endpoint_token(endpoint, hash_token(token))
        return DeployResult(endpoint=self.describe(endpoint), token=token)

    # -- queries -------------------------------------------------------------------------------

    def list(self) -> ListEndpointsResponse:
        return ListEndpointsResponse(endpoints=[self._describe(e, c)
                                                for e, c in self.store.endpoints()])

    def describe(self, endpoint: str) -> DescribeEndpoint:
        """One endpoint with its whole revision history."""
        row = self.store.endpoint_row(endpoint)
        history = self.store.endpoint_revisions(endpoint)
        return self._describe(row, history[-1] if history else None, history=history)

    def _describe(self, row: Any, current: Any, *, history: list[Any] | None = None
                  ) -> DescribeEndpoint:
        revisions = [EndpointRevisionInfo(
            revision=r.revision, action=r.action, routes=[RouteSpec(**x) for x in r.routes],
            shadow=ShadowSpec(**r.shadow) if r.shadow else None,
            sticky_header=r.sticky_header, public=r.public, forced=r.forced,
            reason=r.reason, actor=r.actor, at=r.created_at,
        ) for r in history or []]
        base = self.config.serving_url.rstrip("/") if self.config.serving_url else None
        deployed = current is not None and bool(current.routes)
        return DescribeEndpoint(
            name=row.name, public=bool(current.public if current is not None else row.public),
            revision=current.revision if current is not None else None,
            routes=[RouteSpec(**x) for x in current.routes] if current is not None else [],
            shadow=ShadowSpec(**current.shadow) if current is not None and current.shadow
            else None,
            deployed=deployed,
            url=f"{base}/v2/models/{row.name}/infer" if base and deployed else None,
            revisions=revisions,
        )

    def _current(self, endpoint: str, *, required: bool = False) -> Any:
        revisions = self.store.endpoint_revisions(endpoint)
        if not revisions:
            if required:
                raise ConflictError(f"endpoint {endpoint!r} was never deployed")
            return None
        return revisions[-1]

    def _routes(self, name: str, version: int, traffic: Any, current: Any) -> list[RouteSpec]:
        if traffic is None:
            return [RouteSpec(model=name, version=version, weight=100)]
        if isinstance(traffic, bool):
            raise InvalidSpecError(f"traffic must be a percentage or a dict; got {traffic!r}")
        if isinstance(traffic, int):
            if not 1 <= traffic <= 99:
                raise InvalidSpecError(f"a canary takes 1-99 percent of the traffic; got "
                                       f"{traffic}")
            live = [r for r in (current.routes if current is not None else []) if r["weight"]]
            if not live:
                raise ConflictError("a canary needs a version already serving the endpoint; "
                                    "deploy one first (without --canary)")
            primary = max(live, key=lambda r: r["weight"])
            if (primary["model"], primary["version"]) == (name, version):
                raise ConflictError(f"{name} v{version} already serves this endpoint")
            return [RouteSpec(model=primary["model"], version=primary["version"],
                              weight=100 - traffic),
                    RouteSpec(model=name, version=version, weight=traffic)]
        if isinstance(traffic, dict):
            routes = []
            for ref, weight in traffic.items():
                m, sel = parse_ref(ref)
                if sel is None or not (sel.isascii() and sel.isdigit()):
                    raise InvalidSpecError(f"traffic keys are model@version; got {ref!r}")
                self.store.model_version(m, int(sel))  # exists
                if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                    raise InvalidSpecError(f"weight of {ref} must be a non-negative int")
                routes.append(RouteSpec(model=m, version=int(sel), weight=weight))
            if sum(r.weight for r in routes) != 100:
                raise InvalidSpecError(f"traffic weights must sum to 100; got "
                                       f"{sum(r.weight for r in routes)}")
            return routes
        raise InvalidSpecError(f"traffic must be a percentage or a dict; got {traffic!r}")

    def _shadow(self, shadow: str | None, share: float) -> ShadowSpec | None:
        if shadow is None:
            return None
        name, mv = self.registry.resolve(shadow)
        if not 0.0 < share <= 1.0:
            raise InvalidSpecError(f"shadow share must be in (0, 1]; got {share}")
        return ShadowSpec(model=name, version=mv.version, share=share)
