"""ScheduleService: make, list, show, change, pause, resume, delete and run-now schedules.

Every front door calls it one method at a time (REST handler, CLI, ``mlp.schedule``); it is
scoped to one owner and never fires anything itself: a scheduler loop does (``run_now`` queues a
firing that the next poll picks up; the CLI's ``run-now`` runs it in the foreground through a
loop of its own). Bad input is an ``InvalidSpecError`` saying what was expected (a REST 400):
an invalid cron expression, an unknown timezone, a missing notebook, a parameter the notebook
does not declare or of the wrong type, a bad webhook or address, an unknown kernel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..config import MLPlat
from ..errors import ConflictError, InvalidSpecError, NotFoundError
from ..schemas import (
    CreateSchedule,
    DescribeFiring,
    DescribeSchedule,
    ListFiringsResponse,
    ListSchedulesResponse,
    ScheduleNotify,
    UpdateSchedule,
)
from .cron import CronSchedule
from .describe import describe_firing, describe_schedule
from .targets import check_kernel, check_parameters, display_path, resolve_notebook, target_spec

_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
NEXT_TIMES = 5
#: Schedule columns a client of the store service may not write (``hub/policy.py``).
SERVICE_SET = frozenset({"next_fire_at", "last_error", "created_at", "updated_at"})


def parse_request(model: type[BaseModel], data: Any, what: str) -> Any:
    """``data`` (a dict or the model) as ``model``; a pydantic error becomes an
    ``InvalidSpecError`` naming each bad field and what it expected."""
    if isinstance(data, model):
        return data
    if isinstance(data, dict) and isinstance(data.get("notify"), dict):
        notify = dict(data["notify"])
        for key in ("webhook", "email", "on"):
            if isinstance(notify.get(key), str):  # one value is a list of one
                notify[key] = [notify[key]]
        data = {**data, "notify": notify}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors())
        raise InvalidSpecError(f"invalid {what}: {problems}") from None


class ScheduleService:
    """The schedules of one owner.

    Parameters
    ----------
    config : MLPlat, optional
        Settings; read from the environment when omitted.
    store : Store, optional
        Owner-scoped store; built from ``config`` when omitted.
    root : path, optional
        Notebook paths are relative to it and must stay inside it (the server's root). Without
        it (CLI, Python) a path is relative to the working directory.
    clock : callable, optional
        The current aware UTC time (tests drive it).

    Notes
    -----
    With the store service as the store (JupyterHub), the scheduler that fires the schedules is
    a hub service that finds notebooks in each owner's home: a notebook is stored as a path
    relative to ``root`` (default: the user's home folder), and one outside it is refused.
    """

    def __init__(self, config: MLPlat | None = None, *, store: Any = None,
                 root: str | Path | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config or MLPlat()
        if store is None:
            from ..store import open_store

            store = open_store(self.config)
        self.store = store
        self.root = root
        self.clock = clock or (lambda: datetime.now(UTC))
        from ..store.sql import Store

        #: the store service: notebook paths are stored relative to the user's root
        self.remote = not isinstance(store, Store)

    # -- commands -------------------------------------------------------------------------------

    def create(self, request: CreateSchedule | dict[str, Any]) -> DescribeSchedule:
        """Make a schedule; it first fires at the next slot after now (unless paused).

        Raises
        ------
        InvalidSpecError
            Bad cron, timezone, notebook, parameters, on-success action or notification.
        ConflictError
            The owner already has a schedule of that name.
        """
        req: CreateSchedule = parse_request(CreateSchedule, request, "schedule")
        fields = self._checked(req)
        self._unique_name(fields["name"])
        now = self.clock()
        cron = CronSchedule(fields["cron"], fields["timezone"])
        row = self.store.add_schedule(**self._columns(
            **fields, paused=req.paused,
            next_fire_at=None if req.paused else cron.next_after(now),
            created_at=now, updated_at=now))
        return self.describe(row.id)

    def update(self, ref: str, request: UpdateSchedule | dict[str, Any]) -> DescribeSchedule:
        """Change a schedule; what is left out stays. A new cron or timezone moves the next slot
        to the first one after now."""
        patch: UpdateSchedule = parse_request(UpdateSchedule, request, "schedule change")
        row = self._resolve(ref)
        changes = patch.model_dump(exclude_unset=True)
        merged = CreateSchedule(
            notebook=self._editable(row.notebook_path),
            cron=row.cron, timezone=row.timezone, target=row.target, name=row.name,
            parameters=row.parameters or {}, on_success=row.on_success or {},
            notify=row.notify or {}, missed=row.missed, kernel=row.kernel_name,
            timeout=row.timeout)
        merged = parse_request(CreateSchedule, {**merged.model_dump(), **changes}, "schedule")
        fields = self._checked(merged)
        if fields["name"] != row.name:
            self._unique_name(fields["name"])
        now = self.clock()
        if not row.paused and (fields["cron"] != row.cron or fields["timezone"] != row.timezone):
            fields["next_fire_at"] = _next_slot(CronSchedule(fields["cron"], fields["timezone"]),
                                                now, row)
            fields["last_error"] = None
        self.store.update_schedule(row.id, now, **self._columns(**fields))
        return self.describe(row.id)

    def pause(self, ref: str) -> DescribeSchedule:
        """Stop firing on cron (a paused schedule can still be run now). Idempotent."""
        row = self._resolve(ref)
        if not row.paused:
            self.store.update_schedule(row.id, self.clock(),
                                       **self._columns(paused=True, next_fire_at=None))
        return self.describe(row.id)

    def resume(self, ref: str) -> DescribeSchedule:
        """Fire on cron again, from the next slot after now (slots while paused never fire)."""
        row = self._resolve(ref)
        if row.paused or row.next_fire_at is None:
            now = self.clock()
            cron = CronSchedule(row.cron, row.timezone)
            self.store.update_schedule(row.id, now, **self._columns(
                paused=False, next_fire_at=_next_slot(cron, now, row), last_error=None))
        return self.describe(row.id)

    def delete(self, ref: str) -> DescribeSchedule:
        """Delete a schedule: it never fires again; its firings and their runs stay."""
        row = self._resolve(ref)
        deleted = self.store.delete_schedule(row.id, self.clock())
        return describe_schedule(deleted, notebook=self._shown(deleted.notebook_path),
                                 now=self.clock())

    def run_now(self, ref: str) -> DescribeFiring:
        """Queue a firing for the next poll of a scheduler (paused schedules too); returns it
        ``pending``."""
        row = self._resolve(ref)
        firing = self.store.add_manual_firing(row.id, self.clock(), requested_by=self.store.owner,
                                              parameters=dict(row.parameters or {}))
        return describe_firing(firing, row.timezone)

    # -- queries --------------------------------------------------------------------------------

    def list(self) -> ListSchedulesResponse:
        """Every live schedule of the owner with its next fire time and last firing."""
        self._sweep()
        rows = self.store.schedules()
        latest = self.store.latest_firings([r.id for r in rows])
        statuses = self.store.run_statuses([f.run_id for f in latest.values() if f.run_id])
        now = self.clock()
        out = []
        for row in rows:
            last = latest.get(row.id)
            out.append(describe_schedule(
                row, notebook=self._shown(row.notebook_path), now=now,
                next_times=self._next_times(row, 1),
                last=describe_firing(last, row.timezone, statuses.get(last.run_id or ""))
                if last is not None else None))
        return ListSchedulesResponse(schedules=out)

    def describe(self, ref: str, *, history: int = 20) -> DescribeSchedule:
        """One schedule: its next fire times and its newest ``history`` firings."""
        row = self._resolve(ref)
        self._sweep()
        firings = self.store.firings(row.id, limit=max(1, history))
        statuses = self.store.run_statuses([f.run_id for f in firings if f.run_id])
        described = [describe_firing(f, row.timezone, statuses.get(f.run_id or ""))
                     for f in firings]
        return describe_schedule(row, notebook=self._shown(row.notebook_path), now=self.clock(),
                                 next_times=self._next_times(row, NEXT_TIMES),
                                 last=described[0] if described else None,
                                 history=described[:history] if history > 0 else [])

    def history(self, ref: str, limit: int = 50) -> ListFiringsResponse:
        """A schedule's firings, newest first: each with its run, status and executed notebook."""
        if limit < 1:
            raise InvalidSpecError(f"limit must be a positive integer; got {limit}")
        row = self._resolve(ref)
        self._sweep()
        firings = self.store.firings(row.id, limit=limit)
        statuses = self.store.run_statuses([f.run_id for f in firings if f.run_id])
        return ListFiringsResponse(firings=[
            describe_firing(f, row.timezone, statuses.get(f.run_id or "")) for f in firings])

    def firing(self, firing_id: int) -> DescribeFiring:
        """One firing of one of the owner's schedules."""
        row = self.store.firing_row(firing_id)
        try:
            schedule = self.store.schedule_row(row.schedule_id)
        except NotFoundError:  # deleted since: a SQL store still has its row (and timezone)
            lookup = getattr(self.store, "schedule_any_owner", None)  # not through the service
            schedule = lookup(row.schedule_id) if lookup is not None else None
        timezone = schedule.timezone if schedule is not None else "UTC"
        status = self.store.run_statuses([row.run_id]).get(row.run_id) if row.run_id else None
        return describe_firing(row, timezone, status)

    def next_fire_times(self, ref: str, count: int = NEXT_TIMES) -> list[datetime]:
        """The next ``count`` fire times of a schedule, in its timezone (none when paused)."""
        row = self._resolve(ref)
        zone = CronSchedule(row.cron, row.timezone)
        return [zone.local(t) for t in self._next_times(row, count)]

    def preview(self, cron: str, timezone: str = "UTC", count: int = NEXT_TIMES
                ) -> list[datetime]:
        """The next ``count`` fire times of ``cron`` in ``timezone`` (checks both)."""
        if not 1 <= count <= 1000:
            raise InvalidSpecError(f"count must be 1-1000; got {count}")
        schedule = CronSchedule(cron, timezone)
        return [schedule.local(t) for t in schedule.times(self.clock(), count)]

    # -- helpers --------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Firings left ``running`` by a scheduler process that is gone become ``interrupted``
        (judged as the loops judge them: :mod:`.liveness`), so a crash never leaves a firing
        running in the history even while no scheduler runs."""
        from ..store.scheduling import database_now
        from ..store.sql import Store
        from .liveness import ProcessIdentity, firing_is_dead

        if not isinstance(self.store, Store):  # the store service: its schedulers sweep
            return
        rows = self.store.stale_firings([self.store.owner])
        if not rows:
            return
        now, me = database_now(self.store), ProcessIdentity.current()
        for row in rows:
            if firing_is_dead(row, now, me):
                self.store.interrupt_firing(
                    row.id, row.heartbeat_at,
                    error=f"the scheduler running it ({row.host}:{row.pid}) stopped without "
                          "finishing it")

    def _resolve(self, ref: str) -> Any:
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidSpecError("expected a schedule id or name; got an empty string")
        found = self.store.match_schedules(ref.strip())
        if not found:
            raise NotFoundError(f"no schedule {ref!r}; `jupyter mlplat schedule list` lists "
                                "them")
        if len(found) > 1:
            raise InvalidSpecError(f"{ref!r} matches several schedules ("
                                   f"{', '.join(r.id for r in found)}); give its id")
        return found[0]

    def _unique_name(self, name: str) -> None:
        clash = [r for r in self.store.schedules() if r.name == name]
        if clash:
            raise ConflictError(f"a schedule named {name!r} exists (id {clash[0].id}); pick "
                                "another name, or change that one")

    def _shown(self, path: str) -> str:
        return display_path(path, self.root)

    def _columns(self, **values: Any) -> dict[str, Any]:
        """``values`` as the store takes them: the store service refuses the columns of
        :data:`SERVICE_SET` from a client (they are set on its side, on its clock)."""
        if not self.remote:
            return values
        return {k: v for k, v in values.items() if k not in SERVICE_SET}

    def _remote_root(self) -> Path:
        return Path(self.root if self.root is not None else Path.home()).expanduser().resolve()

    def _stored_path(self, path: Path) -> str:
        """What the store keeps of a checked notebook path: the path itself in a SQL store;
        for the store service the path relative to the user's root."""
        if not self.remote:
            return str(path)
        base = self._remote_root()
        if not path.is_relative_to(base):
            raise InvalidSpecError(
                f"notebook {str(path)!r} is outside {str(base)!r}; under JupyterHub a schedule "
                "runs a notebook from your home folder (the scheduler service finds it there): "
                "move or copy it there")
        return path.relative_to(base).as_posix()

    def _editable(self, stored: str) -> str:
        """A stored notebook path as ``CreateSchedule.notebook`` takes it back."""
        if self.remote and self.root is None and not Path(stored).is_absolute():
            return str(self._remote_root() / stored)
        return stored if self.root is None else display_path(stored, self.root)

    def _next_times(self, row: Any, count: int) -> list[datetime]:
        if row.paused or row.next_fire_at is None or row.deleted_at is not None:
            return []
        try:
            cron = CronSchedule(row.cron, row.timezone)
        except InvalidSpecError:
            return []
        first = max(row.next_fire_at, self.clock())
        times = [row.next_fire_at] if row.next_fire_at >= first else []
        times += cron.times(first, count - len(times))
        return times[:count]

    def _checked(self, req: CreateSchedule) -> dict[str, Any]:
        """The columns of a valid schedule made from ``req``."""
        cron = CronSchedule(req.cron, req.timezone)
        path = resolve_notebook(req.notebook, self.root)
        spec = target_spec(path, req.target)
        parameters = check_parameters(spec, req.parameters)
        if req.target == "pipeline" and req.kernel is not None:
            raise InvalidSpecError("kernel applies to notebook targets; a pipeline's steps "
                                   "name their kernels in their metadata")
        if req.target == "pipeline" and req.timeout is not None:
            raise InvalidSpecError("timeout applies to notebook targets; give a pipeline's "
                                   "steps a `timeout` in their metadata")
        kernel = check_kernel(req.kernel)
        name = (req.name if req.name is not None else path.stem).strip()
        if not name or len(name) > 255 or any(ord(ch) < 32 for ch in name):
            raise InvalidSpecError(f"schedule name must be 1-255 printable characters; got "
                                   f"{req.name!r}")
        deploy = req.on_success.deploy_if_blessed
        if deploy is not None:
            from ..store.registry import check_model_name

            check_model_name(deploy.model)
            if deploy.endpoint is not None:
                check_model_name(deploy.endpoint, "endpoint name")
        _check_notify(req.notify, self.config)
        return dict(
            name=name, target=req.target, notebook_path=self._stored_path(path), cron=cron.expr,
            timezone=cron.timezone, parameters=parameters,
            on_success=req.on_success.model_dump(mode="json", exclude_none=True),
            notify=req.notify.model_dump(mode="json"), missed=req.missed, kernel_name=kernel,
            timeout=req.timeout)


def _next_slot(cron: CronSchedule, now: datetime, row: Any) -> datetime:
    """The first slot after ``now`` that is newer than every slot the schedule already fired
    (a server whose clock is behind the scheduler's must not bring one back)."""
    last = getattr(row, "last_slot_at", None)
    return cron.next_after(max(now, last) if last is not None else now)


def _check_notify(notify: ScheduleNotify, config: MLPlat) -> None:
    from .notify import WebhookPolicy

    policy = WebhookPolicy.from_config(config)
    for url in notify.webhook:
        policy.check_url(url)
    for address in notify.email:
        if not _EMAIL.match(address or ""):
            raise InvalidSpecError(f"e-mail address {address!r} is not valid; expected e.g. "
                                   "'ana@example.com'")
