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
    curl: str | None = None  # a copyable request with a sample input (server extension)
    revisions: list[EndpointRevisionInfo] = Field(default_factory=list)


class ListEndpointsResponse(_Model):
    endpoints: list[DescribeEndpoint]


class DeployResult(_Model):
    """A new endpoint revision; ``token`` only when one was created or rotated (shown once)."""

    endpoint: DescribeEndpoint
    token: str | None = None
    forced: bool = False


# -- REST ------------------------------------------------------------------------------------
# Bodies, queries and answers of the server extension's routes (``/mlplat/api/...``) that the
# models above do not already cover.


class DescribeExtension(_Model):
    """``GET version``: the installed version and the owner the server acts for."""

    version: str
    owner: str


class DescribePipelineQuery(_Model):
    notebook: str = Field(description="Notebook path relative to the server root")


class ParameterInfo(_Model):
    name: str
    source: str
    default: Any = None
    type_name: str = "NoneType"


class PipelineStepInfo(_Model):
    """One step of a parsed notebook and whether a run now would take it from the cache."""

    name: str
    version: str | None = None  # None: depends on upstream outputs that do not exist yet
    after: list[str] = Field(default_factory=list)
    upstream: list[str] = Field(default_factory=list)
    inputs: dict[str, str] = Field(default_factory=dict)  # variable -> producing step
    outputs: list[str] = Field(default_factory=list)
    params: list[str] = Field(default_factory=list)
    gpus: int = 0
    cache: bool = True
    cell_indexes: list[int] = Field(default_factory=list)
    cell_ids: list[str | None] = Field(default_factory=list)
    cached: bool = False
    cached_from_run: str | None = None


class PipelineEdgeInfo(_Model):
    """``target`` runs after ``source``; ``names`` are the values passed (empty: order only)."""

    source: str
    target: str
    names: list[str] = Field(default_factory=list)
    explicit: bool = False


class PipelineErrorInfo(_Model):
    """A problem in the notebook's marks or code, with the cell it is in when known."""

    message: str
    cell_index: int | None = None
    cell_id: str | None = None


class DescribePipeline(_Model):
    """A notebook as a pipeline: steps, data edges, parameters, and which steps are cached."""

    notebook: str
    name: str
    steps: list[PipelineStepInfo] = Field(default_factory=list)
    edges: list[PipelineEdgeInfo] = Field(default_factory=list)
    parameters: list[ParameterInfo] = Field(default_factory=list)
    errors: list[PipelineErrorInfo] = Field(default_factory=list)


class RerunStep(_Model):
    """Run one step of an earlier run again (``only``), or it and its descendants (``from``),
    with that run's code and parameters; outputs of other steps come from earlier runs."""

    step: str = Field(min_length=1)
    mode: Literal["only", "from"] = "only"
    force: bool = Field(default=True, description="Ignore the cache for the selected steps")


class ListMetricsResponse(_Model):
    """Every metric point of a run (points with ``step`` set form curves)."""

    run_id: str
    metrics: list[MetricPoint]


class CompareRunsQuery(_Model):
    runs: str = Field(description="Two or more run ids (or unique prefixes), comma-separated")

    def run_ids(self) -> list[str]:
        return [part.strip() for part in self.runs.split(",") if part.strip()]


class StepLogQuery(_Model):
    follow: bool = Field(default=False, description="Stream until the step has finished")


class UpdateAlias(_Model):
    """Point an alias of a model at a version."""

    version: int = Field(ge=1)
    reason: str | None = None


class CreateDeployment(_Model):
    """Deploy a model version to an endpoint (a new endpoint revision)."""

    model: str = Field(min_length=1, description="Model name, or name@version / name@alias")
    version: int | None = Field(default=None, ge=1, description="Default: newest blessed")
    endpoint: str | None = Field(default=None, description="Default: the model's name")
    canary: int | None = Field(default=None, ge=1, le=99,
                               description="Percent of traffic for the new version; the rest "
                               "stays on what the endpoint serves now")
    shadow: str | None = Field(default=None, description="name@version mirrored, answers logged")
    shadow_share: float = Field(default=1.0, gt=0.0, le=1.0)
    force: bool = False
    reason: str | None = None
    public: bool | None = None


