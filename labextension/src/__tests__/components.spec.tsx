import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { VEGALITE_MIME } from '../charts';
import { IMLPlatContext, MLPlatContext } from '../components/context';
import { SidebarView } from '../components/sidebar';
import { MLPlatEvents } from '../events';
import { MLPlatModel } from '../model';
import {
  endpoint,
  FakeEventSource,
  FakeServer,
  modelWith,
  PIPELINE,
  run,
  stepRun,
  version
} from './fixtures';

// React Flow measures its container.
class ResizeObserverStub {
  observe(): void {}
  unobserve(): void {}
  disconnect(): void {}
}
(globalThis as any).ResizeObserver = ResizeObserverStub;

/** A renderer like JupyterLab's: a Lumino widget that records what it was asked to draw. */
class FakeRenderer extends Widget {
  constructor(private readonly _rendered: unknown[]) {
    super();
  }

  async renderModel(model: any): Promise<void> {
    this._rendered.push(model.data[VEGALITE_MIME]);
    this.node.textContent = 'chart';
  }
}

/** A rendermime registry that records what it was asked to render. */
function fakeRendermime(rendered: unknown[]): any {
  return {
    preferredMimeType: (bundle: Record<string, unknown>) =>
      VEGALITE_MIME in bundle ? VEGALITE_MIME : undefined,
    createRenderer: () => new FakeRenderer(rendered)
  };
}

function setup(routes: FakeServer['routes'] = {}) {
  FakeEventSource.instances = [];
  const server = new FakeServer();
  server.routes = {
    'GET runs': { json: { runs: [] } },
    'GET endpoints': { json: { endpoints: [] } },
    ...routes
  };
  const model = new MLPlatModel(
    server.client(),
    new MLPlatEvents({
      serverSettings: server.settings(),
      factory: (u, i) => new FakeEventSource(u, i)
    })
  );
  const rendered: unknown[] = [];
  const opened: string[] = [];
  const executed: string[] = [];
  const context: IMLPlatContext = {
    model,
    rendermime: fakeRendermime(rendered),
    openStepNotebook: (runId, step) => opened.push(`${runId}/${step}`),
    openPath: path => opened.push(path),
    execute: command => executed.push(command)
  };
  const view = render(
    <MLPlatContext.Provider value={context}>
      <SidebarView />
    </MLPlatContext.Provider>
  );
  return { server, model, rendered, opened, executed, view };
}

