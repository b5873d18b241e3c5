/**
 * `MLPlatModel`: what the sidebar and the notebook tools share. Runs and endpoints kept live from
 * the event stream, the current notebook, its parsed pipeline, and requests to show a tab.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import {
  FINISHED_RUN,
  IDescribeEndpoint,
  IDescribePipeline,
  IDescribeRun,
  MLPlatClient
} from './api';
import { ConnectionState, MLPlatEvents } from './events';

/** The sidebar's tabs. */
export type SidebarTab =
  'pipeline' | 'runs' | 'models' | 'compare' | 'endpoints' | 'schedules' | 'shared';

export const SIDEBAR_TABS: ReadonlyArray<{ id: SidebarTab; label: string }> = [
  { id: 'pipeline', label: 'Pipeline' },
  { id: 'runs', label: 'Runs' },
  { id: 'models', label: 'Models' },
  { id: 'compare', label: 'Compare' },
  { id: 'endpoints', label: 'Endpoints' },
  { id: 'schedules', label: 'Schedules' },
  { id: 'shared', label: 'Shared' }
];

/** A request to show something in the sidebar. */
export interface IShowRequest {
  tab: SidebarTab;
  runId?: string;
  model?: string;
  endpoint?: string;
}

/** The pipeline of one notebook as the server parsed it, or why it could not. */
export interface IPipelineState {
  path: string;
  pipeline: IDescribePipeline | null;
  error: string | null;
}

/** User settings (`schema/plugin.json`). */
export interface IMLPlatSettings {
  runsLimit: number;
  notifyOnRunEnd: boolean;
  openSidebarOnRun: boolean;
}

export const DEFAULT_SETTINGS: IMLPlatSettings = {
  runsLimit: 50,
  notifyOnRunEnd: true,
  openSidebarOnRun: true
};

/** Whether a run will change no more. */
export function isFinished(run: Pick<IDescribeRun, 'status'>): boolean {
  return FINISHED_RUN.includes(run.status);
}

/**
 * `path` relative to `root` (both with `/`); `root` may start with `~` (the home folder,
 * unknown here: matched as a suffix of the path's folders). Unchanged when outside `root`.
 */
export function relativeTo(root: string, path: string): string {
  if (!root || !path.startsWith('/')) {
    return path;
  }
  if (root.startsWith('~')) {
    // The home folder is not known here: /root or /home/<user>, then the rest of the root.
    const home = /^(\/root|\/home\/[^/]+)(\/.*)$/.exec(path);
    return home ? relativeTo(home[1] + root.slice(1), path) : path;
  }
  if (root === '/') {
    return path.slice(1);
  }
  return path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path;
}

/** Newest first (by creation time, then id). */
function byNewest(a: IDescribeRun, b: IDescribeRun): number {
  return b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id);
}

export class MLPlatModel implements IDisposable {
  constructor(
    readonly client: MLPlatClient,
    readonly events: MLPlatEvents
  ) {
    events.runChanged.connect((_, run) => this.upsertRun(run), this);
    events.endpointChanged.connect((_, endpoint) => this.upsertEndpoint(endpoint), this);
    events.stateChanged.connect(this._onConnection, this);
  }

  // -- settings ----------------------------------------------------------------------------

  get settings(): IMLPlatSettings {
    return this._settings;
  }

  set settings(value: IMLPlatSettings) {
    this._settings = { ...DEFAULT_SETTINGS, ...value };
  }

  // -- runs --------------------------------------------------------------------------------

  /** Known runs, newest first. */
  get runs(): IDescribeRun[] {
    return [...this._runs.values()].sort(byNewest);
  }

  getRun(id: string): IDescribeRun | undefined {
    return this._runs.get(id);
  }

  get runsChanged(): ISignal<this, void> {
    return this._runsChanged;
  }

  /** A run reached a final status while this page watched it. */
  get runFinished(): ISignal<this, IDescribeRun> {
    return this._runFinished;
  }

  /** The last error of a list refresh, shown in the sidebar; null when it worked. */
  get loadError(): string | null {
    return this._loadError;
  }

  /** Add or replace a run (from an answer or an event). */
  upsertRun(run: IDescribeRun): void {
    const before = this._runs.get(run.id);
    this._runs.set(run.id, run);
    this._runsChanged.emit();
    if (isFinished(run) && (!before || !isFinished(before)) && this._watched.has(run.id)) {
      this._runFinished.emit(run);
    }
    if (!isFinished(run)) {
      this._watched.add(run.id);
    }
  }

  /** Reload the run list (newest `runsLimit` runs). */
  async refreshRuns(): Promise<void> {
    try {
      const { runs } = await this.client.listRuns({ limit: this._settings.runsLimit });
      const known = new Map(runs.map(run => [run.id, run]));
      for (const [id, run] of this._runs) {
        if (!known.has(id) && !isFinished(run)) {
          known.set(id, run); // newer than the list's window, still watched
        }
      }
      for (const run of known.values()) {
        if (!isFinished(run)) {
          this._watched.add(run.id);
        }
      }
      this._runs = known;
      this._loadError = null;
    } catch (error) {
      this._loadError = (error as Error).message;
    }
    this._runsChanged.emit();
  }

