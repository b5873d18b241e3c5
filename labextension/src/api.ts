/**
 * The typed client of the server extension's REST API (`/mlplat/api/`, docs/rest-api.md).
 *
 * The I-prefixed interfaces mirror the pydantic models of `jupyter_mlplat/schemas.py`
 * (`DescribeRun` -> `IDescribeRun`, ...); dates are ISO 8601 strings. Every call goes through
 * `requestAPI`; components use an `MLPlatClient`, never `fetch`.
 */
import { ServerConnection } from '@jupyterlab/services';

import { IRequestOptions, requestAPI } from './request';

// -- runs --------------------------------------------------------------------------------------

export type RunStatus =
  'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

export type StepStatus =
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'cached'
  | 'failed'
  | 'cancelled'
  | 'skipped'
  | 'upstream_failed'
  | 'interrupted';

/** Run statuses after which nothing changes any more (`schemas.FINISHED_RUN`). */
export const FINISHED_RUN: ReadonlyArray<RunStatus> = [
  'succeeded',
  'failed',
  'cancelled',
  'interrupted'
];

/** Which steps a run executes: all (empty), one, one and its descendants, or its ancestors. */
export interface ISelection {
  only?: string | null;
  from?: string | null;
  to?: string | null;
}

export interface ICreateRun {
  notebook: string;
  parameters?: Record<string, unknown>;
  selection?: ISelection;
  force?: string[];
  dask_address?: string | null;
}

export interface IArtifactInfo {
  name: string;
  sha256: string;
  uri: string;
  format: string;
  type_name: string;
  size: number;
  trusted_only: boolean;
}

export interface IMetricPoint {
  name: string;
  value: number;
  step?: number | null;
  timestamp?: string | null;
  step_name?: string | null;
}

export interface IDescribeStepRun {
  id: number;
  name: string;
  status: StepStatus;
  version?: string | null;
  attempt: number;
  cached: boolean;
  cached_from_run?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  duration?: number | null;
  worker?: string | null;
  executed_notebook?: string | null;
  log_uri?: string | null;
  error_cell_index?: number | null;
  source_cell_index?: number | null;
  ename?: string | null;
  evalue?: string | null;
  message?: string | null;
  params: Record<string, unknown>;
  metrics: Record<string, number>;
  outputs: IArtifactInfo[];
  inputs: IArtifactInfo[];
}

export interface ISliceMetricRow {
  metric: string;
  by?: string | null;
  slice: string;
  value?: number | null;
  count: number;
  step?: string | null;
}

export type VerdictStatus = 'blessed' | 'rejected' | 'unvalidated';

export interface IRunModelVersion {
  model: string;
  version: number;
  flavor: string;
  verdict: VerdictStatus;
  summary?: string | null;
}

export interface IDescribeRun {
  id: string;
  owner: string;
  pipeline: string;
  notebook: string;
  pipeline_version: string;
  status: RunStatus;
  parameters: Record<string, unknown>;
  options: Record<string, unknown>;
  host: string;
  pid: number;
  error?: string | null;
  created_at: string;
  started_at?: string | null;
  finished_at?: string | null;
  duration?: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number>;
  steps: IDescribeStepRun[];
  slices: ISliceMetricRow[];
  models: IRunModelVersion[];
}

export interface IListRunsQuery {
  pipeline?: string;
  status?: RunStatus;
  limit?: number;
}

export interface IListRunsResponse {
  runs: IDescribeRun[];
}

/**
 * `POST runs/{id}/rerun`: a new run of one step (`only`), or of it and its descendants
 * (`from`), with that run's code and parameters; other outputs come from earlier runs.
 */
export interface IRerunStep {
  step: string;
  mode: 'only' | 'from';
  /** Ignore the cache for the selected steps (default true). */
  force?: boolean;
}

/** Every metric point of a run (points with `step` set form curves). */
export interface IListMetricsResponse {
  run_id: string;
  metrics: IMetricPoint[];
}

/** Params and metrics of several runs side by side; `differs` names what is not equal. */
export interface ICompareRuns {
  runs: string[];
  pipelines: Record<string, string>;
  params: Record<string, Record<string, unknown>>;
  metrics: Record<string, Record<string, number | null>>;
  differs: string[];
}

