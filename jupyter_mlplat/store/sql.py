"""Store: the one persistence interface, implemented with direct SQL (owner-scoped queries).

Every query filters by ``self.owner``; another owner's rows are invisible (they read as not
found). Two backends, one behaviour: SQLite runs in WAL mode with a busy timeout so the executor,
a ``cancel`` from another shell and the server extension can share one file; PostgreSQL (for
teams and JupyterHub) gets UTC sessions and a connect timeout. Rows that must exist once are
inserted with ``ON CONFLICT DO NOTHING`` on both, and numbers that must be distinct (model
versions, endpoint revisions) are taken under a row lock on the parent (PostgreSQL) or the
database's write lock (SQLite), with a unique constraint and a retry behind them. Opening a
store brings its schema to the Alembic head and marks runs whose process is gone as
``interrupted``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import InvalidSpecError, NotFoundError
from . import orm
from .engine import (
    check_flushed_rows,
    checked_values,
    column_values,
    insert_or_skip,
    make_engine,
    redact_url,
)
from .projects import ProjectQueries
from .registry import RegistryQueries
from .scheduling import ScheduleQueries
from .serving import ServingQueries

log = logging.getLogger(__name__)

#: The newest Alembic revision; a test checks it equals the migration scripts' head.
HEAD_REVISION = "0005"
#: A run whose heartbeat is older than this and whose process cannot be seen is interrupted.
STALE_AFTER = timedelta(seconds=30)
#: How often a live executor refreshes its run's heartbeat.
HEARTBEAT_EVERY = 5.0

ACTIVE_RUN = ("pending", "running")
ACTIVE_STEP = ("pending", "running")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _process_started(pid: int) -> float | None:
    """Creation time of process ``pid`` on this host, or None when it does not exist."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def migrations_dir() -> str:
    return str(Path(__file__).with_name("migrations"))