  /** Fetch one run and keep it. */
  async loadRun(id: string): Promise<IDescribeRun> {
    const run = await this.client.getRun(id);
    this.upsertRun(run);
    return run;
  }

  // -- endpoints ---------------------------------------------------------------------------

  get endpoints(): IDescribeEndpoint[] {
    return [...this._endpoints.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get endpointsChanged(): ISignal<this, void> {
    return this._endpointsChanged;
  }

  /** Add or replace an endpoint; an event `{"name", "deleted": true}` removes it. */
  upsertEndpoint(endpoint: IDescribeEndpoint | { name: string; deleted: true }): void {
    if ('deleted' in endpoint && endpoint.deleted) {
      this._endpoints.delete(endpoint.name);
    } else {
      this._endpoints.set(endpoint.name, endpoint as IDescribeEndpoint);
    }
    this._endpointsChanged.emit();
  }

  async refreshEndpoints(): Promise<void> {
    const { endpoints } = await this.client.listEndpoints();
    this._endpoints = new Map(endpoints.map(e => [e.name, e]));
    this._endpointsChanged.emit();
  }

  // -- paths -------------------------------------------------------------------------------

  /** The server's root folder (`PageConfig` `serverRoot`), to relate run paths to it. */
  get serverRoot(): string {
    return this._serverRoot;
  }

  set serverRoot(value: string) {
    this._serverRoot = value.replace(/\/+$/, '');
  }

  /**
   * A run's notebook (recorded as an absolute path) relative to the server root, as JupyterLab
   * names files; the path unchanged when it lies elsewhere (a run started from another folder).
   */
  relativeNotebook(path: string): string {
    return relativeTo(this._serverRoot, path);
  }

  // -- the current notebook and its pipeline -----------------------------------------------

  /** The server-relative path of the notebook in focus, or null. */
  get currentNotebook(): string | null {
    return this._currentNotebook;
  }

  set currentNotebook(path: string | null) {
    if (path !== this._currentNotebook) {
      this._currentNotebook = path;
      this._currentNotebookChanged.emit(path);
    }
  }

  get currentNotebookChanged(): ISignal<this, string | null> {
    return this._currentNotebookChanged;
  }

  /** The last parse of a notebook, if any. */
  pipelineState(path: string): IPipelineState | undefined {
    return this._pipelines.get(path);
  }

  get pipelineChanged(): ISignal<this, IPipelineState> {
    return this._pipelineChanged;
  }

  /**
   * Ask the server to parse a notebook (as saved on disk); keeps and announces the answer.
   *
   * A notebook with errors in its marks still answers (with `errors`); a refused request
   * (not a notebook, outside the root) is kept as `error`.
   */
  async parsePipeline(path: string): Promise<IPipelineState> {
    let state: IPipelineState;
    try {
      const pipeline = await this.client.describePipeline(path);
      state = { path, pipeline, error: null };
    } catch (error) {
      state = { path, pipeline: null, error: (error as Error).message };
    }
    this._pipelines.set(path, state);
    this._pipelineChanged.emit(state);
    return state;
  }

  // -- the sidebar -------------------------------------------------------------------------

  get showRequested(): ISignal<this, IShowRequest> {
    return this._showRequested;
  }

  /** Ask the sidebar to show a tab (and a run, model or endpoint in it). */
  show(request: IShowRequest): void {
    this._lastShowRequest = request;
    this._showRequested.emit(request);
  }

  /** The latest request, for a sidebar that renders after it was made. */
  get lastShowRequest(): IShowRequest | null {
    return this._lastShowRequest;
  }

  // -- lifecycle ---------------------------------------------------------------------------

  /** Load the lists and open the event stream. */
  start(): void {
    void this.refreshRuns();
    void this.refreshEndpoints().catch(() => undefined);
    this.events.start();
  }

  get connection(): ConnectionState {
    return this.events.state;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.events.dispose();
    Signal.clearData(this);
  }

  private _onConnection(_: MLPlatEvents, state: ConnectionState): void {
    if (state === 'open') {
      if (this._opened) {
        // A reconnection: events may have been missed while the stream was down.
        void this.refreshRuns();
        void this.refreshEndpoints().catch(() => undefined);
      }
      this._opened = true;
    }
    this._runsChanged.emit(); // the sidebar shows the connection state
  }

  private _settings: IMLPlatSettings = { ...DEFAULT_SETTINGS };
  private _runs = new Map<string, IDescribeRun>();
  private _watched = new Set<string>();
  private _endpoints = new Map<string, IDescribeEndpoint>();
  private _pipelines = new Map<string, IPipelineState>();
  private _currentNotebook: string | null = null;
  private _serverRoot = '';
  private _loadError: string | null = null;
  private _opened = false;
  private _lastShowRequest: IShowRequest | null = null;
  private _isDisposed = false;
  private _runsChanged = new Signal<this, void>(this);
  private _runFinished = new Signal<this, IDescribeRun>(this);
  private _endpointsChanged = new Signal<this, void>(this);
  private _currentNotebookChanged = new Signal<this, string | null>(this);
  private _pipelineChanged = new Signal<this, IPipelineState>(this);
  private _showRequested = new Signal<this, IShowRequest>(this);
}