describe('the sidebar', () => {
  it('Pipeline: draws the DAG of the current notebook with what would be cached', async () => {
    const { model, server, executed } = setup({ 'GET pipelines': { json: PIPELINE } });
    act(() => {
      model.currentNotebook = 'quickstart.ipynb';
    });
    await screen.findByText('Run pipeline');
    await waitFor(() => expect(document.querySelectorAll('.jp-mlplat-dag-node')).toHaveLength(3));
    expect(server.callsTo('GET pipelines')[0].query).toEqual({ notebook: 'quickstart.ipynb' });
    const load = document.querySelector('.jp-mlplat-dag-node[data-step="load"]')!;
    expect(load.getAttribute('data-status')).toBe('cached');
    expect(document.querySelector('li[data-step="split"]')!.textContent).toContain(
      'reads df from load · writes df_train'
    );
    expect(document.querySelector('li[data-step="train"]')!.textContent).toContain('1 GPU');
    fireEvent.click(screen.getByText('Run pipeline'));
    await waitFor(() => expect(executed).toEqual(['mlplat:run-pipeline']));
  });

  it('Pipeline: shows parse errors', async () => {
    const { model } = setup({
      'GET pipelines': {
        json: {
          ...PIPELINE,
          steps: [],
          edges: [],
          errors: [{ message: 'cell 4 ("y = z"): name z is not defined', cell_index: 4 }]
        }
      }
    });
    act(() => {
      model.currentNotebook = 'quickstart.ipynb';
    });
    expect(await screen.findByText(/name z is not defined/)).toBeTruthy();
  });

  it('Runs: live status from events, step actions and cancel', async () => {
    const first = run('r1aaaaaaaa', 'running', {
      steps: [stepRun('load', 'succeeded'), stepRun('train', 'running')]
    });
    const { model, server, opened } = setup({
      'GET runs': { json: { runs: [first] } },
      'GET runs/r1aaaaaaaa/metrics': {
        json: {
          run_id: 'r1aaaaaaaa',
          metrics: [
            { name: 'loss', value: 1, step: 0 },
            { name: 'loss', value: 0.5, step: 1 }
          ]
        }
      },
      'POST runs/r1aaaaaaaa/cancel': { json: run('r1aaaaaaaa', 'cancelled') },
      'GET pipelines': { json: PIPELINE },
      'GET runs/r1aaaaaaaa/steps/load/log': { text: 'loaded 4000 rows\n' }
    });
    model.start();
    fireEvent.click(screen.getByText('Runs'));
    const row = await screen.findByText('r1aaaaaa');
    fireEvent.click(row);
    const detail = await screen.findByLabelText('run r1aaaaaaaa');
    expect(within(detail).getAllByText('running').length).toBeGreaterThan(0);

    // a pushed event updates the run in place
    act(() => {
      FakeEventSource.instances[0].open();
      FakeEventSource.instances[0].emit(
        'run',
        run('r1aaaaaaaa', 'running', {
          steps: [
            stepRun('load', 'succeeded'),
            stepRun('train', 'failed', { ename: 'ValueError', evalue: 'bad C' })
          ]
        })
      );
    });
    expect(await within(detail).findByText('ValueError: bad C')).toBeTruthy();

    fireEvent.click(detail.querySelector('tr[data-step="load"]')!);
    expect(await within(detail).findByText('loaded 4000 rows')).toBeTruthy();
    fireEvent.click(within(detail).getByText('Executed notebook'));
    expect(opened).toEqual(['r1aaaaaaaa/load']);

    await waitFor(() => expect(document.querySelector('.jp-mlplat-chart')).not.toBeNull());

    fireEvent.click(within(detail).getByText('Cancel'));
    await waitFor(() => expect(server.callsTo('POST runs/r1aaaaaaaa/cancel')).toHaveLength(1));
    await waitFor(() =>
      expect(document.querySelector('li[data-run="r1aaaaaaaa"]')!.getAttribute('data-status')).toBe(
        'cancelled'
      )
    );
  });

  it('Compare: parameters and metrics side by side, differences marked, on one chart', async () => {
    const { model, rendered } = setup({
      'GET runs': {
        json: { runs: [run('aaaaaaaa1', 'succeeded'), run('bbbbbbbb2', 'succeeded')] }
      },
      'GET compare': {
        json: {
          runs: ['aaaaaaaa1', 'bbbbbbbb2'],
          pipelines: {},
          params: { C: { aaaaaaaa1: 1, bbbbbbbb2: 0.5 }, seed: { aaaaaaaa1: 7, bbbbbbbb2: 7 } },
          metrics: { roc_auc: { aaaaaaaa1: 0.8, bbbbbbbb2: 0.83 } },
          differs: ['param.C', 'metric.roc_auc']
        }
      },
      'GET runs/aaaaaaaa1/metrics': {
        json: { run_id: 'aaaaaaaa1', metrics: [{ name: 'roc_auc', value: 0.8 }] }
      },
      'GET runs/bbbbbbbb2/metrics': {
        json: { run_id: 'bbbbbbbb2', metrics: [{ name: 'roc_auc', value: 0.83 }] }
      }
    });
    await model.refreshRuns();
    fireEvent.click(screen.getByText('Compare'));
    const boxes = await screen.findAllByRole('checkbox');
    fireEvent.click(boxes[0]);
    fireEvent.click(boxes[1]);
    fireEvent.click(screen.getByText('Compare 2'));
    const table = await screen.findByRole('table');
    expect(table.querySelector('tr[data-key="param.C"]')!.className).toBe('jp-mlplat-differs');
    expect(table.querySelector('tr[data-key="param.seed"]')!.className).toBe('');
    await waitFor(() => expect(rendered).toHaveLength(1));
    expect((rendered[0] as any).data.values).toEqual([
      { run: 'aaaaaaaa', metric: 'roc_auc', value: 0.8 },
      { run: 'bbbbbbbb', metric: 'roc_auc', value: 0.83 }
    ]);
  });

  it('Models: versions, the verdict with its reasons, slices against the floor', async () => {
    const v2 = version(2, 'rejected', {
      slices: [
        { metric: 'roc_auc', by: 'region', slice: 'north', value: 0.82, count: 400 },
        { metric: 'roc_auc', by: 'region', slice: 'south', value: 0.61, count: 300 }
      ]
    });
    const { rendered } = setup({
      'GET models': {
        json: {
          models: [
            {
              name: 'churn',
              versions: 2,
              latest: 2,
              latest_verdict: 'rejected',
              aliases: { production: 1 },
              created_at: '2026-03-01T10:00:00Z'
            }
          ]
        }
      },
      'GET models/churn': { json: modelWith([version(1, 'blessed'), v2]) }
    });
    fireEvent.click(screen.getByText('Models'));
    fireEvent.click(await screen.findByText('churn'));
    expect(await screen.findByText('slice south 0.61 < 0.7')).toBeTruthy();
    expect(screen.getByText('Slices: roc_auc (floor 0.7)')).toBeTruthy();
    await waitFor(() => expect(rendered).toHaveLength(1));
    expect((rendered[0] as any).layer[1].data.values).toEqual([{ floor: 0.7 }]);
    // leaving the tab unmounts the chart: its widget is detached, the sidebar stays
    fireEvent.click(screen.getByText('Compare'));
    expect(await screen.findByText('Pick two or more runs.')).toBeTruthy();
  });

  it('Endpoints: URL, curl, Try it and the traffic split', async () => {
    const { server } = setup({
      'GET endpoints': { json: { endpoints: [endpoint({ revisions: [] })] } },
      'GET endpoints/churn': { json: endpoint() },
      'POST endpoints/churn/try': {
        json: {
          endpoint: 'churn',
          url: 'u',
          status: 200,
          ok: true,
          model_version: 'churn@1',
          request: { inputs: [] },
          response: { predictions: [0, 1] },
          duration_ms: 4,
          curl: 'c'
        }
      },
      'PUT endpoints/churn/traffic': call => ({
        json: endpoint({
          routes: [
            { model: 'churn', version: 1, weight: 50 },
            { model: 'churn', version: 2, weight: 50 }
          ],
          revision: 3
        }),
        status: call.body ? 200 : 400
      })
    });
    fireEvent.click(screen.getByText('Endpoints'));
    fireEvent.click(await screen.findByText('churn'));
    expect(screen.getByText('http://127.0.0.1:8500/endpoints/churn/invocations')).toBeTruthy();
    // the revisions come with the endpoint itself
    await waitFor(() => expect(document.querySelectorAll('tr[data-revision]')).toHaveLength(2));
    expect(screen.getByText(/curl -s/)).toBeTruthy();
    fireEvent.click(screen.getByText('Try it'));
    expect(await screen.findByText(/"predictions"/)).toBeTruthy();
    expect(screen.getByText(/from churn@1/)).toBeTruthy();

    const [first] = screen.getAllByRole('spinbutton');
    fireEvent.change(first, { target: { value: '60' } });
    expect(screen.getByText('The weights add up to 70%; they must add up to 100%.')).toBeTruthy();
    const second = screen.getAllByRole('spinbutton')[1];
    fireEvent.change(second, { target: { value: '40' } });
    fireEvent.click(screen.getByText('Apply split'));
    await waitFor(() => expect(server.callsTo('PUT endpoints/churn/traffic')).toHaveLength(1));
    expect(server.callsTo('PUT endpoints/churn/traffic')[0].body).toEqual({
      traffic: { 'churn@1': 60, 'churn@2': 40 }
    });
  });

  it('Schedules: says when the server has no scheduler', async () => {
    setup();
    fireEvent.click(screen.getByText('Schedules'));
    expect(await screen.findByText(/This server has no scheduler/)).toBeTruthy();
  });

  it('Schedules: lists, shows history and runs one now', async () => {
    const schedule = {
      id: 's1',
      name: 'nightly',
      owner: 'alice',
      target: 'pipeline',
      notebook: 'q.ipynb',
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      parameters: { C: 0.5 },
      on_success: { deploy_if_blessed: { model: 'churn' } },
      notify: {},
      missed: 'latest',
      paused: false,
      deleted: false,
      next_fire_at: '2026-03-02T03:00:00+01:00',
      next_fire_times: ['2026-03-02T03:00:00+01:00'],
      history: [
        {
          id: 1,
          schedule_id: 's1',
          kind: 'cron',
          status: 'succeeded',
          slot_at: '2026-03-01T03:00:00+01:00',
          missed_slots: 0,
          run_id: 'runrun123',
          parameters: {},
          notifications: [],
          created_at: '2026-03-01T02:00:00Z'
        }
      ],
      created_at: '2026-03-01T00:00:00Z',
      updated_at: '2026-03-01T00:00:00Z'
    };
    const { server } = setup({
      'GET schedules': { json: { schedules: [schedule] } },
      'GET schedules/s1': { json: schedule },
      'POST schedules/s1/run': { status: 202, json: {} }
    });
    fireEvent.click(screen.getByText('Schedules'));
    fireEvent.click(await screen.findByText('nightly'));
    expect(await screen.findByText('run runrun12')).toBeTruthy();
    expect(screen.getByText(/deploy churn to churn if/)).toBeTruthy();
    fireEvent.click(screen.getByText('Run now'));
    await waitFor(() => expect(server.callsTo('POST schedules/s1/run')).toHaveLength(1));
  });
});
