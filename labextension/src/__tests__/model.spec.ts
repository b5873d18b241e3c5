import { MLPlatEvents } from '../events';
import { MLPlatModel } from '../model';
import { endpoint, FakeEventSource, FakeServer, run, stepRun } from './fixtures';

function flush(): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 0));
}

describe('MLPlatModel', () => {
  let server: FakeServer;
  let model: MLPlatModel;

  beforeEach(() => {
    FakeEventSource.instances = [];
    server = new FakeServer();
    server.routes['GET runs'] = {
      json: {
        runs: [
          run('old', 'succeeded', { created_at: '2026-03-01T09:00:00+00:00' }),
          run('new', 'running', { created_at: '2026-03-01T11:00:00+00:00' })
        ]
      }
    };
    server.routes['GET endpoints'] = { json: { endpoints: [] } };
    const settings = server.settings();
    model = new MLPlatModel(
      server.client(),
      new MLPlatEvents({ serverSettings: settings, factory: (u, i) => new FakeEventSource(u, i) })
    );
  });
  afterEach(() => model.dispose());

  it('lists runs newest first and keeps them live from events', async () => {
    model.start();
    await flush();
    expect(model.runs.map(r => r.id)).toEqual(['new', 'old']);
    expect(server.callsTo('GET runs')[0].query).toEqual({ limit: '50' });
    const finished: string[] = [];
    model.runFinished.connect((_, r) => finished.push(`${r.id}:${r.status}`));
    const source = FakeEventSource.instances[0];
    source.open();
    source.emit('run', run('new', 'running', { steps: [stepRun('load', 'succeeded')] }));
    expect(model.getRun('new')?.steps).toHaveLength(1);
    source.emit('run', run('new', 'failed'));
    source.emit('run', run('new', 'failed')); // announced once
    source.emit('run', run('old', 'succeeded')); // was never watched running: not announced
    expect(finished).toEqual(['new:failed']);
  });

  it('refreshes the lists after the stream reconnects, not on the first open', async () => {
    model.start();
    await flush();
    const source = FakeEventSource.instances[0];
    source.open();
    await flush();
    expect(server.callsTo('GET runs')).toHaveLength(1);
    source.fail(false);
    source.open();
    await flush();
    expect(server.callsTo('GET runs')).toHaveLength(2);
    expect(server.callsTo('GET endpoints')).toHaveLength(2);
  });

  it('keeps the error of a failed refresh for the sidebar', async () => {
    server.routes['GET runs'] = { status: 500, json: { message: 'database is locked' } };
    await model.refreshRuns();
    expect(model.loadError).toBe('database is locked');
  });

  it('parses a notebook and announces the answer, or the refusal', async () => {
    server.routes['GET pipelines'] = call =>
      call.query.notebook === 'ok.ipynb'
        ? {
            json: {
              notebook: 'ok.ipynb',
              name: 'ok',
              steps: [],
              edges: [],
              parameters: [],
              errors: []
            }
          }
        : { status: 400, json: { message: 'notebook path ../x.ipynb is outside the server root' } };
    const seen: string[] = [];
    model.pipelineChanged.connect((_, state) => seen.push(state.path));
    const ok = await model.parsePipeline('ok.ipynb');
    expect(ok.pipeline?.name).toBe('ok');
    const bad = await model.parsePipeline('../x.ipynb');
    expect(bad.error).toBe('notebook path ../x.ipynb is outside the server root');
    expect(model.pipelineState('ok.ipynb')).toBe(ok);
    expect(seen).toEqual(['ok.ipynb', '../x.ipynb']);
  });

  it('keeps endpoints live, and drops a deleted one', async () => {
    model.start();
    const source = FakeEventSource.instances[0];
    source.open();
    source.emit('endpoint', endpoint());
    source.emit('endpoint', endpoint({ name: 'other' }));
    expect(model.endpoints.map(e => e.name)).toEqual(['churn', 'other']);
    source.emit('endpoint', { name: 'churn', deleted: true });
    expect(model.endpoints.map(e => e.name)).toEqual(['other']);
  });

  it('remembers the last show request for a sidebar drawn later', () => {
    const seen: string[] = [];
    model.showRequested.connect((_, r) => seen.push(r.tab));
    model.show({ tab: 'runs', runId: 'new' });
    expect(seen).toEqual(['runs']);
    expect(model.lastShowRequest).toEqual({ tab: 'runs', runId: 'new' });
  });
});