def alembic_config(url: str, connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", migrations_dir())
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One migrating process at a time: a file lock beside a SQLite file, an advisory lock on
    PostgreSQL. Two processes opening a fresh store at once must not both create the tables."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database or ""
        if not path or path == ":memory:":
            yield
            return
        import fcntl

        with open(f"{path}.migrate.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    # Session-level advisory locks are per database and end with the connection, so a
    # migrating process that dies cannot leave the lock behind.
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(745201)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(745201)"))
            conn.commit()


@contextmanager
def _opening(url: str) -> Iterator[None]:
    """Turn a missing driver or an unreachable, refusing or malformed database into an
    ``InvalidSpecError`` that names the store (password hidden) and what was expected."""
    try:
        yield
    except ImportError as exc:
        raise InvalidSpecError(
            f"cannot open the store {redact_url(url)}: its database driver is not "
            f"installed ({exc}); install it (`pip install 'jupyter-mlplat[postgresql]'` or "
            "`pip install 'psycopg[binary]'` for postgresql+psycopg://) or use a sqlite:/// URL"
        ) from None
    except (ArgumentError, NoSuchModuleError, OperationalError) as exc:
        raise InvalidSpecError(
            f"cannot open the store {redact_url(url)}: {type(exc).__name__}: "
            f"{_first_line(exc)}; expected a reachable database at a SQLAlchemy URL such as "
            "sqlite:////path/to/mlplat.db or postgresql+psycopg://user:password@host:5432/db "
            "(MLPLAT_STORE_URL / c.MLPlat.store_url)"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The driver's own message without SQLAlchemy's wrapper prefix and background link."""
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def upgrade(url: str) -> str:
    """Bring the database at ``url`` to the newest schema (``jupyter mlplat db upgrade``).

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the store (``sqlite:///...``, ``postgresql+psycopg://...``).

    Returns
    -------
    str
        The revision the database is at afterwards (``HEAD_REVISION``).

    Raises
    ------
    InvalidSpecError
        The URL is malformed, names an unsupported database, its driver is missing, or the
        database cannot be reached.
    """
    from alembic import command

    with _opening(url):
        engine = make_engine(url)
        try:
            with _migration_lock(engine):
                if _current_revision(engine) != HEAD_REVISION:  # another process may have
                    with engine.begin() as conn:
                        command.upgrade(alembic_config(url, conn), "head")
        finally:
            engine.dispose()
    return HEAD_REVISION


def _current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision; None when it has no ``alembic_version`` table yet."""
    with engine.connect() as conn:
        if not sa_inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


class Store(RegistryQueries, ServingQueries, ScheduleQueries, ProjectQueries):
    """Runs, step runs, versions, artifacts, params and metrics of one owner (and, through
    ``RegistryQueries``, its models, aliases, policies, verdicts, slices and evaluation data;
    through ``ServingQueries``, its endpoints and their revisions; through ``ScheduleQueries``,
    its schedules and their firings; through ``ProjectQueries``, its projects and reads of what
    others shared with them).

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).
    owner : str
        Every row written carries it; every query is filtered by it.
    sweep : bool
        Mark runs whose process is gone as ``interrupted`` on open (default True).
    """

    def __init__(self, url: str, owner: str, *, sweep: bool = True) -> None:
        if not owner:
            raise InvalidSpecError("a store needs an owner name; got an empty one")
        self.url = url
        self.owner = owner
        with _opening(url):
            self.engine = make_engine(url)
            if _current_revision(self.engine) != HEAD_REVISION:
                upgrade(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", check_flushed_rows)
        self.host = socket.gethostname()
        if sweep:
            self.sweep_interrupted()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    # -- liveness -----------------------------------------------------------------------------

    def sweep_interrupted(self) -> list[str]:
        """Mark this owner's runs whose executor is gone as ``interrupted``; return their ids."""
        now = _utcnow()
        gone: list[str] = []
        with self.session() as s:
            # Rows another transaction holds (a heartbeat, a claim) belong to a live process
            # right now: skip them rather than wait, and never overwrite what it writes.
            runs = s.scalars(
                select(orm.Run)
                .where(orm.Run.owner == self.owner, orm.Run.status.in_(ACTIVE_RUN))
                .with_for_update(skip_locked=True)
            ).all()
            for run in runs:
                if run.host == self.host:
                    started = _process_started(run.pid) if run.pid else None
                    alive = started is not None and abs(started - run.pid_started) < 1.0
                else:
                    beat = run.heartbeat_at or run.created_at
                    alive = now - beat < STALE_AFTER
                if alive:
                    continue
                gone.append(run.id)
                run.status = "interrupted"
                run.finished_at = now
                run.error = run.error or (
                    f"the process running it (pid {run.pid} on {run.host}) stopped without "
                    "finishing; `jupyter mlplat resume` re-runs the steps that did not succeed"
                )
                s.execute(
                    update(orm.StepRun)
                    .where(orm.StepRun.run_id == run.id, orm.StepRun.status.in_(ACTIVE_STEP))
                    .values(status="interrupted", finished_at=now)
                )
        for run_id in gone:
            log.warning("run %s was interrupted (its process is gone)", run_id)
        return gone

    def heartbeat(self, run_id: str) -> bool:
        """Refresh the run's heartbeat; return whether its executor should stop.

        It should when a cancel was requested, or when the run is no longer ``running`` (another
        process found its heartbeat stale, marked it interrupted, and may be resuming it).
        """
        with self.session() as s:
            s.execute(
                update(orm.Run)
                .where(orm.Run.id == run_id, orm.Run.owner == self.owner,
                       orm.Run.status == "running")
                .values(heartbeat_at=_utcnow())
            )
            row = s.execute(
                select(orm.Run.cancel_requested, orm.Run.status).where(
                    orm.Run.id == run_id, orm.Run.owner == self.owner
                )
            ).first()
        if row is None:
            return False
        return bool(row.cancel_requested) or row.status != "running"

    # -- pipelines and versions ---------------------------------------------------------------

    def pipeline_id(self, name: str, path: str) -> int:
        """The id of the owner's pipeline at ``path``, created on first use (once, races
        included)."""
        with self.session() as s:
            found = s.scalar(
                select(orm.Pipeline.id).where(
                    orm.Pipeline.owner == self.owner, orm.Pipeline.path == path
                )
            )
            if found is not None:
                return found
            created = insert_or_skip(s, orm.Pipeline,
                                     {"owner": self.owner, "name": name, "path": path})
        if created is not None:
            return created
        with self.session() as s:  # another process created it between our read and insert
            return s.scalar(select(orm.Pipeline.id).where(
                orm.Pipeline.owner == self.owner, orm.Pipeline.path == path))

    def save_pipeline_version(self, pipeline_id: int, version: str, spec: dict[str, Any]) -> None:
        self._insert_once(
            orm.PipelineVersion(
                owner=self.owner, pipeline_id=pipeline_id, version=version, spec=spec
            ),
            orm.PipelineVersion.version == version,
        )

    def pipeline_spec(self, version: str) -> dict[str, Any]:
        with self.session() as s:
            spec = s.scalar(
                select(orm.PipelineVersion.spec).where(
                    orm.PipelineVersion.owner == self.owner,
                    orm.PipelineVersion.version == version,
                )
            )
        if spec is None:
            raise NotFoundError(f"pipeline version {version} not found")
        return spec

    def save_step_version(
        self, pipeline_id: int, name: str, version: str, code: str, inputs: dict[str, Any]
    ) -> None:
        self._insert_once(
            orm.StepVersion(
                owner=self.owner,
                pipeline_id=pipeline_id,
                name=name,
                version=version,
                code=code,
                inputs=inputs,
            ),
            orm.StepVersion.version == version,
        )

    def _insert_once(self, row: Any, identity: Any) -> None:
        """Insert an immutable row unless one with the same identity exists (races included)."""
        model = type(row)
        with self.session() as s:
            if s.scalar(select(model.id).where(model.owner == self.owner, identity)) is not None:
                return
            insert_or_skip(s, model, column_values(row))  # skipped: another process was first

    # -- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        pipeline_id: int,
        pipeline_version: str,
        notebook_path: str,
        parameters: dict[str, Any],
        options: dict[str, Any],
        steps: Iterable[str],
    ) -> str:
        """A new run in status ``running`` owned by this process, with a pending row per step."""
        import psutil

        run_id = uuid.uuid4().hex[:12]
        now = _utcnow()
        with self.session() as s:
            s.add(
                orm.Run(
                    id=run_id,
                    owner=self.owner,
                    pipeline_id=pipeline_id,
                    pipeline_version=pipeline_version,
                    notebook_path=notebook_path,
                    status="running",
                    parameters=parameters,
                    options=options,
                    host=self.host,
                    pid=os.getpid(),
                    pid_started=psutil.Process().create_time(),
                    heartbeat_at=now,
                    started_at=now,
                    created_at=now,
                )
            )
            s.flush()
            for name in steps:
                s.add(orm.StepRun(owner=self.owner, run_id=run_id, step_name=name))
        return run_id

    def claim_run(self, run_id: str, from_statuses: Iterable[str]) -> bool:
        """Make this process the live owner of ``run_id`` again (``resume``), atomically.

        Only a run in one of ``from_statuses`` is claimed; of two processes resuming one run,
        one gets True and the other False.
        """
        import psutil

        with self.session() as s:
            result = s.execute(
                update(orm.Run)
                .where(
                    orm.Run.id == run_id,
                    orm.Run.owner == self.owner,
                    orm.Run.status.in_(tuple(from_statuses)),
                )
                .values(
                    status="running", host=self.host, pid=os.getpid(),
                    pid_started=psutil.Process().create_time(), heartbeat_at=_utcnow(),
                    finished_at=None, error=None, cancel_requested=False,
                )
            )
            return result.rowcount == 1

    def finish_run(self, run_id: str, status: str, error: str | None = None, *,
                   only_if_ours: bool = False) -> None:
        """Record the run's final status; with ``only_if_ours``, only while this process still
        owns it (a run another process took over keeps that process's status)."""
        with self.session() as s:
            run = self._run(s, run_id, lock=True)  # a concurrent claim waits, or we see it
            if only_if_ours and (run.host != self.host or run.pid != os.getpid()):
                return
            run.status = status
            run.error = error
            run.finished_at = _utcnow()

    def request_cancel(self, run_id: str) -> orm.Run:
        with self.session() as s:
            run = self._run(s, run_id, lock=True)
            run.cancel_requested = True
            return run

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id or a unique prefix of one, in any case (run ids are
        lowercase hex; SQLite's LIKE ignores case and PostgreSQL's does not, so the prefix is
        lowercased rather than left to the backend)."""
        ref = ref.strip().lower()
        if not ref:
            raise InvalidSpecError("expected a run id; got an empty string")
        with self.session() as s:
            ids = s.scalars(
                select(orm.Run.id)
                .where(orm.Run.owner == self.owner, orm.Run.id.startswith(ref, autoescape=True))
                .limit(2)
            ).all()
        if not ids:
            raise NotFoundError(f"no run {ref!r}; `jupyter mlplat runs` lists them")
        if len(ids) > 1:
            raise InvalidSpecError(f"run id prefix {ref!r} is ambiguous; give more characters")
        return ids[0]

    def run_row(self, run_id: str) -> orm.Run:
        with self.session() as s:
            return self._run(s, run_id)

    def _run(self, s: Session, run_id: str, *, lock: bool = False) -> orm.Run:
        """The owner's run ``run_id``; with ``lock``, row-locked until the transaction ends
        (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time anyway)."""
        query = select(orm.Run).where(orm.Run.id == run_id, orm.Run.owner == self.owner)
        run = s.scalar(query.with_for_update() if lock else query)
        if run is None:
            raise NotFoundError(f"no run {run_id!r}; `jupyter mlplat runs` lists them")
        return run

    def runs(
        self, *, limit: int = 50, pipeline: str | None = None, status: str | None = None
    ) -> list[orm.Run]:
        with self.session() as s:
            q = select(orm.Run).where(orm.Run.owner == self.owner)
            if pipeline:
                q = q.join(orm.Pipeline, orm.Pipeline.id == orm.Run.pipeline_id).where(
                    (orm.Pipeline.name == pipeline) | (orm.Pipeline.path == pipeline)
                )
            if status:
                q = q.where(orm.Run.status == status)
            return list(s.scalars(q.order_by(orm.Run.created_at.desc()).limit(limit)).all())

    def pipeline_names(self, ids: Iterable[int]) -> dict[int, str]:
        with self.session() as s:
            rows = s.execute(
                select(orm.Pipeline.id, orm.Pipeline.name).where(
                    orm.Pipeline.owner == self.owner, orm.Pipeline.id.in_(set(ids))
                )
            ).all()
        return {row.id: row.name for row in rows}

    # -- step runs ----------------------------------------------------------------------------

    def step_runs(self, run_id: str, *, latest: bool = True) -> list[orm.StepRun]:
        """The run's step rows in creation order; with ``latest``, the newest attempt per step."""
        with self.session() as s:
            rows = s.scalars(
                select(orm.StepRun)
                .where(orm.StepRun.run_id == run_id, orm.StepRun.owner == self.owner)
                .order_by(orm.StepRun.id)
            ).all()
        if not latest:
            return list(rows)
        newest: dict[str, orm.StepRun] = {}
        for row in rows:
            newest[row.step_name] = row
        order = list(dict.fromkeys(r.step_name for r in rows))
        return [newest[name] for name in order]

    def step_run(self, run_id: str, step: str) -> orm.StepRun:
        for row in self.step_runs(run_id):
            if row.step_name == step:
                return row
        names = ", ".join(r.step_name for r in self.step_runs(run_id))
        raise NotFoundError(f"run {run_id} has no step {step!r}; steps: {names}")

    def _own_step_run(self, s: Session, step_run_id: int) -> None:
        found = s.scalar(select(orm.StepRun.id).where(
            orm.StepRun.id == step_run_id, orm.StepRun.owner == self.owner))
        if found is None:
            raise NotFoundError(f"no step run {step_run_id}")

    def new_attempt(self, run_id: str, step: str, attempt: int) -> int:
        with self.session() as s:
            self._run(s, run_id)
            row = orm.StepRun(owner=self.owner, run_id=run_id, step_name=step, attempt=attempt)
            s.add(row)
            s.flush()
            return row.id

    def update_step_run(self, step_run_id: int, **values: Any) -> None:
        with self.session() as s:
            s.execute(
                update(orm.StepRun)
                .where(orm.StepRun.id == step_run_id, orm.StepRun.owner == self.owner)
                .values(**checked_values(orm.StepRun.__table__, values))
            )

    def find_cached(self, step_version: str) -> orm.StepRun | None:
        """The newest successful execution of exactly ``step_version``."""
        with self.session() as s:
            return s.scalar(
                select(orm.StepRun)
                .where(
                    orm.StepRun.owner == self.owner,
                    orm.StepRun.step_version == step_version,
                    orm.StepRun.status == "succeeded",
                )
                .order_by(orm.StepRun.id.desc())
                .limit(1)
            )

    def latest_success(self, pipeline_id: int, step: str) -> orm.StepRun | None:
        """The newest successful (or cached) step run of ``step`` in any run of the pipeline."""
        with self.session() as s:
            return s.scalar(
                select(orm.StepRun)
                .join(orm.Run, orm.Run.id == orm.StepRun.run_id)
                .where(
                    orm.StepRun.owner == self.owner,
                    orm.Run.pipeline_id == pipeline_id,
                    orm.StepRun.step_name == step,
                    orm.StepRun.status.in_(("succeeded", "cached")),
                )
                .order_by(orm.StepRun.id.desc())
                .limit(1)
            )

    # -- artifacts ----------------------------------------------------------------------------

    def record_io(self, step_run_id: int, direction: str, refs: dict[str, dict[str, Any]]) -> None:
        """Record artifacts (``ArtifactRef.to_dict()`` dicts) a step run read or wrote."""
        if not refs:
            return
        with self.session() as s:
            self._own_step_run(s, step_run_id)
            # In content order: two transactions adding the same artifacts then wait for each
            # other in one order, never in a cycle (a deadlock on PostgreSQL).
            for name, ref in sorted(refs.items(), key=lambda item: item[1]["sha256"]):
                artifact_id = self._artifact_id(s, ref)
                s.add(
                    orm.StepIO(
                        owner=self.owner,
                        step_run_id=step_run_id,
                        direction=direction,
                        name=name,
                        artifact_id=artifact_id,
                    )
                )

    def _artifact_id(self, s: Session, ref: dict[str, Any]) -> int:
        """The id of the owner's artifacts row for ``ref``'s content, added if new. Safe when
        another process records the same content at the same moment: the insert is skipped
        and its row read (on PostgreSQL the insert waits for that process's commit)."""
        query = select(orm.Artifact.id).where(
            orm.Artifact.owner == self.owner, orm.Artifact.sha256 == ref["sha256"]
        )
        found = s.scalar(query)
        if found is not None:
            return found
        created = insert_or_skip(s, orm.Artifact, {
            "owner": self.owner,
            "sha256": ref["sha256"],
            "uri": ref["uri"],
            "format": ref["format"],
            "type_name": ref["type_name"],
            "size": ref.get("size", 0),
            "trusted_only": ref.get("trusted_only", False),
            "meta": ref.get("meta") or {},
        })
        return created if created is not None else s.scalar(query)

    def step_io(self, step_run_id: int, direction: str = "out") -> dict[str, dict[str, Any]]:
        """Artifacts of a step run by variable name, as ``ArtifactRef`` dicts."""
        with self.session() as s:
            rows = s.execute(
                select(orm.StepIO.name, orm.Artifact)
                .join(orm.Artifact, orm.Artifact.id == orm.StepIO.artifact_id)
                .where(
                    orm.StepIO.owner == self.owner,
                    orm.StepIO.step_run_id == step_run_id,
                    orm.StepIO.direction == direction,
                )
            ).all()
        return {
            name: {
                "name": name,
                "sha256": a.sha256,
                "uri": a.uri,
                "format": a.format,
                "type_name": a.type_name,
                "size": a.size,
                "trusted_only": a.trusted_only,
                "meta": a.meta or {},
            }
            for name, a in rows
        }

    # -- params and metrics -------------------------------------------------------------------

    def log_params(self, run_id: str, step_run_id: int | None, params: dict[str, Any]) -> None:
        if not params:
            return
        with self.session() as s:
            self._run(s, run_id)
            for name, value in params.items():
                s.add(
                    orm.Param(
                        owner=self.owner,
                        run_id=run_id,
                        step_run_id=step_run_id,
                        name=name,
                        value=value,
                    )
                )

    def log_metrics(
        self, run_id: str, step_run_id: int | None, points: Iterable[dict[str, Any]]
    ) -> None:
        points = list(points)
        if not points:
            return
        with self.session() as s:
            self._run(s, run_id)
            for p in points:
                ts = p.get("timestamp")
                s.add(
                    orm.Metric(
                        owner=self.owner,
                        run_id=run_id,
                        step_run_id=step_run_id,
                        name=p["name"],
                        value=float(p["value"]),
                        step=p.get("step"),
                        timestamp=datetime.fromtimestamp(ts, UTC) if ts is not None else _utcnow(),
                    )
                )

    def params(self, run_ids: Iterable[str]) -> list[orm.Param]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(orm.Param)
                    .where(orm.Param.owner == self.owner, orm.Param.run_id.in_(set(run_ids)))
                    .order_by(orm.Param.id)
                ).all()
            )

    def metrics(self, run_ids: Iterable[str]) -> list[orm.Metric]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(orm.Metric)
                    .where(orm.Metric.owner == self.owner, orm.Metric.run_id.in_(set(run_ids)))
                    .order_by(orm.Metric.id)
                ).all()
            )

    def count(self, model: Any) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(model).where(model.owner == self.owner))

    def run_of_step_run(self, step_run_id: int) -> str | None:
        """The id of the run a step run of this owner belongs to (None: no such step run)."""
        with self.session() as s:
            return s.scalar(select(orm.StepRun.run_id).where(
                orm.StepRun.id == step_run_id, orm.StepRun.owner == self.owner))