// -- pipelines ---------------------------------------------------------------------------------

export interface IParameterInfo {
  name: string;
  /** The default as written in the parameters cell. */
  source: string;
  /** The default's value when it is a JSON-able Python literal, else null. */
  default: unknown;
  /** `int`, `float`, `bool`, `str`, `list`, ...; the annotation, or `NoneType`, otherwise. */
  type_name: string;
}

/** One step of a parsed notebook and whether a run now would take it from the cache. */
export interface IPipelineStepInfo {
  name: string;
  /** null: it depends on upstream outputs that do not exist yet. */
  version?: string | null;
  after: string[];
  upstream: string[];
  /** variable -> the step that produces it */
  inputs: Record<string, string>;
  outputs: string[];
  params: string[];
  gpus: number;
  cache: boolean;
  cell_indexes: number[];
  cell_ids: Array<string | null>;
  cached: boolean;
  cached_from_run?: string | null;
}

/** `target` runs after `source`; `names` are the values passed (empty: order only). */
export interface IPipelineEdgeInfo {
  source: string;
  target: string;
  names: string[];
  explicit: boolean;
}

/** A problem in the notebook's marks or code, with the cell it is in when known. */
export interface IPipelineErrorInfo {
  message: string;
  cell_index?: number | null;
  cell_id?: string | null;
}

/** A notebook as a pipeline: steps, data edges, parameters, and which steps are cached. */
export interface IDescribePipeline {
  notebook: string;
  name: string;
  steps: IPipelineStepInfo[];
  edges: IPipelineEdgeInfo[];
  parameters: IParameterInfo[];
  errors: IPipelineErrorInfo[];
}

// -- models ------------------------------------------------------------------------------------

export interface IVerdictCheck {
  name: string;
  status: 'passed' | 'failed' | 'ignored';
  reason: string;
  candidate?: number | null;
  baseline?: number | null;
  threshold?: number | null;
}

export interface IDescribeVerdict {
  status: VerdictStatus;
  summary: string;
  metric: string;
  higher_is_better: boolean;
  candidate: Record<string, unknown>;
  baseline?: Record<string, unknown> | null;
  baseline_version?: number | null;
  checks: IVerdictCheck[];
  note?: string | null;
  run_id?: string | null;
  policy: Record<string, unknown>;
  created_at?: string | null;
}

export interface IAliasMove {
  alias: string;
  version: number | null;
  previous?: number | null;
  actor: string;
  reason?: string | null;
  at: string;
}

export interface IDeployOverrideInfo {
  actor: string;
  reason: string;
  at: string;
}

export interface IDescribeModelVersion {
  model: string;
  version: number;
  flavor: string;
  created_at: string;
  created_by: string;
  aliases: string[];
  signature: Record<string, unknown>;
  signature_text: string;
  artifact: IArtifactInfo;
  trusted_only: boolean;
  run_id?: string | null;
  step?: string | null;
  step_version?: string | null;
  notebook?: string | null;
  cell_ids: string[];
  input_artifacts: Record<string, string>;
  metrics: Record<string, number>;
  slices: ISliceMetricRow[];
  verdict?: IDescribeVerdict | null;
  verdict_status: VerdictStatus;
  verdict_reason?: string | null;
  overrides: IDeployOverrideInfo[];
}

export interface IModelSummary {
  name: string;
  versions: number;
  latest?: number | null;
  latest_verdict: VerdictStatus;
  aliases: Record<string, number>;
  created_at: string;
}

export interface IListModelsResponse {
  models: IModelSummary[];
}

export interface IDescribeModel {
  name: string;
  versions: IDescribeModelVersion[];
  aliases: Record<string, number>;
  alias_history: IAliasMove[];
  policy?: Record<string, unknown> | null;
}

export interface IDescribeLineage {
  model: string;
  version: number;
  flavor: string;
  artifact: Record<string, unknown>;
  notebook?: string | null;
  cells: string[];
  step?: string | null;
  step_version?: string | null;
  step_code?: string | null;
  inputs: Record<string, string>;
  run?: Record<string, unknown> | null;
  created_by: string;
  created_at: string;
  aliases: string[];
  endpoints: Array<Record<string, unknown>>;
}

