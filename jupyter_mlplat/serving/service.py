"""ServingService: endpoints, their route tables, readiness, metadata and inference; no HTTP.

An endpoint's route table is replaced whole, by one assignment, once every version it needs is
loaded and warmed: a request sees the old table or the new one, never a mix, and finishes on the
version that accepted it. A revision whose versions cannot load never takes traffic; the old
table stays and the failure is kept for health and metadata.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import logging
import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidSpecError, MLPlatError, NotFoundError
from ..schemas import EndpointState
from .model import ModelLoadError, ModelUnavailableError, ServedModel, same_output

if TYPE_CHECKING:
    from .metrics import ServingMetrics
    from .repository import ModelRepository

log = logging.getLogger(__name__)

#: Shadow predictions running at once per endpoint; more are dropped, never queued.
MAX_SHADOW_INFLIGHT = 32


class UnauthorizedError(MLPlatError):
    """No credential was given where one is needed (answered with 401)."""


class ForbiddenError(MLPlatError):
    """The credential given is not the one needed (answered with 403)."""


class NotReadyError(ModelUnavailableError):
    """The endpoint exists but none of its revisions could be loaded yet (answered with 503)."""


class ServeSettings(BaseModel):
    """Options of a serve process (``jupyter mlplat serve``)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8500, ge=0, le=65535)
    default_endpoint: str | None = None
    max_body_size: int = Field(default=16 * 1024 * 1024, ge=1)
    max_batch: int = Field(default=64, ge=1)
    max_wait_ms: float = Field(default=1.0, ge=0.0)
    poll_interval: float = Field(default=0.5, gt=0.0)
    drain_timeout: float = Field(default=30.0, ge=0.0)
    trusted: bool = True
    #: Log one in this many shadow comparisons (the first few are always logged).
    shadow_log_every: int = Field(default=100, ge=1)


@dataclass(frozen=True)
class InferenceResult:
    """What :meth:`ServingService.infer` returns."""

    endpoint: str
    model: str
    version: int
    outputs: Any
    signature: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``model@version``."""
        return f"{self.model}@{self.version}"


@dataclass(frozen=True)
class EndpointTable:
    """An endpoint's current revision with its loaded versions; replaced, never changed."""

    state: EndpointState
    routes: tuple[tuple[ServedModel, int], ...]
    cumulative: tuple[int, ...]
    shadow: ServedModel | None = None

    @property
    def models(self) -> list[ServedModel]:
        """Every version the table uses (routes, then the shadow)."""
        out = [m for m, _ in self.routes]
        if self.shadow is not None:
            out.append(self.shadow)
        return out

    def pick(self, rng: random.Random, sticky_key: str | None) -> ServedModel:
        """A route by weight; a sticky key always gives the same route for the same weights."""
        total = self.cumulative[-1]
        if total <= 0:
            return self.routes[0][0]
        if sticky_key is not None:
            digest = hashlib.sha256(f"{self.state.name}\0{sticky_key}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") % total
        else:
            point = rng.randrange(total)
        return self.routes[bisect.bisect_right(self.cumulative, point)][0]


