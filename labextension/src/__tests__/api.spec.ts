import { FakeServer } from './fixtures';

describe('MLPlatClient', () => {
  const server = new FakeServer();
  const client = server.client();

  beforeEach(() => {
    server.calls.length = 0;
    server.routes = {};
  });

  // Each client method against the route and verb of docs/rest-api.md.
  const cases: Array<[string, () => Promise<unknown>, string, Record<string, string>?, unknown?]> =
    [
      [
        'describePipeline',
        () => client.describePipeline('dir/q.ipynb'),
        'GET pipelines',
        { notebook: 'dir/q.ipynb' }
      ],
      [
        'createRun',
        () => client.createRun({ notebook: 'q.ipynb', parameters: { C: 0.5 } }),
        'POST runs',
        {},
        { notebook: 'q.ipynb', parameters: { C: 0.5 } }
      ],
      ['listRuns', () => client.listRuns({ limit: 3 }), 'GET runs', { limit: '3' }],
      ['getRun', () => client.getRun('ab/c'), 'GET runs/ab/c'],
      ['cancelRun', () => client.cancelRun('r1'), 'POST runs/r1/cancel'],
      ['resumeRun', () => client.resumeRun('r1'), 'POST runs/r1/resume'],
      [
        'rerunStep',
        () => client.rerunStep('r1', { step: 'train', mode: 'from' }),
        'POST runs/r1/rerun',
        {},
        { step: 'train', mode: 'from' }
      ],
      ['runMetrics', () => client.runMetrics('r1'), 'GET runs/r1/metrics'],
      [
        'stepNotebook',
        () => client.stepNotebook('r1', 'train'),
        'GET runs/r1/steps/train/notebook'
      ],
      ['compareRuns', () => client.compareRuns(['r1', 'r2']), 'GET compare', { runs: 'r1,r2' }],
      ['listModels', () => client.listModels(), 'GET models'],
      ['getModel', () => client.getModel('churn'), 'GET models/churn'],
      [
        'getModelVersion',
        () => client.getModelVersion('churn', 'production'),
        'GET models/churn/versions/production'
      ],
      ['lineage', () => client.lineage('churn', 3), 'GET models/churn/versions/3/lineage'],
      [
        'setAlias',
        () => client.setAlias('churn', 'production', { version: 3, reason: 'ok' }),
        'PUT models/churn/aliases/production',
        {},
        { version: 3, reason: 'ok' }
      ],
      [
        'deleteAlias',
        () => client.deleteAlias('churn', 'staging'),
        'DELETE models/churn/aliases/staging'
      ],
      ['listEndpoints', () => client.listEndpoints(), 'GET endpoints'],
      [
        'deploy',
        () => client.deploy({ model: 'churn', version: 2, canary: 10 }),
        'POST endpoints',
        {},
        { model: 'churn', version: 2, canary: 10 }
      ],
      ['getEndpoint', () => client.getEndpoint('churn'), 'GET endpoints/churn'],
      [
        'setTraffic',
        () => client.setTraffic('churn', { traffic: { 'churn@1': 50, 'churn@2': 50 } }),
        'PUT endpoints/churn/traffic',
        {},
        { traffic: { 'churn@1': 50, 'churn@2': 50 } }
      ],
      ['rollback', () => client.rollback('churn'), 'POST endpoints/churn/rollback'],
      ['undeploy', () => client.undeploy('churn'), 'DELETE endpoints/churn'],
      ['tryEndpoint', () => client.tryEndpoint('churn'), 'POST endpoints/churn/try', {}, {}],
      ['rotateToken', () => client.rotateToken('churn'), 'POST endpoints/churn/token'],
      ['listSchedules', () => client.listSchedules(), 'GET schedules'],
      [
        'createSchedule',
        () => client.createSchedule({ notebook: 'q.ipynb', cron: '0 3 * * *' }),
        'POST schedules',
        {},
        { notebook: 'q.ipynb', cron: '0 3 * * *' }
      ],
      ['pauseSchedule', () => client.pauseSchedule('s1'), 'POST schedules/s1/pause'],
      ['resumeSchedule', () => client.resumeSchedule('s1'), 'POST schedules/s1/resume'],
      ['runSchedule', () => client.runSchedule('s1'), 'POST schedules/s1/run'],
      ['deleteSchedule', () => client.deleteSchedule('s1'), 'DELETE schedules/s1'],
      [
        'updateSchedule',
        () => client.updateSchedule('s1', { cron: '@daily' }),
        'PATCH schedules/s1',
        {},
        { cron: '@daily' }
      ]
    ];

  it.each(cases)('%s calls %s', async (_, call, route, query = {}, body = null) => {
    server.routes[route] = { json: { ok: true } };
    await expect(call()).resolves.toEqual({ ok: true });
    expect(server.calls).toHaveLength(1);
    expect(`${server.calls[0].method} ${server.calls[0].path}`).toBe(route);
    expect(server.calls[0].query).toEqual(query);
    expect(server.calls[0].body).toEqual(body);
  });

  it('encodes path segments', async () => {
    server.routes['GET runs/ab/c'] = { json: {} };
    await client.getRun('ab/c');
    expect(server.calls[0].rawPath).toBe('runs/ab%2Fc');
    server.routes['GET models/a b'] = { json: {} };
    await client.getModel('a b');
    expect(server.calls[1].rawPath).toBe('models/a%20b');
  });

  it('reads a step log as text', async () => {
    server.routes['GET runs/r1/steps/train/log'] = { text: 'accuracy 0.9\n' };
    await expect(client.stepLog('r1', 'train')).resolves.toBe('accuracy 0.9\n');
  });
});