/** `PUT models/{name}/aliases/{alias}`: point an alias of a model at a version. */
export interface IUpdateAlias {
  version: number;
  reason?: string | null;
}

// -- endpoints ---------------------------------------------------------------------------------

export interface IRouteSpec {
  model: string;
  version: number;
  weight: number;
}

export interface IShadowSpec {
  model: string;
  version: number;
  share: number;
}

export interface IEndpointRevisionInfo {
  revision: number;
  action: string;
  routes: IRouteSpec[];
  shadow?: IShadowSpec | null;
  sticky_header?: string | null;
  public: boolean;
  forced: boolean;
  reason?: string | null;
  actor: string;
  at: string;
}

export interface IDescribeEndpoint {
  name: string;
  public: boolean;
  revision?: number | null;
  routes: IRouteSpec[];
  shadow?: IShadowSpec | null;
  deployed: boolean;
  url?: string | null;
  /** A copyable curl command that calls the endpoint (token elided). */
  curl?: string | null;
  revisions: IEndpointRevisionInfo[];
}

export interface IListEndpointsResponse {
  endpoints: IDescribeEndpoint[];
}

/** `POST endpoints`: deploy a model version to an endpoint (a new endpoint revision). */
export interface ICreateDeployment {
  /** Model name, or name@version / name@alias. */
  model: string;
  /** Default: the newest blessed version. */
  version?: number | null;
  /** Default: the model's name. */
  endpoint?: string | null;
  /** 1-99: that share of traffic to the new version, the rest to what is served now. */
  canary?: number | null;
  /** `MODEL@VERSION` that gets a mirrored share of traffic; its answers are logged only. */
  shadow?: string | null;
  /** Share of requests mirrored to the shadow, above 0 and at most 1 (default 1). */
  shadow_share?: number;
  force?: boolean;
  reason?: string | null;
  /** Open the endpoint to callers without a token (default: keep; new endpoints need one). */
  public?: boolean | null;
}

/** A new endpoint revision; `token` only when one was created or rotated (shown once). */
export interface IDeployResult {
  endpoint: IDescribeEndpoint;
  token?: string | null;
  forced: boolean;
}

/** `PUT endpoints/{name}/traffic`: weights in percent by `MODEL@VERSION`, summing to 100. */
export interface IUpdateTraffic {
  traffic: Record<string, number>;
  force?: boolean;
  reason?: string | null;
}

/** `POST endpoints/{name}/try`: a test call; default input: the stored sample input. */
export interface ITryEndpoint {
  /** An MLflow scoring body (dataframe_split, dataframe_records, instances or inputs). */
  inputs?: unknown;
  /** The endpoint's token when it is not public and was not deployed from this server. */
  token?: string | null;
}

/** What the endpoint answered to a test call. */
export interface ITryEndpointResponse {
  endpoint: string;
  url: string;
  status: number;
  ok: boolean;
  model_version?: string | null;
  revision?: number | null;
  request: unknown;
  response: unknown;
  duration_ms: number;
  curl: string;
}

// -- schedules ---------------------------------------------------------------------------------

export type ScheduleTarget = 'notebook' | 'pipeline';
export type MissedPolicy = 'latest' | 'skip';
export type FiringStatus =
  'pending' | 'running' | 'succeeded' | 'failed' | 'interrupted' | 'missed' | 'cancelled';
export type NotifyEvent = 'failure' | 'success' | 'missed';

/** On success: deploy the version of `model` the run registered, if it was blessed. */
export interface IDeployIfBlessed {
  model: string;
  endpoint?: string | null;
  public?: boolean | null;
}

export interface IScheduleOnSuccess {
  deploy_if_blessed?: IDeployIfBlessed | null;
}

export interface IScheduleNotify {
  webhook?: string[];
  email?: string[];
  on?: NotifyEvent[];
  /** Put the firing's parameters in webhook bodies and e-mails (off: they may hold secrets). */
  include_parameters?: boolean;
}

