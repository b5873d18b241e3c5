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


class SliceMetricRow(_Model):
    """One slice's value of a metric (``log_slices``, or a verdict's per-slice scores)."""

    metric: str
    by: str | None = None
    slice: str
    value: float | None = None
    count: int = 0
    step: str | None = None


class RunModelVersion(_Model):
    """A model version a run registered, with its verdict."""

    model: str
    version: int
    flavor: str
    verdict: Literal["blessed", "rejected", "unvalidated"]
    summary: str | None = None


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
    slices: list[SliceMetricRow] = Field(default_factory=list)
    models: list[RunModelVersion] = Field(default_factory=list)


class ListRunsQuery(_Model):
    pipeline: str | None = None
    status: RunStatus | None = None
    limit: int = Field(default=50, ge=1, le=10_000)


class ListRunsResponse(_Model):
    runs: list[DescribeRun]


# -- models ----------------------------------------------------------------------------------

VerdictStatus = Literal["blessed", "rejected", "unvalidated"]


class VerdictCheck(_Model):
    name: str
    status: Literal["passed", "failed", "ignored"]
    reason: str
    candidate: float | None = None
    baseline: float | None = None
    threshold: float | None = None


class DescribeVerdict(_Model):
    """A validation of a model version: blessed or rejected, why, and both scores."""

    status: VerdictStatus
    summary: str
    metric: str
    higher_is_better: bool
    candidate: dict[str, Any]
    baseline: dict[str, Any] | None = None
    baseline_version: int | None = None
    checks: list[VerdictCheck] = Field(default_factory=list)
    note: str | None = None
    run_id: str | None = None
    policy: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class AliasMove(_Model):
    alias: str
    version: int | None
    previous: int | None = None
    actor: str
    reason: str | None = None
    at: datetime


class DeployOverrideInfo(_Model):
    actor: str
    reason: str
    at: datetime


class DescribeModelVersion(_Model):
    model: str
    version: int
    flavor: str
    created_at: datetime
    created_by: str
    aliases: list[str] = Field(default_factory=list)
    signature: dict[str, Any] = Field(default_factory=dict)
    signature_text: str = ""
    artifact: ArtifactInfo
    trusted_only: bool = False
    run_id: str | None = None
    step: str | None = None
    step_version: str | None = None
    notebook: str | None = None
    cell_ids: list[str] = Field(default_factory=list)
    input_artifacts: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    slices: list[SliceMetricRow] = Field(default_factory=list)
    verdict: DescribeVerdict | None = None
    verdict_status: VerdictStatus = "unvalidated"
    verdict_reason: str | None = None  # why a version is unvalidated (a failed validation)
    overrides: list[DeployOverrideInfo] = Field(default_factory=list)


class ModelSummary(_Model):
    name: str
    versions: int
    latest: int | None = None
    latest_verdict: VerdictStatus = "unvalidated"
    aliases: dict[str, int] = Field(default_factory=dict)
    created_at: datetime


class ListModelsResponse(_Model):
    models: list[ModelSummary]


class DescribeModel(_Model):
    name: str
    versions: list[DescribeModelVersion]
    aliases: dict[str, int] = Field(default_factory=dict)
    alias_history: list[AliasMove] = Field(default_factory=list)
    policy: dict[str, Any] | None = None


class DescribeLineage(_Model):
    """From notebook cells to a model version: cells -> step version -> inputs -> run -> model."""

    model: str
    version: int
    flavor: str
    artifact: dict[str, Any]
    notebook: str | None = None
    cells: list[str] = Field(default_factory=list)
    step: str | None = None
    step_version: str | None = None
    step_code: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    run: dict[str, Any] | None = None
    created_by: str
    created_at: str
    aliases: list[str] = Field(default_factory=list)
    endpoints: list[dict[str, Any]] = Field(default_factory=list)  # revisions that served it


class SetAlias(_Model):
    model: str
    alias: str
    version: int | None = Field(default=None, ge=1)
    reason: str | None = None


class CompareRuns(_Model):
    """Params and metrics of several runs side by side; ``differs`` names what is not equal."""

    runs: list[str]
    pipelines: dict[str, str] = Field(default_factory=dict)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    differs: list[str] = Field(default_factory=list)


# -- serving ---------------------------------------------------------------------------------


class RouteSpec(_Model):
    """A share of an endpoint's traffic going to one model version."""

    model: str
    version: int = Field(ge=1)
    weight: int = Field(ge=0, le=100)


class ShadowSpec(_Model):
    """A model version that gets a mirrored share of traffic; its answers are logged only."""

    model: str
    version: int = Field(ge=1)
    share: float = Field(default=1.0, gt=0.0, le=1.0)


class EndpointState(_Model):
    """What a serve process serves for one endpoint (its newest revision)."""

    name: str
    owner: str
    revision: int
    routes: list[RouteSpec]
    shadow: ShadowSpec | None = None
    sticky_header: str | None = None
    public: bool = False
    token_hash: str | None = None


class EndpointRevisionInfo(_Model):
    revision: int
    action: str
    routes: list[RouteSpec]
    shadow: ShadowSpec | None = None
    sticky_header: str | None = None
    public: bool = False
    forced: bool = False
    reason: str | None = None
    actor: str
    at: datetime


class DescribeEndpoint(_Model):
    name: str
    public: bool
    revision: int | None = None
    routes: list[RouteSpec] = Field(default_factory=list)
    shadow: ShadowSpec | None = None
    deployed: bool = False
    url: str | None = None
    revisions: list[EndpointRevisionInfo] = Field(default_factory=list)


class ListEndpointsResponse(_Model):
    endpoints: list[DescribeEndpoint]


class DeployResult(_Model):
    """A new endpoint revision; ``token`` only when one was created or rotated (shown once)."""

    endpoint: DescribeEndpoint
    token: str | None = None
    forced: bool = False
