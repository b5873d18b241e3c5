/**
 * Test helpers: a fake server behind `fetch` (routes -> JSON answers, every call recorded),
 * a fake EventSource, and sample API objects shaped like the server's.
 */
import { ServerConnection } from '@jupyterlab/services';

import {
  IDescribeEndpoint,
  IDescribeModel,
  IDescribeModelVersion,
  IDescribePipeline,
  IDescribeRun,
  IDescribeSharedModel,
  IDescribeStepRun,
  IProjectInfo,
  ISharedEndpointInfo,
  ISharedPipelineInfo,
  ISharedScheduleInfo,
  MLPlatClient
} from '../api';
import { IEventSourceLike } from '../events';

export const BASE_URL = 'http://localhost:8888/';

export interface ICall {
  method: string;
  path: string;
  /** The path as sent (percent-encoded). */
  rawPath: string;
  query: Record<string, string>;
  body: any;
  headers: Headers;
}

export type Handler = (call: ICall) => {
  status?: number;
  json?: unknown;
  text?: string;
  contentType?: string;
};

/**
 * A fake jupyter server: `routes` maps "METHOD path" (path below mlplat/api/, no query) to an
 * answer or a function of the call. Unknown routes answer jupyter-server's HTML 404.
 */
export class FakeServer {
  readonly calls: ICall[] = [];
  routes: Record<string, Handler | { status?: number; json?: unknown; text?: string }> = {};

  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(request.url);
    const prefix = '/mlplat/api/';
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
    const text = request.method === 'GET' ? '' : await request.text();
    const call: ICall = {
      method: request.method,
      path: decodeURIComponent(path),
      rawPath: path,
      // Exactly what was sent: the server refuses unknown query parameters (a cache buster too).
      query: Object.fromEntries(url.searchParams.entries()),
      body: text ? JSON.parse(text) : null,
      headers: request.headers
    };
    this.calls.push(call);
    const route = this.routes[`${call.method} ${call.path}`];
    if (!route) {
      return new Response('<html><title>404: Not Found</title></html>', {
        status: 404,
        statusText: 'Not Found',
        headers: { 'Content-Type': 'text/html' }
      });
    }
    const answer = typeof route === 'function' ? route(call) : route;
    const status = answer.status ?? 200;
    if (answer.text !== undefined) {
      return new Response(answer.text, {
        status,
        headers: { 'Content-Type': (answer as any).contentType ?? 'text/plain; charset=UTF-8' }
      });
    }
    return new Response(status === 204 ? null : JSON.stringify(answer.json ?? null), {
      status,
      headers: { 'Content-Type': 'application/json' }
    });
  };

  settings(extra: Partial<ServerConnection.ISettings> = {}): ServerConnection.ISettings {
    return ServerConnection.makeSettings({
      baseUrl: BASE_URL,
      wsUrl: 'ws://localhost:8888/',
      token: 'secret-token',
      appendToken: false,
      fetch: this.fetch as any,
      ...extra
    });
  }

  client(): MLPlatClient {
    return new MLPlatClient(this.settings());
  }

  /** The calls to one route ("POST runs/abc/cancel"). */
  callsTo(route: string): ICall[] {
    return this.calls.filter(c => `${c.method} ${c.path}` === route);
  }
}

/** An EventSource the test drives: `open()`, `emit(type, data)`, `fail(closed)`. */
export class FakeEventSource implements IEventSourceLike {
  static instances: FakeEventSource[] = [];
  readyState = 0;
  onopen: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  closed = false;
  private listeners = new Map<string, Array<(event: MessageEvent) => void>>();