/** `POST schedules`: fire a notebook (papermill job) or a whole pipeline on cron. */
export interface ICreateSchedule {
  notebook: string;
  cron: string;
  timezone?: string;
  target?: ScheduleTarget;
  name?: string | null;
  parameters?: Record<string, unknown>;
  on_success?: IScheduleOnSuccess;
  notify?: IScheduleNotify;
  missed?: MissedPolicy;
  kernel?: string | null;
  timeout?: number | null;
  paused?: boolean;
}

export interface IActionOutcome {
  action: 'deploy_if_blessed';
  status: 'deployed' | 'not_blessed' | 'no_version' | 'failed' | 'not_committed';
  detail: string;
  model?: string | null;
  version?: number | null;
  endpoint?: string | null;
  revision?: number | null;
}

export interface INotificationOutcome {
  channel: 'webhook' | 'email';
  target: string;
  event: NotifyEvent;
  status: 'sent' | 'failed';
  detail?: string | null;
  at: string;
}

/** One firing of a schedule: its slot, its run, what became of it. */
export interface IDescribeFiring {
  id: number;
  schedule_id: string;
  kind: 'cron' | 'catch_up' | 'manual';
  status: FiringStatus;
  slot_at: string;
  missed_slots: number;
  /** 1: queued again because the firing of this slot was interrupted before its run began. */
  attempt: number;
  run_id?: string | null;
  run_status?: RunStatus | null;
  executed_notebook?: string | null;
  error?: string | null;
  parameters: Record<string, unknown>;
  on_success?: IActionOutcome | null;
  notifications: INotificationOutcome[];
  scheduler?: string | null;
  requested_by?: string | null;
  created_at: string;
  started_at?: string | null;
  finished_at?: string | null;
  duration?: number | null;
}

/** A schedule with its next fire times and (from `GET schedules/{id}`) its history. */
export interface IDescribeSchedule {
  id: string;
  name: string;
  owner: string;
  target: ScheduleTarget;
  notebook: string;
  cron: string;
  timezone: string;
  parameters: Record<string, unknown>;
  on_success: IScheduleOnSuccess;
  notify: IScheduleNotify;
  missed: MissedPolicy;
  kernel?: string | null;
  timeout?: number | null;
  paused: boolean;
  deleted: boolean;
  next_fire_at?: string | null;
  next_fire_times: string[];
  last_firing?: IDescribeFiring | null;
  history: IDescribeFiring[];
  /** Why the scheduler stopped firing it. */
  error?: string | null;
  scheduler?: string | null;
  created_at: string;
  updated_at: string;
}

export interface IListSchedulesResponse {
  schedules: IDescribeSchedule[];
}

// -- projects and sharing ----------------------------------------------------------------------

/** What can be shared with a project (`schemas.ShareKind`). */
export type ShareKind = 'model' | 'endpoint' | 'pipeline' | 'schedule';

/** How the caller belongs to a project (`schemas.ProjectRole`). */
export type ProjectRole = 'owner' | 'member' | 'hub group';

/** Something shared with a project: read-only for its members. */
export interface ISharedItem {
  kind: ShareKind;
  owner: string;
  name: string;
  /** The row's id (a schedule is read by its id). */
  id: string;
  /** The project's key, `OWNER/NAME`; null: private (the answer of an unshare). */
  project?: string | null;
}

/** `POST projects`: a new project owned by the caller. */
export interface ICreateProjectRequest {
  /** 1-64 lowercase letters, digits, '.', '_' or '-' (starting with a letter or digit). */
  name: string;
  /** Members of this JupyterHub group belong to the project too. */
  hub_group?: string | null;
  description?: string;
  /** Users who belong from the start (created with the project, or not at all). */
  members?: string[];
}

/** A project: names are per owner, so `key` (`OWNER/NAME`) is what tells two apart. */
export interface IProjectInfo {
  /** `OWNER/NAME`: what shares name, and how others refer to it. */
  key: string;
  name: string;
  owner: string;
  hub_group?: string | null;
  description: string;
  /** Users added by the owner. */
  members: string[];
  /** How the caller belongs to it. */
  role: ProjectRole;
  created_at: string;
  /** What is shared with it (`GET projects/{owner}/{project}` only). */
  shared: ISharedItem[];
}

