"""One store call for one owner: what ``jupyter mlplat service`` runs for each request.

No HTTP in here. :class:`StoreDispatcher` holds the one SQL store of the service (one engine,
one connection pool) and gives each caller a view of it scoped to the caller's name, so a call
can only ever reach the caller's rows. Before a call runs, its arguments are checked as
``policy`` describes; a client's mistake is an ``InvalidSpecError`` (400) or a
``ConflictError`` (409), never a failure inside the store. Runs are recorded with the calling
process (host, pid, start time), which the client must send, in the transaction that creates or
claims them, so liveness checks and "only if ours" keep their single-user meaning.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConflictError, InvalidSpecError, NotFoundError
from .artifacts import OwnerArtifacts
from .policy import (
    ACTOR_ARGS,
    ALWAYS_FIXED,
    DENIED,
    EXPOSED,
    ID_ARGS,
    URI_FIELDS,
    Exposed,
    arg_adapter,
    check_json,
    field_adapters,
    json_columns,
    method_signature,
    required_fields,
)
from .protocol import UnknownMethodError
from .schedules import SchedulePolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallerProcess:
    """The client process behind a call (recorded on the runs it creates or claims)."""

    host: str
    pid: int
    started: float

    @classmethod
    def parse(cls, data: Any) -> CallerProcess | None:
        """From a request's ``process`` object; None when absent."""
        if data is None:
            return None
        try:
            host, pid, started = str(data["host"]), int(data["pid"]), float(data["started"])
        except (KeyError, TypeError, ValueError):
            raise InvalidSpecError(
                "'process' must be {\"host\": str, \"pid\": int, \"started\": float}") from None
        if not host or len(host) > 255 or pid < 0:
            raise InvalidSpecError("'process' names no valid host and pid")
        return cls(host, pid, started)