class UpdateTraffic(_Model):
    """New weights of an endpoint's routes: ``{"churn@1": 90, "churn@2": 10}`` (sum 100)."""

    traffic: dict[str, int] = Field(min_length=1)
    force: bool = False
    reason: str | None = None


class TryEndpoint(_Model):
    """A test call of an endpoint; default input: the served version's stored sample input."""

    inputs: Any = Field(default=None, description="An MLflow scoring body "
                        "(dataframe_split, dataframe_records, instances or inputs)")
    token: str | None = Field(default=None, description="The endpoint's token when it is not "
                              "public and was not deployed from this server")


class TryEndpointResponse(_Model):
    """What the endpoint answered to a test call."""

    endpoint: str
    url: str
    status: int
    ok: bool
    model_version: str | None = None
    revision: int | None = None
    request: Any = None
    response: Any = None
    duration_ms: float
    curl: str


# -- schedules ---------------------------------------------------------------------------------

ScheduleTarget = Literal["notebook", "pipeline"]
MissedPolicy = Literal["latest", "skip"]
FiringKind = Literal["cron", "catch_up", "manual"]
FiringStatus = Literal["pending", "running", "succeeded", "failed", "interrupted", "missed",
                       "cancelled"]
NotifyEvent = Literal["failure", "success", "missed"]


class DeployIfBlessed(_Model):
    """On success: deploy the version of ``model`` that the run registered, if it was blessed."""

    model: str = Field(min_length=1, description="The model the notebook logs")
    endpoint: str | None = Field(default=None, description="Default: the model's name")
    public: bool | None = Field(default=None, description="Open a new endpoint to callers "
                                "without a token (default: keep; new endpoints need one)")


class ScheduleOnSuccess(_Model):
    """What to do after a firing's run succeeded."""

    deploy_if_blessed: DeployIfBlessed | None = None


class ScheduleNotify(_Model):
    """Where to tell about firings: webhooks get a JSON POST, addresses an e-mail (SMTP)."""

    webhook: list[str] = Field(default_factory=list, description="http(s) URLs")
    email: list[str] = Field(default_factory=list, description="addresses (needs smtp_host)")
    on: list[NotifyEvent] = Field(default_factory=lambda: ["failure"],
                                  description="failure (default), success, missed")
    include_parameters: bool = Field(default=False, description="Put the firing's parameters "
                                     "in webhook bodies and e-mails (off: they may hold "
                                     "secrets)")


class CreateSchedule(_Model):
    """Fire a notebook (a papermill job) or a whole pipeline on cron, in a timezone."""

    notebook: str = Field(min_length=1, description="Path of the .ipynb (relative to the "
                          "server root over REST)")
    cron: str = Field(description="5 fields 'minute hour day month weekday' or @daily, ...")
    timezone: str = Field(default="UTC", description="IANA name the cron fields are read in")
    target: ScheduleTarget = Field(default="notebook", description="notebook: one papermill "
                                   "job; pipeline: the notebook's steps through the executor")
    name: str | None = Field(default=None, description="Default: the notebook's file name")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Values for the "
                                       "notebook's parameters cell; types as the defaults")
    on_success: ScheduleOnSuccess = Field(default_factory=ScheduleOnSuccess)
    notify: ScheduleNotify = Field(default_factory=ScheduleNotify)
    missed: MissedPolicy = Field(default="latest", description="Slots missed while no "
                                 "scheduler ran: fire once (latest) or not at all (skip)")
    kernel: str | None = Field(default=None, description="Kernel of a notebook target "
                               "(default: the notebook's own)")
    timeout: float | None = Field(default=None, gt=0, description="Seconds a notebook target "
                                  "may run before it is stopped")
    paused: bool = False