export interface IListProjectsResponse {
  projects: IProjectInfo[];
}

/** `PUT shares/{kind}/{name}`: share one of yours with a project you belong to. */
export interface IShareRequest {
  /** `NAME` (a project of yours) or `OWNER/NAME` (`IProjectInfo.key`). */
  project: string;
}

export interface IListSharedResponse {
  shared: ISharedItem[];
}

/** A version of a model another user shared with you (`owner/name@selector`). */
export interface IDescribeSharedModel {
  owner: string;
  name: string;
  version: number;
  versions: number[];
  aliases: Record<string, number>;
  flavor: string;
  format: string;
  /** Whether you may load it: safe formats only (skops with the trusted types). */
  loadable: boolean;
  signature: Record<string, unknown>;
  created_at: string;
}

/** An endpoint another user shared with you: what it serves and its history (never a token). */
export interface ISharedEndpointInfo {
  owner: string;
  name: string;
  /** The project it is shared with, `OWNER/NAME`. */
  project?: string | null;
  /** Callers need no token. */
  public: boolean;
  /** Oldest first; the newest is what it serves now (no routes: undeployed). */
  revisions: IEndpointRevisionInfo[];
}

/** A run of a shared pipeline: its status, parameters, params and metrics. */
export interface ISharedRunInfo {
  id: string;
  status: RunStatus;
  created_at: string;
  finished_at?: string | null;
  parameters: Record<string, unknown>;
  params: Record<string, unknown>;
  /** The last value of each metric. */
  metrics: Record<string, number>;
}

/** A pipeline another user shared with you: its notebook and its newest runs. */
export interface ISharedPipelineInfo {
  owner: string;
  name: string;
  /** The notebook's path in its owner's root. */
  path: string;
  /** The project it is shared with, `OWNER/NAME`. */
  project?: string | null;
  /** Newest first. */
  runs: ISharedRunInfo[];
}

/** One firing of a shared schedule. */
export interface ISharedFiringInfo {
  /** `cron`, `catch_up` or `manual`. */
  kind: string;
  status: string;
  slot_at: string;
  run_id?: string | null;
  finished_at?: string | null;
}

/** A schedule another user shared with you (never its notification targets). */
export interface ISharedScheduleInfo {
  owner: string;
  id: string;
  name: string;
  /** `notebook` (a papermill job) or `pipeline`. */
  target: string;
  notebook_path: string;
  cron: string;
  timezone: string;
  paused: boolean;
  next_fire_at?: string | null;
  parameters: Record<string, unknown>;
  /** The project it is shared with, `OWNER/NAME`. */
  project?: string | null;
  /** Newest first. */
  firings: ISharedFiringInfo[];
}

// -- the client --------------------------------------------------------------------------------

/** `GET version`: the installed version and the owner the server acts for. */
export interface IDescribeExtension {
  version: string;
  owner: string;
}

const seg = encodeURIComponent;

/**
 * One method a route of docs/rest-api.md. Errors are `MLPlatRequestError`s carrying the
 * server's message.
 */
export class MLPlatClient {
  /**
   * @param serverSettings - the server to talk to; default: JupyterLab's own
   */
  constructor(readonly serverSettings?: ServerConnection.ISettings) {}

  /** Any route, with this client's server settings. */
  request<T>(endPoint: string, options: IRequestOptions = {}): Promise<T> {
    return requestAPI<T>(endPoint, { settings: this.serverSettings, ...options });
  }

  version(): Promise<IDescribeExtension> {
    return this.request('version');
  }

  // pipelines

  describePipeline(notebook: string): Promise<IDescribePipeline> {
    return this.request('pipelines', { query: { notebook } });
  }

  // runs

  createRun(body: ICreateRun): Promise<IDescribeRun> {
    return this.request('runs', { method: 'POST', json: body });
  }

  listRuns(query: IListRunsQuery = {}): Promise<IListRunsResponse> {
    return this.request('runs', { query: { ...query } });
  }

  getRun(runId: string): Promise<IDescribeRun> {
    return this.request(`runs/${seg(runId)}`);
  }

  cancelRun(runId: string): Promise<IDescribeRun> {
    return this.request(`runs/${seg(runId)}/cancel`, { method: 'POST' });
  }