class StoreDispatcher:
    """Runs store methods for authenticated owners.

    Parameters
    ----------
    store : Store
        The service's SQL store; its owner is a placeholder, never used for a call.
    artifacts : OwnerArtifacts
        The per-owner artifact stores (for checking the artifacts a call records).
    schedules : SchedulePolicy, optional
        What schedule rows may name (kernels, webhook hosts); default :class:`SchedulePolicy`.
    """

    def __init__(self, store: Any, artifacts: OwnerArtifacts,
                 schedules: SchedulePolicy | None = None) -> None:
        self.store = store
        self.artifacts = artifacts
        self.schedules = schedules or SchedulePolicy()
        self.store_cls = type(store)

    def methods(self) -> list[str]:
        """The methods a client may call here (what ``api/whoami`` lists)."""
        return sorted(m for m in EXPOSED if hasattr(self.store_cls, m))

    def view(self, owner: str, groups: Collection[str] = ()) -> Any:
        """The service's store scoped to ``owner`` (a member of hub groups ``groups``): shares
        the engine and its pool."""
        if not owner:
            raise InvalidSpecError("an owner name is needed; got an empty one")
        scoped = copy.copy(self.store)
        scoped.owner = owner
        scoped.groups = frozenset(groups)
        return scoped

    def process_view(self, owner: str, process: CallerProcess, run_id: str | None,
                     groups: Collection[str] = ()) -> Any:
        """``owner``'s view whose runs are recorded as the calling ``process``'s.

        The store records the process that writes a run (host, pid, start time); here that is
        the service, so each transaction of this view writes the caller's instead: new runs
        are inserted with it, and the run it claims (``run_id``) is rewritten before the
        transaction commits. One transaction, nothing to fix later.
        """
        from sqlalchemy import event, update

        from ..store import orm

        scoped = self.view(owner, groups)
        scoped.host = process.host
        sessions = self.store._sessions  # noqa: SLF001 - the same engine, the same transactions
        service_pid = os.getpid()

        def as_caller(s: Any, _context: Any, _instances: Any) -> None:
            for row in s.new:
                if isinstance(row, orm.Run) and row.pid == service_pid:
                    row.host, row.pid, row.pid_started = (process.host, process.pid,
                                                          process.started)

        @contextmanager
        def session() -> Iterator[Any]:
            with sessions.begin() as s:
                event.listen(s, "before_flush", as_caller)
                yield s
                if run_id is not None:
                    s.execute(update(orm.Run).where(
                        orm.Run.id == run_id, orm.Run.owner == owner,
                        orm.Run.host == process.host, orm.Run.pid == service_pid,
                    ).values(pid=process.pid, pid_started=process.started)
                        .execution_options(synchronize_session=False))

        scoped.session = session
        return scoped

    # -- the call ----------------------------------------------------------------------------

    def call(self, owner: str, method: str, args: list[Any], kwargs: dict[str, Any],
             process: CallerProcess | None = None, groups: Collection[str] = ()) -> Any:
        """Run ``method`` on ``owner``'s view of the store after checking its arguments.

        Raises
        ------
        UnknownMethodError
            The method is not exposed (or denied on purpose).
        NotFoundError
            An id or artifact the call names is not the owner's.
        InvalidSpecError
            Arguments that do not fit the method, or a row missing a required value.
        ConflictError
            The row conflicts with one the owner has (a unique name, ...).
        """
        from sqlalchemy.exc import DataError, IntegrityError

        rule = EXPOSED.get(method)
        if rule is None or not hasattr(self.store_cls, method):
            why = f" ({DENIED[method]})" if method in DENIED else ""
            raise UnknownMethodError(f"the store service has no method {method!r}{why}")
        bound = self._bind(method, rule, args, kwargs)
        needs_process = rule.process in ("create", "claim") or (
            rule.process == "finish" and bound.get("only_if_ours"))
        if needs_process and process is None:
            raise InvalidSpecError(
                f"{method} records or checks the process that runs the pipeline: send "
                '"process": {"host": str, "pid": int, "started": float} with the call')
        if method in ("add_schedule", "update_schedule"):
            bound = self._check_schedule(method, bound)
        store = self.view(owner, groups)
        if method in ("add_schedule", "update_schedule"):
            bound = self._next_fire(store, method, bound)
        self._check_actors(owner, bound)
        self._check_ids(store, bound)
        self._check_artifacts(owner, bound)
        if rule.process == "finish" and bound.get("only_if_ours"):
            return self._finish_if_ours(store, bound, process)
        if rule.process in ("create", "claim"):
            assert process is not None
            store = self.process_view(owner, process, bound.get("run_id"), groups)
        try:
            return getattr(store, method)(**bound)
        except IntegrityError as exc:
            text = _first_line(exc.orig)
            if "NOT NULL" in text.upper() or "not-null" in text:
                raise InvalidSpecError(f"{method}: a required value is missing ({text})") from None
            raise ConflictError(f"{method}: the row conflicts with one you have ({text})"
                                ) from None
        except DataError as exc:
            raise InvalidSpecError(f"{method}: a value does not fit its column "
                                   f"({_first_line(exc.orig)})") from None

    def _bind(self, method: str, rule: Exposed, args: list[Any],
              kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, validated; ``**fields`` flattened into them."""
        from pydantic import ValidationError

        sig = method_signature(self.store_cls, method)
        try:
            bound = sig.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise InvalidSpecError(f"{method}: {exc}") from None
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name == "self":
                continue
            if name == sig.var_keyword:
                out.update(self._fields(method, rule, value))
                continue
            adapter = sig.adapters.get(name)
            if adapter is not None:
                try:
                    value = adapter.validate_python(value)
                except ValidationError as exc:
                    raise InvalidSpecError(
                        f"{method}: argument {name!r}: {_first_error(exc)}") from None
            value = _shaped(method, name, value, "argument")
            if name in sig.free_form:
                check_json(f"{method}: argument {name!r}", value)
            out[name] = value
        return out

    def _fields(self, method: str, rule: Exposed, fields: dict[str, Any]) -> dict[str, Any]:
        from pydantic import ValidationError

        if rule.fields is None:
            if fields:
                raise InvalidSpecError(f"{method}: unexpected argument(s) "
                                       f"{', '.join(sorted(fields))}")
            return {}
        adapters = field_adapters(rule.fields)
        allowed = (set(adapters) - rule.fixed - ALWAYS_FIXED) | rule.extra
        refused = sorted(set(fields) - allowed)
        if refused:
            raise InvalidSpecError(
                f"{method}: cannot set {', '.join(refused)}; the fields it takes are "
                f"{', '.join(sorted(allowed))}")
        if rule.creates:
            missing = sorted((required_fields(rule.fields) - rule.fixed - ALWAYS_FIXED
                              | rule.extra) - set(fields))
            if missing:
                raise InvalidSpecError(f"{method}: missing required field(s) "
                                       f"{', '.join(missing)}")
        out = {}
        for key, value in fields.items():
            adapter = adapters.get(key)
            if adapter is not None:
                try:
                    value = adapter.validate_python(value)
                except ValidationError as exc:
                    raise InvalidSpecError(
                        f"{method}: field {key!r}: {_first_error(exc)}") from None
            value = _shaped(method, key, value, "field")
            if adapter is None or key in json_columns(rule.fields):
                check_json(f"{method}: field {key!r}", value)
            out[key] = value
        return out

    def _check_schedule(self, method: str, bound: dict[str, Any]) -> dict[str, Any]:
        columns = {k: v for k, v in bound.items() if k not in ("schedule_id", "now")}
        return {**bound, **self.schedules.check(columns)}

    @staticmethod
    def _next_fire(store: Any, method: str, bound: dict[str, Any]) -> dict[str, Any]:
        """Set when a schedule fires next, on the service's clock: a client may not write it
        (``next_fire_at`` is fixed), so a new or changed schedule would otherwise never fire on
        cron. A new one fires at the first slot after now (none while paused); a change that
        pauses it clears its slot, one that resumes it or changes its cron or timezone moves
        the slot to the first one after now and after every slot it already fired."""
        from ..scheduler.cron import CronSchedule

        now = datetime.now(UTC)
        if method == "add_schedule":
            cron = CronSchedule(bound["cron"], bound.get("timezone") or "UTC")
            return {**bound, "next_fire_at": None if bound.get("paused") else
                    cron.next_after(now)}
        row = store.schedule_row(bound["schedule_id"])  # the caller's, else 404
        expr, zone = bound.get("cron", row.cron), bound.get("timezone", row.timezone)
        if bound.get("paused", row.paused):
            return {**bound, "next_fire_at": None}
        if row.paused or row.next_fire_at is None or (expr, zone) != (row.cron, row.timezone):
            last = row.last_slot_at
            slot = CronSchedule(expr, zone).next_after(max(now, last) if last else now)
            return {**bound, "next_fire_at": slot, "last_error": None}
        return bound

    # -- checks ------------------------------------------------------------------------------

    @staticmethod
    def _check_actors(owner: str, bound: dict[str, Any]) -> None:
        named = [(k, bound[k]) for k in ACTOR_ARGS if bound.get(k) is not None]
        promote = bound.get("promote")
        if isinstance(promote, dict) and promote.get("actor") is not None:
            named.append(("promote.actor", promote["actor"]))
        for key, value in named:
            if value != owner:
                raise InvalidSpecError(
                    f"{key} must be the authenticated user {owner!r}; got {value!r}")

    @staticmethod
    def _check_ids(store: Any, bound: dict[str, Any]) -> None:
        from sqlalchemy import select

        from ..store import orm

        for key, (table, what) in ID_ARGS.items():
            value = bound.get(key)
            if value is None:
                continue
            cls = getattr(orm, table, None)
            if cls is None:
                continue
            with store.session() as s:
                found = s.scalar(select(cls.id).where(cls.id == value, cls.owner == store.owner))
            if found is None:
                raise NotFoundError(f"no {what} {value!r}")

    def _check_artifacts(self, owner: str, bound: dict[str, Any]) -> None:
        for key in URI_FIELDS:
            if bound.get(key) is not None:
                self.artifacts.check_ref(owner, bound[key])
        for value in bound.values():
            for ref in _artifact_refs(value):
                self.artifacts.check_ref(owner, ref.get("uri"), ref.get("sha256"))

    # -- runs owned by the calling process ---------------------------------------------------

    @staticmethod
    def _finish_if_ours(store: Any, bound: dict[str, Any], process: CallerProcess) -> None:
        """``finish_run(..., only_if_ours=True)`` for the calling process, not the service's."""
        from sqlalchemy import select

        from ..store import orm

        host, pid = process.host, process.pid
        with store.session() as s:
            run = s.scalar(select(orm.Run).where(orm.Run.id == bound["run_id"],
                                                 orm.Run.owner == store.owner)
                           .with_for_update())
            if run is None:
                raise NotFoundError(f"no run {bound['run_id']!r}")
            if run.host != host or run.pid != pid:
                return None
            run.status = bound["status"]
            run.error = bound.get("error")
            run.finished_at = datetime.now(UTC)
        return None


def _artifact_refs(value: Any) -> list[dict[str, Any]]:
    """Every artifact reference (a dict with ``sha256`` and ``uri``) inside ``value``."""
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "uri" in item and "sha256" in item:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _shaped(method: str, key: str, value: Any, what: str) -> Any:
    """``value`` checked against ``ARG_MODELS[(method, key)]`` (as plain dicts), if listed."""
    from pydantic import BaseModel, ValidationError

    adapter = arg_adapter(method, key)
    if adapter is None:
        return value
    try:
        checked = adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidSpecError(f"{method}: {what} {key!r}: {_first_error(exc)}") from None

    def plain(item: Any) -> Any:
        if isinstance(item, BaseModel):
            return item.model_dump()
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item

    return plain(checked)


def _first_line(exc: Any) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _first_error(exc: Any) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{err.get('msg')}{f' (at {where})' if where else ''}"

