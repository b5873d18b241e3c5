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
import re
from collections.abc import Collection, Mapping
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
    #: Seconds one model version may take to load and warm before the load counts as failed.
    load_timeout: float = Field(default=120.0, gt=0.0)
    #: First and longest wait (seconds) before the poller retries a revision that failed.
    retry_backoff: float = Field(default=2.0, gt=0.0)
    retry_backoff_max: float = Field(default=30.0, gt=0.0)


@dataclass(frozen=True)
class LoadFailure:
    """Why an endpoint's newest revision is not served."""

    revision: int
    #: Full text (logs and the admin index only: it may hold paths).
    detail: str
    #: Short text for callers: exception type and first line, paths removed.
    reason: str
    #: Stopped by the admin API (never retried automatically).
    by_admin: bool = False


@dataclass(frozen=True)
class InferenceResult:
    """What :meth:`ServingService.infer` returns."""

    endpoint: str
    model: str
    version: int
    outputs: Any
    signature: dict[str, Any] = field(default_factory=dict)
    #: The revision of the route table that served the request.
    revision: int | None = None

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
        self._failures: dict[str, LoadFailure] = {}
        self._applied_once = False
        self._lock = asyncio.Lock()
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_inflight: dict[str, int] = {}
        self._shadow_seen = 0

    # -- applying deployments ------------------------------------------------------------------

    async def apply(self, states: list[dict[str, Any] | EndpointState], *,
                    retry_failed: bool | Collection[str] = False) -> dict[str, str]:
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
        retry_failed : bool or collection of str
            Try revisions that failed before again: True every one, or only those of the
            endpoints named (an endpoint stopped by the admin API is retried only when named).

        Returns
        -------
        dict
            Endpoint name -> ``"unchanged"``, ``"switched"``, ``"updated"`` (token or access
            only), ``"failed: <why>"`` or ``"removed"``.
        """
        parsed = [s if isinstance(s, EndpointState) else EndpointState.model_validate(s)
                  for s in states]
        async with self._lock:
            return await self._apply_locked(parsed, retry_failed)

    async def _apply_locked(self, parsed: list[EndpointState],
                            retry_failed: bool | Collection[str]) -> dict[str, str]:
        """:meth:`apply`'s body; the caller holds ``self._lock``."""
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
            elif failed is not None and failed.revision == state.revision and not (
                    (retry_failed is True and not failed.by_admin) or
                    (not isinstance(retry_failed, bool) and state.name in retry_failed)):
                report[state.name] = f"failed: {failed.reason}"
            else:
                pending.append(state)
        built = await asyncio.gather(*(self._build(s) for s in pending),
                                     return_exceptions=True)
        for state, table in zip(pending, built):
            if isinstance(table, BaseException):
                why = str(table) if isinstance(table, MLPlatError) else repr(table)
                short = public_reason(table)
                self._failures[state.name] = LoadFailure(state.revision, why, short)
                report[state.name] = f"failed: {short}"
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
        """Try the endpoint's newest known revision again (after a failure); its outcome.

        Runs under the apply lock on the states known at that moment, so a concurrent poll
        cannot be undone by an older list; only ``endpoint`` is retried.
        """
        async with self._lock:
            state = self._states.get(endpoint)
            if state is None:
                raise NotFoundError(f"no endpoint {endpoint!r} is deployed here")
            table = self._tables.get(endpoint)
            if table is not None and table.state.revision == state.revision:
                return "unchanged"
            report = await self._apply_locked(list(self._states.values()), {endpoint})
            return report.get(endpoint, "unchanged")

    def retryable(self) -> dict[str, int]:
        """Endpoints whose newest revision failed to load (not stopped by the admin API).

        Name -> failed revision; the poller retries these with a backoff.
        """
        return {name: f.revision for name, f in self._failures.items()
                if not f.by_admin and name in self._states
                and self._states[name].revision == f.revision}

    async def retry_failed(self) -> dict[str, str]:
        """Try again the revisions of :meth:`retryable` (only those); their outcomes."""
        async with self._lock:
            names = set(self.retryable())
            if not names:
                return {}
            report = await self._apply_locked(list(self._states.values()), names)
            return {name: report.get(name, "unchanged") for name in names}

    async def unload(self, endpoint: str) -> None:
        """Stop serving ``endpoint`` in this process until its next revision (or a reload)."""
        async with self._lock:
            state = self._states.get(endpoint)
            if state is None:
                raise NotFoundError(f"no endpoint {endpoint!r} is deployed here")
            tables = {k: v for k, v in self._tables.items() if k != endpoint}
            self._tables = tables
            why = "unloaded by the admin API"
            self._failures[endpoint] = LoadFailure(state.revision, why, why, by_admin=True)
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
        raise NotFoundError("several endpoints are deployed: post to "
                            "/endpoints/<name>/invocations, or start the server with "
                            "--default-endpoint")

    def state(self, endpoint: str) -> EndpointState:
        """The newest known state of ``endpoint``; NotFoundError when it is not deployed here."""
        state = self._states.get(endpoint)
        if state is None:
            raise NotFoundError(f"no endpoint {endpoint!r} is deployed here")
        return state

    def table(self, endpoint: str) -> EndpointTable:
        """The route table serving ``endpoint``; NotReadyError when none loaded yet."""
        table = self._tables.get(endpoint)
        if table is None:
            self.state(endpoint)
            failure = self._failures.get(endpoint)
            why = f": {failure.reason}" if failure else " (still loading)"
            raise NotReadyError(f"endpoint {endpoint!r} has no loaded revision{why}")
        return table

    def version(self, endpoint: str, version: str | int) -> ServedModel:
        """The version ``version`` (``N`` or ``model@N``) behind ``endpoint``, routed or shadow."""
        return _version_in(self.table(endpoint), endpoint, version)

    def decoding_model(self, endpoint: str, version: str | int | None = None) -> ServedModel:
        """The version whose signature decodes requests to ``endpoint`` (its first route's)."""
        if version is not None:
            return self.version(endpoint, version)
        return self.table(endpoint).routes[0][0]

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
        """Whether the first sync with the store is done (endpoints are ready one by one)."""
        return self._applied_once

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
                {"revision": failure.revision, "error": failure.reason}}
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
                f"revision {failure.revision}: {failure.detail}",
                "revision": None if table is None else table.state.revision,
            })
        return out

    # -- inference -----------------------------------------------------------------------------

    async def infer(self, endpoint: str, X: Any, *, version: str | int | None = None,
                    sticky_key: str | None = None,
                    headers: Mapping[str, str] | None = None) -> InferenceResult:
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
        headers : mapping, optional
            The request's headers: the sticky key is read from the serving table's
            ``sticky_header`` (when ``sticky_key`` is not given).

        Returns
        -------
        InferenceResult
            The outputs and the answering model and version.

        Raises
        ------
        NotFoundError, NotReadyError, SignatureError, InferenceError
        """
        table = self.table(endpoint)
        if version is not None:
            served = _version_in(table, endpoint, version)
        else:
            header = table.state.sticky_header
            if sticky_key is None and header and headers is not None:
                sticky_key = headers.get(header)
            served = table.pick(self.rng, sticky_key)
        try:
            outputs = await served.predict(X)  # picked and accepted without yielding between
        except MLPlatError as exc:
            exc.mlplat_served = served.key  # type: ignore[attr-defined]  # for the header
            raise
        if version is None and table.shadow is not None and \
                self.rng.random() < table.state.shadow.share:  # type: ignore[union-attr]
            self._start_shadow(endpoint, table.shadow, X, served, outputs)
        return InferenceResult(endpoint, served.name, served.version, outputs, served.signature,
                               table.state.revision)

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


#: Absolute paths and URLs (file:///..., s3://...) in error text shown to callers.
_PATH = re.compile(r"(?<![\w.@])(?:[A-Za-z]:)?[\\/][^\s'\",;()\[\]]*")


def public_reason(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of ``exc`` with paths replaced by ``<path>`` (safe for callers)."""
    text = str(exc).strip().splitlines()
    line = _PATH.sub("<path>", text[0] if text else "")
    out = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return out if len(out) <= limit else out[:limit - 3] + "..."


def is_number(text: str) -> bool:
    """Whether ``text`` is ASCII digits only (``str.isdigit`` also takes ``'²'``)."""
    return re.fullmatch(r"[0-9]+", text) is not None


def _version_in(table: EndpointTable, endpoint: str, version: str | int) -> ServedModel:
    text = str(version)
    model_name, _, number = text.rpartition("@")
    if not is_number(number):
        raise InvalidSpecError(f"version must be a number or MODEL@NUMBER, not {text!r}")
    matches = [m for m in dict.fromkeys(table.models)
               if m.version == int(number) and model_name in ("", m.name)]
    if not matches:
        raise NotFoundError(f"endpoint {endpoint!r} does not serve version {text!r}")
    if len(matches) > 1:
        raise InvalidSpecError(f"version {text!r} is ambiguous on endpoint {endpoint!r}: "
                               "give it as MODEL@NUMBER")
    return matches[0]