  resumeRun(runId: string): Promise<IDescribeRun> {
    return this.request(`runs/${seg(runId)}/resume`, { method: 'POST' });
  }

  rerunStep(runId: string, body: IRerunStep): Promise<IDescribeRun> {
    return this.request(`runs/${seg(runId)}/rerun`, { method: 'POST', json: body });
  }

  stepLog(runId: string, step: string): Promise<string> {
    return this.request(`runs/${seg(runId)}/steps/${seg(step)}/log`, {
      responseType: 'text'
    });
  }

  /** The executed notebook of a step (nbformat JSON). */
  stepNotebook(runId: string, step: string): Promise<Record<string, any>> {
    return this.request(`runs/${seg(runId)}/steps/${seg(step)}/notebook`);
  }

  runMetrics(runId: string): Promise<IListMetricsResponse> {
    return this.request(`runs/${seg(runId)}/metrics`);
  }

  compareRuns(runIds: string[]): Promise<ICompareRuns> {
    return this.request('compare', { query: { runs: runIds.join(',') } });
  }

  // models

  listModels(): Promise<IListModelsResponse> {
    return this.request('models');
  }

  getModel(name: string): Promise<IDescribeModel> {
    return this.request(`models/${seg(name)}`);
  }

  getModelVersion(name: string, version: number | string): Promise<IDescribeModelVersion> {
    return this.request(`models/${seg(name)}/versions/${seg(String(version))}`);
  }

  lineage(name: string, version: number | string): Promise<IDescribeLineage> {
    return this.request(`models/${seg(name)}/versions/${seg(String(version))}/lineage`);
  }

  setAlias(name: string, alias: string, body: IUpdateAlias): Promise<IDescribeModel> {
    return this.request(`models/${seg(name)}/aliases/${seg(alias)}`, {
      method: 'PUT',
      json: body
    });
  }

  deleteAlias(name: string, alias: string): Promise<IDescribeModel> {
    return this.request(`models/${seg(name)}/aliases/${seg(alias)}`, { method: 'DELETE' });
  }

  // endpoints

  listEndpoints(): Promise<IListEndpointsResponse> {
    return this.request('endpoints');
  }

  deploy(body: ICreateDeployment): Promise<IDeployResult> {
    return this.request('endpoints', { method: 'POST', json: body });
  }

  getEndpoint(name: string): Promise<IDescribeEndpoint> {
    return this.request(`endpoints/${seg(name)}`);
  }

  setTraffic(name: string, body: IUpdateTraffic): Promise<IDescribeEndpoint> {
    return this.request(`endpoints/${seg(name)}/traffic`, { method: 'PUT', json: body });
  }

  rollback(name: string): Promise<IDescribeEndpoint> {
    return this.request(`endpoints/${seg(name)}/rollback`, { method: 'POST' });
  }

  undeploy(name: string): Promise<IDescribeEndpoint> {
    return this.request(`endpoints/${seg(name)}`, { method: 'DELETE' });
  }

  /** One prediction; without `inputs` the server sends the model's stored sample input. */
  tryEndpoint(name: string, body: ITryEndpoint = {}): Promise<ITryEndpointResponse> {
    return this.request(`endpoints/${seg(name)}/try`, { method: 'POST', json: body });
  }

  /** A new bearer token (in the answer, once); the old one stops working. */
  rotateToken(name: string): Promise<IDeployResult> {
    return this.request(`endpoints/${seg(name)}/token`, { method: 'POST' });
  }

  // schedules

  listSchedules(): Promise<IListSchedulesResponse> {
    return this.request('schedules');
  }

  createSchedule(body: ICreateSchedule): Promise<IDescribeSchedule> {
    return this.request('schedules', { method: 'POST', json: body });
  }

  updateSchedule(id: string, body: Partial<ICreateSchedule>): Promise<IDescribeSchedule> {
    return this.request(`schedules/${seg(id)}`, { method: 'PATCH', json: body });
  }

  getSchedule(id: string | number): Promise<IDescribeSchedule> {
    return this.request(`schedules/${seg(String(id))}`);
  }