class ServingService:
    """The endpoints a serve process serves, over a :class:`ModelRepository`.

    Parameters
    ----------
    repository : ModelRepository
        Loads and shares model versions.
    settings : ServeSettings, optional
        Default endpoint, shadow logging.
    metrics : ServingMetrics, optional
        Shadow and load-failure counters.
    admin_token : str, optional
        The admin credential (only its sha256 is kept); None: the admin API is refused.
    rng : random.Random, optional
        For the traffic split and shadow sampling (tests seed it).
    """

    def __init__(self, repository: ModelRepository, *, settings: ServeSettings | None = None,
                 metrics: ServingMetrics | None = None, admin_token: str | None = None,
                 rng: random.Random | None = None) -> None:
        self.repository = repository
        self.settings = settings or ServeSettings()
        self.metrics = metrics
        self._admin_hash = None if admin_token is None else _sha256(admin_token)
        self.rng = rng or random.Random()
        self._tables: dict[str, EndpointTable] = {}
        self._states: dict[str, EndpointState] = {}
        self._failures: dict[str, tuple[int, str]] = {}
        self._applied_once = False
        self._lock = asyncio.Lock()
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_inflight: dict[str, int] = {}
        self._shadow_seen = 0

    # -- applying deployments ------------------------------------------------------------------

    async def apply(self, states: list[dict[str, Any] | EndpointState], *,
                    retry_failed: bool = False) -> dict[str, str]:
        """Serve exactly ``states`` (the store's ``serving_states()``).

        For each endpoint whose revision changed, every version it needs is loaded and warmed
        beside the old ones, then its route table is switched by one assignment. Endpoints not
        in ``states`` stop being served. Versions no table uses any more are unloaded once
        their in-flight requests finish. A revision that failed is not retried on later calls
        unless ``retry_failed`` (its endpoint keeps its previous table).

        Parameters
        ----------
        states : list of dict or EndpointState
            One per endpoint.
        retry_failed : bool
            Try revisions that failed before again.

        Returns
        -------
        dict
            Endpoint name -> ``"unchanged"``, ``"switched"``, ``"updated"`` (token or access
            only), ``"failed: <why>"`` or ``"removed"``.
        """
        parsed = [s if isinstance(s, EndpointState) else EndpointState.model_validate(s)
                  for s in states]
        async with self._lock:
            report: dict[str, str] = {}
            wanted = {s.name: s for s in parsed}
            tables = dict(self._tables)
            pending = []
            for state in parsed:
                current = tables.get(state.name)
                failed = self._failures.get(state.name)
                if current is not None and current.state.revision == state.revision:
                    if current.state != state:
                        tables[state.name] = replace(current, state=state)
                        report[state.name] = "updated"
                    else:
                        report[state.name] = "unchanged"
                elif failed is not None and failed[0] == state.revision and not retry_failed:
                    report[state.name] = f"failed: {failed[1]}"
                else:
                    pending.append(state)
            built = await asyncio.gather(*(self._build(s) for s in pending),
                                         return_exceptions=True)
            for state, table in zip(pending, built):
                if isinstance(table, BaseException):
                    why = str(table) if isinstance(table, MLPlatError) else repr(table)
                    self._failures[state.name] = (state.revision, why)
                    report[state.name] = f"failed: {why}"
                    kept = tables.get(state.name)
                    log.error("endpoint %s revision %d not applied (%s); %s", state.name,
                              state.revision, why,
                              f"still serving revision {kept.state.revision}" if kept
                              else "it serves nothing until a revision loads")
                    if self.metrics is not None:
                        self.metrics.load_failures.labels(endpoint=state.name).inc()
                    continue
                tables[state.name] = table
                self._failures.pop(state.name, None)
                report[state.name] = "switched"
                log.info("endpoint %s now serves revision %d: %s", state.name, state.revision,
                         ", ".join(f"{m.ref} ({w})" for m, w in table.routes))
            for name in list(tables):
                if name not in wanted:
                    del tables[name]
                    report[name] = "removed"
                    log.info("endpoint %s is no longer served", name)
            self._tables = tables  # the switch: one assignment
            self._states = wanted
            self._failures = {k: v for k, v in self._failures.items() if k in wanted}
            self._applied_once = True
            self.repository.prune({m.key for t in tables.values() for m in t.models})
            return report

    async def _build(self, state: EndpointState) -> EndpointTable:
        if not state.routes:
            raise InvalidSpecError(f"endpoint {state.name!r} revision {state.revision} has no "
                                   "routes")
        keys = [(r.model, r.version) for r in state.routes]
        if state.shadow is not None:
            keys.append((state.shadow.model, state.shadow.version))
        loaded = await asyncio.gather(*(self.repository.acquire(k) for k in dict.fromkeys(keys)),
                                      return_exceptions=True)
        errors = [e for e in loaded if isinstance(e, BaseException)]
        if errors:
            raise ModelLoadError("; ".join(str(e) for e in errors))
        models = {m.key: m for m in loaded if isinstance(m, ServedModel)}
        routes = tuple((models[(r.model, r.version)], r.weight) for r in state.routes)
        cumulative: list[int] = []
        total = 0
        for _, weight in routes:
            total += weight
            cumulative.append(total)
        shadow = None
        if state.shadow is not None:
            shadow = models[(state.shadow.model, state.shadow.version)]
        return EndpointTable(state, routes, tuple(cumulative), shadow)

    async def reload(self, endpoint: str) -> str:
        """Try the endpoint's newest known revision again (after a failure); its outcome."""
        if endpoint not in self._states:
            raise NotFoundError(f"no endpoint {endpoint!r} is deployed here")
        self._failures.pop(endpoint, None)
        table = self._tables.get(endpoint)
        states = list(self._states.values())
        if table is not None and table.state.revision == self._states[endpoint].revision:
            return "unchanged"
        return (await self.apply(states, retry_failed=True)).get(endpoint, "unchanged")

    async def unload(self, endpoint: str) -> None:
        """Stop serving ``endpoint`` in this process until its next revision (or a reload)."""
        if endpoint not in self._states:
            raise NotFoundError(f"no endpoint {endpoint!r} is deployed here")
        async with self._lock:
            state = self._states[endpoint]
            tables = {k: v for k, v in self._tables.items() if k != endpoint}
            self._tables = tables
            self._failures[endpoint] = (state.revision, "unloaded by the admin API")
            self.repository.prune({m.key for t in tables.values() for m in t.models})

    async def close(self) -> None:
        """Let shadow predictions finish briefly, then unload every model."""
        if self._shadow_tasks:
            await asyncio.wait(list(self._shadow_tasks), timeout=5)
        self._tables = {}
        await self.repository.close(self.settings.drain_timeout)

    # -- lookups -------------------------------------------------------------------------------

    def endpoint_names(self) -> list[str]:
        """Endpoints deployed here (loaded or not), sorted."""
        return sorted(self._states)

    def default_endpoint(self) -> str:
        """The endpoint plain ``/invocations`` goes to: the configured one, or the only one."""
        name = self.settings.default_endpoint
        if name:
            return name
        names = self.endpoint_names()
        if len(names) == 1:
            return names[0]
        if not names:
            raise NotFoundError("no endpoint is deployed here; deploy one with "
                                "`jupyter mlplat deploy`")
        raise NotFoundError(f"several endpoints are deployed ({', '.join(names)}): post to "
                            "/endpoints/<name>/invocations, or start the server with "
                            "--default-endpoint")

    def state(self, endpoint: str) -> EndpointState:
        """The newest known state of ``endpoint``; NotFoundError when it is not deployed here."""
        state = self._states.get(endpoint)
        if state is None:
            raise NotFoundError(f"no endpoint {endpoint!r} is deployed here"
                                f"{_known(self.endpoint_names())}")
        return state

    def table(self, endpoint: str) -> EndpointTable:
        """The route table serving ``endpoint``; NotReadyError when none loaded yet."""
        table = self._tables.get(endpoint)
        if table is None:
            self.state(endpoint)
            failure = self._failures.get(endpoint)
            why = f": {failure[1]}" if failure else " (still loading)"
            raise NotReadyError(f"endpoint {endpoint!r} has no loaded revision{why}")
        return table

    def version(self, endpoint: str, version: str | int) -> ServedModel:
        """The version ``version`` (``N`` or ``model@N``) behind ``endpoint``, routed or shadow."""
        table = self.table(endpoint)
        text = str(version)
        model_name, _, number = text.rpartition("@")
        if not number.isdigit():
            raise InvalidSpecError(f"version must be a number or MODEL@NUMBER, not {text!r}")
        matches = [m for m in dict.fromkeys(table.models)
                   if m.version == int(number) and model_name in ("", m.name)]
        if not matches:
            served = ", ".join(sorted({m.ref for m in table.models}))
            raise NotFoundError(f"endpoint {endpoint!r} does not serve version {text!r} "
                                f"(it serves {served})")
        if len(matches) > 1:
            raise InvalidSpecError(f"version {text!r} is ambiguous on endpoint {endpoint!r}: "
                                   f"use one of {[m.ref for m in matches]}")
        return matches[0]

    def signature(self, endpoint: str, version: str | int | None = None) -> dict[str, Any]:
        """The signature requests to ``endpoint`` are decoded with (its first route's)."""
        if version is not None:
            return self.version(endpoint, version).signature
        return self.table(endpoint).routes[0][0].signature

    # -- access --------------------------------------------------------------------------------

    def authorize(self, endpoint: str, token: str | None) -> None:
        """Check a bearer token for prediction on ``endpoint`` (public endpoints need none).

        Raises
        ------
        NotFoundError
            No such endpoint here.
        UnauthorizedError
            No token, and the endpoint is not public.
        ForbiddenError
            The token is not the endpoint's (or it has none set).
        """
        state = self.state(endpoint)
        if state.public:
            return
        if not token:
            raise UnauthorizedError(f"endpoint {endpoint!r} needs a bearer token "
                                    "(Authorization: Bearer <token>)")
        if state.token_hash is None or not hmac.compare_digest(_sha256(token),
                                                               state.token_hash):
            raise ForbiddenError(f"the token is not valid for endpoint {endpoint!r}")

    def authorize_admin(self, token: str | None) -> None:
        """Check the admin credential; Unauthorized when missing, Forbidden when wrong."""
        if not token:
            raise UnauthorizedError("the admin API needs the server's admin token "
                                    "(Authorization: Bearer <token>)")
        if self._admin_hash is None or not hmac.compare_digest(_sha256(token),
                                                               self._admin_hash):
            raise ForbiddenError("the token is not this server's admin token")

    # -- health and metadata -------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether every endpoint deployed here has a loaded table (after the first apply)."""
        return self._applied_once and all(n in self._tables for n in self._states)

    def endpoint_ready(self, endpoint: str, version: str | int | None = None) -> bool:
        """Whether ``endpoint`` (or one version behind it) can answer now."""
        self.state(endpoint)
        if endpoint not in self._tables:
            return False
        if version is None:
            return True
        return self.version(endpoint, version).ready

    def server_metadata(self) -> dict[str, Any]:
        """V2 server metadata."""
        from .. import __version__

        return {"name": "jupyter-mlplat", "version": __version__,
                "extensions": ["model_repository_extension"]}

    def metadata(self, endpoint: str, version: str | int | None = None) -> dict[str, Any]:
        """V2 model metadata of ``endpoint`` (or of one version behind it).

        ``versions`` lists ``model@N`` of every route; ``platform`` is the flavour
        (``sklearn``, ``torch``, ``pyfunc``); ``inputs``/``outputs`` come from the signature
        (of the first route). Extra keys: ``revision``, ``routes``, ``shadow`` and
        ``last_failure`` (why the newest revision is not served, or null).
        """
        from ..tracking.signature import to_v2_metadata

        state = self.state(endpoint)
        failure = self._failures.get(endpoint)
        table = self._tables.get(endpoint)
        base = {"name": endpoint,
                "last_failure": None if failure is None else
                {"revision": failure[0], "error": failure[1]}}
        if table is None:
            return {**base, "versions": [f"{r.model}@{r.version}" for r in state.routes],
                    "platform": "", "inputs": [], "outputs": [], "ready": False,
                    "revision": None, "routes": [], "shadow": None}
        if version is not None:
            chosen = self.version(endpoint, version)
            versions = [chosen.ref]
        else:
            chosen = table.routes[0][0]
            versions = [m.ref for m, _ in table.routes]
        return {
            **base, "versions": versions, "platform": chosen.flavor or "",
            **to_v2_metadata(chosen.signature), "ready": True,
            "revision": table.state.revision,
            "routes": [r.model_dump() for r in table.state.routes],
            "shadow": None if table.state.shadow is None else table.state.shadow.model_dump(),
        }

    def index(self) -> list[dict[str, Any]]:
        """The repository index: each endpoint with its state, and each loaded version."""
        out: list[dict[str, Any]] = []
        for name in self.endpoint_names():
            table = self._tables.get(name)
            failure = self._failures.get(name)
            out.append({
                "name": name, "version": None if table is None else
                ",".join(m.ref for m, _ in table.routes),
                "state": "READY" if table is not None else
                ("UNAVAILABLE" if failure else "LOADING"),
                "reason": "" if failure is None else
                f"revision {failure[0]}: {failure[1]}",
                "revision": None if table is None else table.state.revision,
            })
        return out

    # -- inference -----------------------------------------------------------------------------

    async def infer(self, endpoint: str, X: Any, *, version: str | int | None = None,
                    sticky_key: str | None = None) -> InferenceResult:
        """Predictions of ``endpoint`` for one request.

        Parameters
        ----------
        endpoint : str
            The endpoint's name.
        X : Any
            The request's rows (what :func:`~jupyter_mlplat.tracking.signature.check_input`
            accepts).
        version : str or int, optional
            Reach this version (``N`` or ``model@N``) directly, bypassing the split (and the
            shadow).
        sticky_key : str, optional
            The same key gets the same route while the weights stay.

        Returns
        -------
        InferenceResult
            The outputs and the answering model and version.

        Raises
        ------
        NotFoundError, NotReadyError, SignatureError, InferenceError
        """
        if version is not None:
            served = self.version(endpoint, version)
            table = None
        else:
            table = self.table(endpoint)
            served = table.pick(self.rng, sticky_key)
        try:
            outputs = await served.predict(X)  # picked and accepted without yielding between
        except MLPlatError as exc:
            exc.mlplat_served = served.key  # type: ignore[attr-defined]  # for the header
            raise
        if table is not None and table.shadow is not None and \
                self.rng.random() < table.state.shadow.share:  # type: ignore[union-attr]
            self._start_shadow(endpoint, table.shadow, X, served, outputs)
        return InferenceResult(endpoint, served.name, served.version, outputs, served.signature)

    def _start_shadow(self, endpoint: str, shadow: ServedModel, X: Any, primary: ServedModel,
                      outputs: Any) -> None:
        running = self._shadow_inflight.get(endpoint, 0)
        if running >= MAX_SHADOW_INFLIGHT:
            self._count_shadow(endpoint, "dropped")
            return
        self._shadow_inflight[endpoint] = running + 1
        task = asyncio.get_running_loop().create_task(
            self._shadow(endpoint, shadow, X, primary, outputs))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(self, endpoint: str, shadow: ServedModel, X: Any, primary: ServedModel,
                      outputs: Any) -> None:
        try:
            got = await shadow.predict(X)
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is logged, never returned
            self._count_shadow(endpoint, "error")
            log.warning("shadow %s on endpoint %s failed: %s", shadow.ref, endpoint, exc)
            return
        finally:
            self._shadow_inflight[endpoint] -= 1
        agree = same_output(got, outputs)
        self._count_shadow(endpoint, "agree" if agree else "disagree")
        self._shadow_seen += 1
        if self._shadow_seen <= 5 or self._shadow_seen % self.settings.shadow_log_every == 0:
            log.info("shadow on endpoint %s: %s %s %s", endpoint, shadow.ref,
                     "agrees with" if agree else "differs from", primary.ref)

    def _count_shadow(self, endpoint: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow.labels(endpoint=endpoint, outcome=outcome).inc()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _known(names: list[str]) -> str:
    return f" (deployed: {', '.join(names)})" if names else " (none is deployed)"