class UpdateSchedule(_Model):
    """Change a schedule (PATCH): fields left out stay as they are."""

    notebook: str | None = Field(default=None, min_length=1)
    cron: str | None = None
    timezone: str | None = None
    target: ScheduleTarget | None = None
    name: str | None = None
    parameters: dict[str, Any] | None = None
    on_success: ScheduleOnSuccess | None = None
    notify: ScheduleNotify | None = None
    missed: MissedPolicy | None = None
    kernel: str | None = None
    timeout: float | None = Field(default=None, gt=0)


class ActionOutcome(_Model):
    """What an on-success action did for one firing."""

    action: Literal["deploy_if_blessed"]
    status: Literal["deployed", "not_blessed", "no_version", "failed", "not_committed"]
    detail: str
    model: str | None = None
    version: int | None = None
    endpoint: str | None = None
    revision: int | None = None


class NotificationOutcome(_Model):
    """One notification sent (or not) about a firing."""

    channel: Literal["webhook", "email"]
    target: str
    event: NotifyEvent
    status: Literal["sent", "failed"]
    detail: str | None = None
    at: datetime


class DescribeFiring(_Model):
    """One firing of a schedule: its slot, its run, what became of it."""

    id: int
    schedule_id: str
    kind: FiringKind
    status: FiringStatus
    slot_at: datetime = Field(description="The slot (manual: when asked), in the schedule's "
                              "timezone")
    missed_slots: int = Field(default=0, description="Earlier slots, missed while no "
                              "scheduler ran, that this firing stands for (or skipped)")
    attempt: int = Field(default=0, description="1: queued again because the firing of this "
                         "slot was interrupted before its target started")
    run_id: str | None = None
    run_status: RunStatus | None = None
    executed_notebook: str | None = Field(default=None, description="Artifact URI of the "
                                          "executed notebook (a pipeline: its failed or last "
                                          "step's)")
    error: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    on_success: ActionOutcome | None = None
    notifications: list[NotificationOutcome] = Field(default_factory=list)
    scheduler: str | None = Field(default=None, description="host:pid of the scheduler")
    requested_by: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None


class DescribeSchedule(_Model):
    """A schedule with its next fire times and (from ``describe``) its history."""

    id: str
    name: str
    owner: str
    target: ScheduleTarget
    notebook: str
    cron: str
    timezone: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    on_success: ScheduleOnSuccess = Field(default_factory=ScheduleOnSuccess)
    notify: ScheduleNotify = Field(default_factory=ScheduleNotify)
    missed: MissedPolicy = "latest"
    kernel: str | None = None
    timeout: float | None = None
    paused: bool = False
    deleted: bool = False
    next_fire_at: datetime | None = Field(default=None, description="In the schedule's "
                                          "timezone; None when paused")
    next_fire_times: list[datetime] = Field(default_factory=list)
    last_firing: DescribeFiring | None = None
    history: list[DescribeFiring] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why the scheduler stopped firing it")
    scheduler: str | None = Field(default=None, description="The scheduler process holding "
                                  "its lease, if one does")
    created_at: datetime
    updated_at: datetime


class ListSchedulesResponse(_Model):
    schedules: list[DescribeSchedule]


class ListFiringsResponse(_Model):
    firings: list[DescribeFiring]


class ListFiringsQuery(_Model):
    """``GET schedules/{id}/history``: how many firings, newest first."""

    limit: int = Field(default=50, ge=1, le=1000)


class PreviewScheduleQuery(_Model):
    """``GET schedules/preview``: the next fire times of a cron expression, before saving it."""

    cron: str = Field(min_length=1, description="5 fields 'minute hour day month weekday' or "
                      "@daily, ...")
    timezone: str = Field(default="UTC", description="IANA name the cron fields are read in")
    count: int = Field(default=5, ge=1, le=100, description="How many fire times")


