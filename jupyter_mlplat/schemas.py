"""pydantic v2 API models: what crosses the library's borders (CLI --json, REST, Python API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "interrupted"]
StepStatus = Literal[
    "pending",
    "running",
    "succeeded",
    "cached",
    "failed",
    "cancelled",
    "skipped",
    "upstream_failed",
    "interrupted",
]
FINISHED_RUN = ("succeeded", "failed", "cancelled", "interrupted")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Selection(_Model):
    """Which steps a run executes: all (default), one, one and its descendants, or its ancestors."""

    only: str | None = None
    from_step: str | None = Field(default=None, alias="from")
    to: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def describe(self) -> str:
        if self.only:
            return f"only {self.only}"
        if self.from_step:
            return f"from {self.from_step}"
        if self.to:
            return f"to {self.to}"
        return "all"


class CreateRun(_Model):
    """Start a pipeline run from a notebook path."""

    notebook: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    selection: Selection = Field(default_factory=Selection)
    force: list[str] = Field(default_factory=list)
    dask_address: str | None = None


class ArtifactInfo(_Model):
    name: str
    sha256: str
    uri: str
    format: str
    type_name: str
    size: int
    trusted_only: bool = False


class MetricPoint(_Model):
    name: str
    value: float
    step: int | None = None
    timestamp: datetime | None = None
    step_name: str | None = None


class DescribeStepRun(_Model):
    id: int
    name: str
    status: StepStatus
    version: str | None = None
    attempt: int = 1
    cached: bool = False
    cached_from_run: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    worker: str | None = None
    executed_notebook: str | None = None
    log_uri: str | None = None
    error_cell_index: int | None = None
    source_cell_index: int | None = None
    ename: str | None = None
    evalue: str | None = None
    message: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    outputs: list[ArtifactInfo] = Field(default_factory=list)
    inputs: list[ArtifactInfo] = Field(default_factory=list)


class DescribeRun(_Model):
    id: str
    owner: str
    pipeline: str
    notebook: str
    pipeline_version: str
    status: RunStatus
    parameters: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    host: str = ""
    pid: int = 0
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    steps: list[DescribeStepRun] = Field(default_factory=list)


class ListRunsQuery(_Model):
    pipeline: str | None = None
    status: RunStatus | None = None
    limit: int = Field(default=50, ge=1, le=10_000)


class ListRunsResponse(_Model):
    runs: list[DescribeRun]