  deleteSchedule(id: string | number): Promise<unknown> {
    return this.request(`schedules/${seg(String(id))}`, { method: 'DELETE' });
  }

  pauseSchedule(id: string | number): Promise<IDescribeSchedule> {
    return this.request(`schedules/${seg(String(id))}/pause`, { method: 'POST' });
  }

  resumeSchedule(id: string | number): Promise<IDescribeSchedule> {
    return this.request(`schedules/${seg(String(id))}/resume`, { method: 'POST' });
  }

  runSchedule(id: string | number): Promise<unknown> {
    return this.request(`schedules/${seg(String(id))}/run`, { method: 'POST' });
  }

  // projects and sharing

  listProjects(): Promise<IListProjectsResponse> {
    return this.request('projects');
  }

  createProject(body: ICreateProjectRequest): Promise<IProjectInfo> {
    return this.request('projects', { method: 'POST', json: body });
  }

  /** One project you belong to (`owner`'s project `name`), with what is shared with it. */
  getProject(owner: string, name: string): Promise<IProjectInfo> {
    return this.request(`projects/${seg(owner)}/${seg(name)}`);
  }

  /**
   * Delete a project of yours; what was shared with it (`unshared` rows) is private again.
   * `deleted` is its key, `OWNER/NAME`.
   */
  deleteProject(owner: string, name: string): Promise<{ deleted: string; unshared: number }> {
    return this.request(`projects/${seg(owner)}/${seg(name)}`, { method: 'DELETE' });
  }

  /** Add `user` to a project of yours (adding twice changes nothing). */
  addProjectMember(owner: string, name: string, user: string): Promise<IProjectInfo> {
    return this.request(`projects/${seg(owner)}/${seg(name)}/members/${seg(user)}`, {
      method: 'PUT'
    });
  }

  /** Remove `user` from a project of yours, or leave one you are a member of (`user`: you). */
  removeProjectMember(owner: string, name: string, user: string): Promise<IProjectInfo> {
    return this.request(`projects/${seg(owner)}/${seg(name)}/members/${seg(user)}`, {
      method: 'DELETE'
    });
  }

  /**
   * Share a model, endpoint, pipeline or schedule of yours with a project you belong to;
   * `project` is its key (`OWNER/NAME`), or the `NAME` of one of yours.
   */
  share(kind: ShareKind, name: string, project: string): Promise<ISharedItem> {
    const body: IShareRequest = { project };
    return this.request(`shares/${seg(kind)}/${seg(name)}`, { method: 'PUT', json: body });
  }

  /** Make it private again. */
  unshare(kind: ShareKind, name: string): Promise<ISharedItem> {
    return this.request(`shares/${seg(kind)}/${seg(name)}`, { method: 'DELETE' });
  }

  /** What others shared with your projects; `mine`: what you shared. */
  listShared(query: { kind?: ShareKind; mine?: boolean } = {}): Promise<IListSharedResponse> {
    return this.request('shared', {
      query: { kind: query.kind, mine: query.mine ? 'true' : undefined }
    });
  }

  /** A version (number or alias; default the newest) of a model another user shared with you. */
  getSharedModel(
    owner: string,
    name: string,
    version?: number | string | null
  ): Promise<IDescribeSharedModel> {
    return this.request(`shared/models/${seg(owner)}/${seg(name)}`, {
      query: { version: version === undefined || version === null ? undefined : String(version) }
    });
  }

  /** An endpoint another user shared with you: its revisions (routes, shadow, who, when). */
  getSharedEndpoint(owner: string, name: string): Promise<ISharedEndpointInfo> {
    return this.request(`shared/endpoints/${seg(owner)}/${seg(name)}`);
  }

  /** A pipeline another user shared with you: its notebook and newest runs with metrics. */
  getSharedPipeline(owner: string, name: string): Promise<ISharedPipelineInfo> {
    return this.request(`shared/pipelines/${seg(owner)}/${seg(name)}`);
  }

  /** A schedule another user shared with you, by its id (`ISharedItem.id`). */
  getSharedSchedule(owner: string, id: string): Promise<ISharedScheduleInfo> {
    return this.request(`shared/schedules/${seg(owner)}/${seg(id)}`);
  }
}