class PreviewScheduleResponse(_Model):
    """The next fire times of ``cron`` in ``timezone``, after now."""

    cron: str
    timezone: str
    next_fire_times: list[datetime] = Field(description="In the timezone (with its offset)")


# -- projects and sharing -----------------------------------------------------------------------

ShareKind = Literal["model", "endpoint", "pipeline", "schedule"]
ProjectRole = Literal["owner", "member", "hub group"]


class SharedItem(_Model):
    """Something shared with a project: read-only for its members."""

    kind: ShareKind
    owner: str
    name: str
    id: str = Field(description="The row's id (a schedule is read by its id)")
    project: str | None = Field(default=None, description="The project's OWNER/NAME")


class CreateProjectRequest(_Model):
    """``POST projects``: a new project owned by the caller."""

    name: str = Field(description="1-64 lowercase letters, digits, '.', '_' or '-'; the "
                      "project is then OWNER/NAME (names are per owner)")
    hub_group: str | None = Field(default=None, description="Members of this JupyterHub group "
                                  "(one you are in) belong to the project too")
    description: str = Field(default="", max_length=2000)
    members: list[str] = Field(default_factory=list, max_length=500,
                               description="Users who belong to the project from the start")


class ProjectInfo(_Model):
    key: str = Field(description="OWNER/NAME: what shares name, and how others refer to it")
    name: str
    owner: str
    hub_group: str | None = None
    description: str = ""
    members: list[str] = Field(default_factory=list, description="Users added by the owner")
    role: ProjectRole = Field(description="How the caller belongs to it")
    created_at: datetime
    shared: list[SharedItem] = Field(default_factory=list,
                                     description="What is shared with it (project show only)")


class ListProjectsResponse(_Model):
    projects: list[ProjectInfo]


class ShareRequest(_Model):
    """``PUT shares/{kind}/{name}``: share one of yours with a project you belong to."""

    project: str = Field(description="NAME (a project of yours) or OWNER/NAME")


class ListSharedResponse(_Model):
    shared: list[SharedItem]


class DescribeSharedModel(_Model):
    """A version of a model another user shared with you (``owner/name@selector``)."""

    owner: str
    name: str
    version: int
    versions: list[int]
    aliases: dict[str, int] = Field(default_factory=dict)
    flavor: str
    format: str
    loadable: bool = Field(description="Whether you may load it: safe formats only (skops with "
                           "the trusted types); pickled, tree and torch models stay with their "
                           "owner")
    signature: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class ListSharedQuery(_Model):
    """``GET shared``: what others shared with your projects, or (``mine``) what you shared."""

    kind: ShareKind | None = None
    mine: bool = False


class SharedModelQuery(_Model):
    """``GET shared/models/{owner}/{name}``: which version (number, alias; default newest)."""

    version: str | None = Field(default=None, max_length=128)


class SharedEndpointInfo(_Model):
    """An endpoint another user shared with you: what it serves and its history (no token)."""

    owner: str
    name: str
    project: str | None = None
    public: bool = False
    revisions: list[EndpointRevisionInfo] = Field(description="Oldest first")


class SharedRunInfo(_Model):
    id: str
    status: RunStatus
    created_at: datetime
    finished_at: datetime | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict, description="Last value of each")


class SharedPipelineInfo(_Model):
    """A pipeline another user shared with you: its newest runs with params and metrics."""

    owner: str
    name: str
    path: str
    project: str | None = None
    runs: list[SharedRunInfo]


class SharedFiringInfo(_Model):
    kind: str
    status: str
    slot_at: datetime
    run_id: str | None = None
    finished_at: datetime | None = None


class SharedScheduleInfo(_Model):
    """A schedule another user shared with you (no notification targets)."""

    owner: str
    id: str
    name: str
    target: str
    notebook_path: str
    cron: str
    timezone: str
    paused: bool
    next_fire_at: datetime | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    project: str | None = None
    firings: list[SharedFiringInfo] = Field(default_factory=list, description="Newest first")