  constructor(
    readonly url: string,
    readonly init: EventSourceInit
  ) {
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, listener: (event: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }

  emit(type: string, data: unknown): void {
    const event = new MessageEvent(type, {
      data: typeof data === 'string' ? data : JSON.stringify(data)
    });
    for (const listener of this.listeners.get(type) ?? []) {
      listener(event);
    }
  }

  fail(closed: boolean): void {
    this.readyState = closed ? 2 : 0;
    this.onerror?.(new Event('error'));
  }
}

export function stepRun(
  name: string,
  status: IDescribeStepRun['status'],
  extra: Partial<IDescribeStepRun> = {}
): IDescribeStepRun {
  return {
    id: Math.floor(Math.random() * 1e6),
    name,
    status,
    attempt: 1,
    cached: status === 'cached',
    duration: status === 'succeeded' ? 1.5 : null,
    params: {},
    metrics: {},
    outputs: [],
    inputs: [],
    ...extra
  };
}

export function run(
  id: string,
  status: IDescribeRun['status'],
  extra: Partial<IDescribeRun> = {}
): IDescribeRun {
  return {
    id,
    owner: 'alice',
    pipeline: 'quickstart',
    notebook: 'quickstart.ipynb',
    pipeline_version: 'abc',
    status,
    parameters: {},
    options: {},
    host: 'h',
    pid: 1,
    created_at: '2026-03-01T10:00:00+00:00',
    params: {},
    metrics: {},
    steps: [],
    slices: [],
    models: [],
    ...extra
  };
}

export const PIPELINE: IDescribePipeline = {
  notebook: 'quickstart.ipynb',
  name: 'quickstart',
  steps: [
    {
      name: 'load',
      after: [],
      upstream: [],
      inputs: {},
      outputs: ['df'],
      params: ['seed'],
      gpus: 0,
      cache: true,
      cell_indexes: [4],
      cell_ids: ['c4'],
      cached: true
    },
    {
      name: 'split',
      after: [],
      upstream: ['load'],
      inputs: { df: 'load' },
      outputs: ['df_train'],
      params: [],
      gpus: 0,
      cache: true,
      cell_indexes: [5],
      cell_ids: ['c5'],
      cached: false
    },
    {
      name: 'train',
      after: ['load'],
      upstream: ['split', 'load'],
      inputs: { df_train: 'split' },
      outputs: ['model'],
      params: ['C'],
      gpus: 1,
      cache: true,
      cell_indexes: [6],
      cell_ids: ['c6'],
      cached: false
    }
  ],
  edges: [
    { source: 'load', target: 'split', names: ['df'], explicit: false },
    { source: 'split', target: 'train', names: ['df_train'], explicit: false },
    { source: 'load', target: 'train', names: [], explicit: true }
  ],
  parameters: [
    { name: 'n_rows', source: '4000', default: 4000, type_name: 'int' },
    { name: 'C', source: '1.0', default: 1.0, type_name: 'float' },
    { name: 'scale', source: 'True', default: true, type_name: 'bool' },
    { name: 'region', source: '"north"', default: 'north', type_name: 'str' },
    { name: 'cols', source: '["a", "b"]', default: ['a', 'b'], type_name: 'list' },
    { name: 'grid', source: 'np.arange(3)', default: null, type_name: 'NoneType' }
  ],
  errors: []
};

export function version(
  n: number,
  status: IDescribeModelVersion['verdict_status'],
  extra: Partial<IDescribeModelVersion> = {}
): IDescribeModelVersion {
  return {
    model: 'churn',
    version: n,
    flavor: 'sklearn',
    created_at: '2026-03-01T10:00:00+00:00',
    created_by: 'alice',
    aliases: [],
    signature: {},
    signature_text: '',
    artifact: {
      name: 'model',
      sha256: 'x',
      uri: 'u',
      format: 'skops',
      type_name: 'Pipeline',
      size: 1,
      trusted_only: false
    },
    trusted_only: false,
    cell_ids: [],
    input_artifacts: {},
    metrics: { roc_auc: 0.8 + n / 100 },
    slices: [],
    verdict:
      status === 'unvalidated'
        ? null
        : {
            status,
            summary:
              status === 'blessed'
                ? 'blessed: roc_auc 0.83 >= 0.8'
                : 'rejected: slice south 0.61 < 0.7',
            metric: 'roc_auc',
            higher_is_better: true,
            candidate: {},
            checks: [
              { name: 'min_value', status: 'passed', reason: 'roc_auc 0.83 >= 0.8' },
              ...(status === 'rejected'
                ? [
                    {
                      name: 'slice_floor',
                      status: 'failed' as const,
                      reason: 'slice south 0.61 < 0.7'
                    }
                  ]
                : [])
            ],
            policy: { metric: 'roc_auc', slice_floor: 0.7 }
          },
    verdict_status: status,
    overrides: [],
    ...extra
  };
}

export function modelWith(versions: IDescribeModelVersion[]): IDescribeModel {
  return {
    name: 'churn',
    versions,
    aliases: {},
    alias_history: [],
    policy: { metric: 'roc_auc', min_value: 0.8, slice_floor: 0.7 }
  };
}

export function endpoint(extra: Partial<IDescribeEndpoint> = {}): IDescribeEndpoint {
  return {
    name: 'churn',
    public: false,
    revision: 2,
    routes: [
      { model: 'churn', version: 1, weight: 90 },
      { model: 'churn', version: 2, weight: 10 }
    ],
    deployed: true,
    url: 'http://127.0.0.1:8500/endpoints/churn/invocations',
    curl: "curl -s http://127.0.0.1:8500/endpoints/churn/invocations -H 'Authorization: Bearer $MLPLAT_ENDPOINT_TOKEN' -d '{}'",
    revisions: [
      {
        revision: 1,
        action: 'deploy',
        routes: [{ model: 'churn', version: 1, weight: 100 }],
        public: false,
        forced: false,
        actor: 'alice',
        at: '2026-03-01T10:00:00+00:00'
      },
      {
        revision: 2,
        action: 'deploy',
        routes: [
          { model: 'churn', version: 1, weight: 90 },
          { model: 'churn', version: 2, weight: 10 }
        ],
        public: false,
        forced: false,
        actor: 'alice',
        at: '2026-03-01T11:00:00+00:00'
      }
    ],
    ...extra
  };
}

/** A project of `extra.owner` (default alice, the caller): its key is OWNER/NAME. */
export function project(name: string, extra: Partial<IProjectInfo> = {}): IProjectInfo {
  const owner = extra.owner ?? 'alice';
  return {
    key: `${owner}/${name}`,
    name,
    owner,
    hub_group: null,
    description: '',
    members: [],
    role: 'owner',
    created_at: '2026-03-01T10:00:00+00:00',
    shared: [],
    ...extra
  };
}

export function sharedModel(extra: Partial<IDescribeSharedModel> = {}): IDescribeSharedModel {
  return {
    owner: 'carol',
    name: 'scorer',
    version: 2,
    versions: [1, 2],
    aliases: { production: 1 },
    flavor: 'sklearn',
    format: 'skops',
    loadable: true,
    signature: {},
    created_at: '2026-03-01T10:00:00+00:00',
    ...extra
  };
}

/** dave's endpoint "fraud-api": a canary of v2 beside v1 with a shadow, after a first deploy. */
export function sharedEndpoint(extra: Partial<ISharedEndpointInfo> = {}): ISharedEndpointInfo {
  return {
    owner: 'dave',
    name: 'fraud-api',
    project: 'carol/risk',
    public: false,
    revisions: [
      {
        revision: 1,
        action: 'deploy',
        routes: [{ model: 'fraud', version: 1, weight: 100 }],
        public: false,
        forced: false,
        actor: 'dave',
        at: '2026-03-01T10:00:00+00:00'
      },
      {
        revision: 2,
        action: 'deploy',
        routes: [
          { model: 'fraud', version: 1, weight: 80 },
          { model: 'fraud', version: 2, weight: 20 }
        ],
        shadow: { model: 'fraud', version: 3, share: 0.5 },
        public: false,
        forced: true,
        reason: 'hotfix before the audit',
        actor: 'dave',
        at: '2026-03-02T09:30:00+00:00'
      }
    ],
    ...extra
  };
}

/** carol's pipeline "train": a finished run with metrics and a failed one after it. */
export function sharedPipeline(extra: Partial<ISharedPipelineInfo> = {}): ISharedPipelineInfo {
  return {
    owner: 'carol',
    name: 'train',
    path: 'work/train.ipynb',
    project: 'carol/risk',
    runs: [
      {
        id: 'bbbbbbbb-2222',
        status: 'failed',
        created_at: '2026-03-02T10:00:00+00:00',
        finished_at: '2026-03-02T10:00:05+00:00',
        parameters: { C: 0.1 },
        params: {},
        metrics: {}
      },
      {
        id: 'aaaaaaaa-1111',
        status: 'succeeded',
        created_at: '2026-03-01T10:00:00+00:00',
        finished_at: '2026-03-01T10:01:30+00:00',
        parameters: { C: 1.0 },
        params: { solver: 'lbfgs' },
        metrics: { auc: 0.8123456, loss: 0.25 }
      }
    ],
    ...extra
  };
}

/** carol's schedule "nightly" (id s-42): a pipeline on cron with two firings. */
export function sharedSchedule(extra: Partial<ISharedScheduleInfo> = {}): ISharedScheduleInfo {
  return {
    owner: 'carol',
    id: 's-42',
    name: 'nightly',
    target: 'pipeline',
    notebook_path: 'work/train.ipynb',
    cron: '0 3 * * *',
    timezone: 'Europe/Berlin',
    paused: false,
    next_fire_at: '2026-03-03T02:00:00+00:00',
    parameters: { C: 0.5 },
    project: 'carol/risk',
    firings: [
      {
        kind: 'cron',
        status: 'failed',
        slot_at: '2026-03-02T02:00:00+00:00',
        run_id: 'cccccccc-3333',
        finished_at: '2026-03-02T02:01:00+00:00'
      },
      {
        kind: 'manual',
        status: 'succeeded',
        slot_at: '2026-03-01T12:00:00+00:00',
        run_id: 'dddddddd-4444',
        finished_at: '2026-03-01T12:02:00+00:00'
      }
    ],
    ...extra
  };
}
