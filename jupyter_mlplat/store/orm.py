"""SQLAlchemy tables, all of them. Every user-owned row carries ``owner``.

Rows a lineage question needs later are never edited in place: a re-run step is a new
``step_runs`` row (``attempt`` + 1), versions are immutable, artifacts are content-addressed.
Only the live state of a run (status, heartbeat, finish time) changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend: SQLite drops the zone (we put it back),
    PostgreSQL answers in the session's zone (we convert)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("owner", "path", name="uq_pipelines_owner_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PipelineVersion(Base):
    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("owner", "version", name="uq_pipeline_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    version: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepVersion(Base):
    __tablename__ = "step_versions"
    __table_args__ = (UniqueConstraint("owner", "version", name="uq_step_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the hash covered
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_owner_status", "owner", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str | None] = mapped_column(String(255), default=None)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    pipeline_version: Mapped[str] = mapped_column(String(64))
    notebook_path: Mapped[str] = mapped_column(String(4096))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # selection, force, ...
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    pid_started: Mapped[float] = mapped_column(Float, default=0.0)  # process create time
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class StepRun(Base):
    __tablename__ = "step_runs"
    __table_args__ = (
        Index("ix_step_runs_run", "run_id", "step_name"),
        Index("ix_step_runs_version", "owner", "step_version", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step_name: Mapped[str] = mapped_column(String(255))
    step_version: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    cached_from: Mapped[int | None] = mapped_column(Integer, default=None)  # a step_runs.id
    worker: Mapped[str | None] = mapped_column(String(255), default=None)
    executed_notebook: Mapped[str | None] = mapped_column(String(4096), default=None)
    log_uri: Mapped[str | None] = mapped_column(String(4096), default=None)
    error_cell_index: Mapped[int | None] = mapped_column(Integer, default=None)
    source_cell_index: Mapped[int | None] = mapped_column(Integer, default=None)
    ename: Mapped[str | None] = mapped_column(String(255), default=None)
    evalue: Mapped[str | None] = mapped_column(Text, default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("owner", "sha256", name="uq_artifacts_owner_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(4096))
    format: Mapped[str] = mapped_column(String(32))
    type_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes: past 2 GiB on PostgreSQL
    trusted_only: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepIO(Base):
    """An artifact a step run read (``direction='in'``) or wrote (``'out'``) under a variable name."""

    __tablename__ = "step_io"
    __table_args__ = (
        UniqueConstraint("step_run_id", "direction", "name", name="uq_step_io"),
        Index("ix_step_io_artifact", "artifact_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    step_run_id: Mapped[int] = mapped_column(ForeignKey("step_runs.id"))
    direction: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(255))
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id"))


class Param(Base):
    __tablename__ = "params"
    __table_args__ = (Index("ix_params_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), default=None)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[Any] = mapped_column(JSON)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), default=None)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int | None] = mapped_column(Integer, default=None)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


# -- registry and validation -------------------------------------------------------------------


class Model(Base):
    """A named model; its versions are ``model_versions`` rows."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_models_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """One registered version: the artifact, its signature and where it came from (immutable)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(32))
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id"))
    signature: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sample_input: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    sample_output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # lineage: run -> step run -> step version -> input artifacts -> notebook cells
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), default=None, index=True)
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), default=None)
    step_name: Mapped[str | None] = mapped_column(String(255), default=None)
    step_version: Mapped[str | None] = mapped_column(String(64), default=None)
    notebook_path: Mapped[str | None] = mapped_column(String(4096), default=None)
    cell_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    input_artifacts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasEvent(Base):
    """A move of an alias (``version`` None: removed). The current target is the newest event."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model", "model_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    alias: Mapped[str] = mapped_column(String(255))
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    previous: Mapped[int | None] = mapped_column(Integer, default=None)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PolicyEvent(Base):
    """A model's validation policy as set at one time; the newest row is in force."""

    __tablename__ = "validation_policies"
    __table_args__ = (Index("ix_validation_policies_model", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(32), default="api")  # api | notebook | step
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Validation(Base):
    """A verdict on a model version: blessed or rejected, with the whole report."""

    __tablename__ = "validations"
    __table_args__ = (Index("ix_validations_version", "model_version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(32))  # blessed | rejected
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeployOverride(Base):
    """A deploy of a version its policy did not bless, forced by someone for a reason."""

    __tablename__ = "deploy_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SliceMetric(Base):
    """One slice's value of a metric (``log_slices``), on a step run."""

    __tablename__ = "slice_metrics"
    __table_args__ = (Index("ix_slice_metrics_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), default=None)
    metric: Mapped[str] = mapped_column(String(255))
    by: Mapped[str] = mapped_column(String(255))
    slice: Mapped[str] = mapped_column(String(1024))
    value: Mapped[float | None] = mapped_column(Float, default=None)
    count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalSet(Base):
    """The evaluation data a run logged (``log_eval``): what its model versions are judged on."""

    __tablename__ = "eval_sets"
    __table_args__ = (Index("ix_eval_sets_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step_run_id: Mapped[int | None] = mapped_column(ForeignKey("step_runs.id"), default=None)
    x: Mapped[dict[str, Any]] = mapped_column(JSON)
    y: Mapped[dict[str, Any]] = mapped_column(JSON)
    slices: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    slices_name: Mapped[str | None] = mapped_column(String(255), default=None)
    model: Mapped[str | None] = mapped_column(String(255), default=None)  # None: every model
    count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- serving -------------------------------------------------------------------------------------


class Endpoint(Base):
    """A named serving endpoint; what it serves is its newest ``endpoint_revisions`` row."""

    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_endpoints_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str] = mapped_column(String(255))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str | None] = mapped_column(String(64), default=None)  # sha256 hex
    token_rotated_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EndpointRevision(Base):
    """One state of an endpoint: its weighted routes, shadow and who made it (never edited).

    ``routes``: ``[{"model", "version", "weight"}]`` (weights sum to 100); ``[]`` means
    undeployed. ``shadow``: ``{"model", "version", "share"}`` or None.
    """

    __tablename__ = "endpoint_revisions"
    __table_args__ = (UniqueConstraint("endpoint_id", "revision", name="uq_endpoint_revisions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))
    revision: Mapped[int] = mapped_column(Integer)
    routes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    sticky_header: Mapped[str | None] = mapped_column(String(255), default=None)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    action: Mapped[str] = mapped_column(String(32))  # deploy | traffic | rollback | undeploy
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- projects and sharing ------------------------------------------------------------------------


class Project(Base):
    """A group of users things can be shared with: its members, or the members of a hub group.

    Names are per owner (``alice/fraud`` and ``bob/fraud`` are two projects), so creating one
    tells nobody what others have. Sharing a model, endpoint, pipeline or schedule sets that
    row's ``project`` to the project's ``key``; members may then read it (never change it).
    ``owner`` created the project and alone adds members; a member may leave.
    """

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("key", name="uq_projects_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(512))  # "owner/name": what shared rows hold
    hub_group: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectMember(Base):
    """One user added to a project by its owner."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user", name="uq_project_members"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    added_by: Mapped[str] = mapped_column(String(255))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- scheduling ----------------------------------------------------------------------------------


class Schedule(Base):
    """A notebook or pipeline fired on cron in a timezone; soft-deleted so its history stays.

    ``next_fire_at`` is the next slot nobody claimed yet; ``last_slot_at`` the newest slot ever
    claimed (a claim never takes a slot at or before it, whatever ``next_fire_at`` says). The
    lease (``lease_holder`` until ``lease_expires_at``, on the database's clock) says which
    scheduler process fires it; ``lease_token`` grows by one at every change of holder and is
    the fencing token a claim must still match to commit.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        Index("ix_schedules_due", "next_fire_at"),
        Index("ix_schedules_owner_name", "owner", "name"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(16))  # notebook | pipeline
    notebook_path: Mapped[str] = mapped_column(String(4096))
    cron: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    on_success: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notify: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    missed: Mapped[str] = mapped_column(String(16), default="latest")  # latest | skip
    kernel_name: Mapped[str | None] = mapped_column(String(255), default=None)
    timeout: Mapped[float | None] = mapped_column(Float, default=None)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_fire_at: Mapped[datetime | None] = mapped_column(default=None)
    last_slot_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_holder: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class ScheduleFiring(Base):
    """One firing of a schedule: a cron slot, a catch-up, a manual run or a recorded miss.

    ``fence`` is the schedule's lease token when a slot was claimed; its outcome is written only
    while the token still matches, so a scheduler that lost its lease cannot commit. A firing
    picked up from ``pending`` (a manual one, or the replacement of one that never started,
    ``attempt`` 1) has fence 0: it is fenced on its own row (still ``running``, still its
    scheduler's). ``host``, ``pid``, ``pid_started``, ``boot_id`` and ``pid_ns`` name the
    scheduler process; ``stale_after`` is how long its heartbeat may be silent before another
    process takes it for dead.
    """

    __tablename__ = "schedule_firings"
    __table_args__ = (
        UniqueConstraint("schedule_id", "slot_at", "kind", "attempt",
                         name="uq_schedule_firings_slot"),
        Index("ix_schedule_firings_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id"), index=True)
    slot_at: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))  # cron | catch_up | manual | missed
    status: Mapped[str] = mapped_column(String(16))
    missed_slots: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    fence: Mapped[int] = mapped_column(Integer, default=0)
    scheduler_id: Mapped[str | None] = mapped_column(String(64), default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    pid_started: Mapped[float | None] = mapped_column(Float, default=None)
    boot_id: Mapped[str | None] = mapped_column(String(64), default=None)
    pid_ns: Mapped[str | None] = mapped_column(String(64), default=None)
    stale_after: Mapped[float | None] = mapped_column(Float, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), default=None)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    executed_notebook: Mapped[str | None] = mapped_column(String(4096), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    actions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # on_success outcome
    notifications: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
