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
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
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
    size: Mapped[int] = mapped_column(Integer, default=0)
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
