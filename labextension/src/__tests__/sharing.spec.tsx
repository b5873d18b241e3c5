/**
 * Projects and sharing: the client's routes, the Shared tab (projects, what others shared, a
 * shared model's load line or why it cannot be loaded, a shared endpoint's routes and revisions,
 * a shared pipeline's runs, a shared schedule's firings, empty states, errors), the "New project"
 * dialog and "Share…" on a model in the Models tab.
 */
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import * as React from 'react';

import { IMLPlatContext, MLPlatContext } from '../components/context';
import { formatTime } from '../components/common';
import { currentRevision, describeRoutes, runDuration } from '../components/shared-detail';
import { buildCreateProject, loadSnippet, parseMembers } from '../components/shared-panel';
import { SidebarView } from '../components/sidebar';
import { MLPlatEvents } from '../events';
import { MLPlatModel } from '../model';
import {
  FakeEventSource,
  FakeServer,
  modelWith,
  project,
  sharedEndpoint,
  sharedModel,
  sharedPipeline,
  sharedSchedule,
  version
} from './fixtures';

describe('MLPlatClient: projects and sharing', () => {
  const server = new FakeServer();
  const client = server.client();

  beforeEach(() => {
    server.calls.length = 0;
    server.routes = {};
  });

  const cases: Array<[string, () => Promise<unknown>, string, Record<string, string>?, unknown?]> =
    [
      ['listProjects', () => client.listProjects(), 'GET projects'],
      [
        'createProject',
        () => client.createProject({ name: 'fraud', hub_group: 'ml-team' }),
        'POST projects',
        {},
        { name: 'fraud', hub_group: 'ml-team' }
      ],
      ['getProject', () => client.getProject('carol', 'fraud'), 'GET projects/carol/fraud'],
      [
        'deleteProject',
        () => client.deleteProject('alice', 'fraud'),
        'DELETE projects/alice/fraud'
      ],
      [
        'addProjectMember',
        () => client.addProjectMember('alice', 'fraud', 'bob'),
        'PUT projects/alice/fraud/members/bob'
      ],
      [
        'removeProjectMember',
        () => client.removeProjectMember('alice', 'fraud', 'bob'),
        'DELETE projects/alice/fraud/members/bob'
      ],
      [
        'removeProjectMember (leave)',
        () => client.removeProjectMember('carol', 'risk', 'alice'),
        'DELETE projects/carol/risk/members/alice'
      ],
      [
        'share (by key)',
        () => client.share('model', 'churn', 'carol/risk'),
        'PUT shares/model/churn',
        {},
        { project: 'carol/risk' }
      ],
      [
        'share (a project of yours by name)',
        () => client.share('model', 'churn', 'fraud'),
        'PUT shares/model/churn',
        {},
        { project: 'fraud' }
      ],
      ['unshare', () => client.unshare('endpoint', 'churn'), 'DELETE shares/endpoint/churn'],
      ['listShared', () => client.listShared(), 'GET shared'],
      [
        'listShared (kind, mine)',
        () => client.listShared({ kind: 'model', mine: true }),
        'GET shared',
        { kind: 'model', mine: 'true' }
      ],
      ['listShared (mine false)', () => client.listShared({ mine: false }), 'GET shared'],
      [
        'getSharedModel',
        () => client.getSharedModel('carol', 'scorer'),
        'GET shared/models/carol/scorer'
      ],
      [
        'getSharedModel (alias)',
        () => client.getSharedModel('carol', 'scorer', 'production'),
        'GET shared/models/carol/scorer',
        { version: 'production' }
      ],
      [
        'getSharedModel (number)',
        () => client.getSharedModel('carol', 'scorer', 3),
        'GET shared/models/carol/scorer',
        { version: '3' }
      ],
      [
        'getSharedEndpoint',
        () => client.getSharedEndpoint('dave', 'fraud-api'),
        'GET shared/endpoints/dave/fraud-api'
      ],
      [
        'getSharedPipeline',
        () => client.getSharedPipeline('carol', 'train'),
        'GET shared/pipelines/carol/train'
      ],
      [
        'getSharedSchedule',
        () => client.getSharedSchedule('carol', 's-42'),
        'GET shared/schedules/carol/s-42'
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
    server.routes['PUT projects/o b/a#b/members/x/y'] = { json: {} };
    await client.addProjectMember('o b', 'a#b', 'x/y');
    expect(server.calls[0].rawPath).toBe('projects/o%20b/a%23b/members/x%2Fy');
    server.routes['GET shared/models/o?/n#1'] = { json: {} };
    await client.getSharedModel('o?', 'n#1');
    expect(server.calls[1].rawPath).toBe('shared/models/o%3F/n%231');
    server.routes['PUT shares/pipeline/dir/q.ipynb'] = { json: {} };
    await client.share('pipeline', 'dir/q.ipynb', 'p');
    expect(server.calls[2].rawPath).toBe('shares/pipeline/dir%2Fq.ipynb');
  });

  it('keeps owner and name two segments, whatever they hold', async () => {
    server.routes['GET projects/a/b/c'] = { json: {} };
    server.routes['DELETE projects/a/b/c'] = { json: { deleted: 'a/b/c', unshared: 0 } };
    server.routes['DELETE projects/a/b/c/members/d'] = { json: {} };
    await client.getProject('a/b', 'c');
    await client.deleteProject('a', 'b/c');
    await client.removeProjectMember('a', 'b/c', 'd');
    expect(server.calls.map(c => c.rawPath)).toEqual([
      'projects/a%2Fb/c',
      'projects/a/b%2Fc',
      'projects/a/b%2Fc/members/d'
    ]);
  });

  it("answers a project delete with the project's key and what became private", async () => {
    server.routes['DELETE projects/alice/fraud'] = {
      json: { deleted: 'alice/fraud', unshared: 3 }
    };
    await expect(client.deleteProject('alice', 'fraud')).resolves.toEqual({
      deleted: 'alice/fraud',
      unshared: 3
    });
  });

  it('encodes the segments of shared endpoints, pipelines and schedules', async () => {
    server.routes['GET shared/endpoints/o?/a b'] = { json: {} };
    await client.getSharedEndpoint('o?', 'a b');
    server.routes['GET shared/pipelines/o/dir/q.ipynb'] = { json: {} };
    await client.getSharedPipeline('o', 'dir/q.ipynb');
    server.routes['GET shared/schedules/o#/1/2'] = { json: {} };
    await client.getSharedSchedule('o#', '1/2');
    expect(server.calls.map(c => c.rawPath)).toEqual([
      'shared/endpoints/o%3F/a%20b',
      'shared/pipelines/o/dir%2Fq.ipynb',
      'shared/schedules/o%23/1%2F2'
    ]);
  });

  it("rejects with the server's message", async () => {
    server.routes['POST projects'] = {
      status: 409,
      json: { message: "a project named 'fraud' exists already; choose another name" }
    };
    await expect(client.createProject({ name: 'fraud' })).rejects.toThrow(
      "a project named 'fraud' exists already; choose another name"
    );
  });
});

describe('the New project form', () => {
  const values = { name: 'fraud', members: '', hubGroup: '', description: '' };

  it('splits members on commas, trims, drops blanks and repeats', () => {
    expect(parseMembers(' bob, carol ,,bob ,')).toEqual(['bob', 'carol']);
    expect(parseMembers('')).toEqual([]);
  });

  it('builds the body with the first members', () => {
    expect(
      buildCreateProject({
        name: ' fraud ',
        members: 'bob, carol',
        hubGroup: ' ml-team ',
        description: ' fraud detection '
      })
    ).toEqual({
      body: {
        name: 'fraud',
        hub_group: 'ml-team',
        description: 'fraud detection',
        members: ['bob', 'carol']
      },
      members: ['bob', 'carol'],
      problems: []
    });
    expect(buildCreateProject(values).body).toEqual({ name: 'fraud' });
  });

  it('says what is wrong, as the server would', () => {
    expect(buildCreateProject({ ...values, name: '' }).problems).toEqual([
      'Give the project a name.'
    ]);
    const [problem] = buildCreateProject({ ...values, name: 'Fraud Team' }).problems;
    expect(problem).toMatch(/"Fraud Team" is not a valid project name: use 1-64 lowercase/);
    expect(buildCreateProject({ ...values, name: 'a'.repeat(65) }).body).toBeNull();
    expect(buildCreateProject({ ...values, name: 'a'.repeat(64) }).body).not.toBeNull();
    expect(buildCreateProject({ ...values, members: 'bob, x/y' }).problems).toEqual([
      'Not a user name: "x/y".'
    ]);
    expect(buildCreateProject({ ...values, hubGroup: 'a/b' }).problems[0]).toMatch(
      /not a JupyterHub group name/
    );
  });

  it('writes the line that loads a shared version, quoted for Python', () => {
    expect(loadSnippet({ owner: 'carol', name: 'scorer', version: 3 })).toBe(
      'import jupyter_mlplat as mlp\n\nmodel = mlp.load_model("carol/scorer@3")'
    );
  });
});

function setup(routes: FakeServer['routes'] = {}) {
  FakeEventSource.instances = [];
  const server = new FakeServer();
  server.routes = {
    'GET runs': { json: { runs: [] } },
    'GET endpoints': { json: { endpoints: [] } },
    'GET projects': { json: { projects: [] } },
    'GET shared': { json: { shared: [] } },
    ...routes
  };
  const model = new MLPlatModel(
    server.client(),
    new MLPlatEvents({
      serverSettings: server.settings(),
      factory: (u, i) => new FakeEventSource(u, i)
    })
  );
  const context: IMLPlatContext = {
    model,
    rendermime: null,
    openStepNotebook: () => undefined,
    openPath: () => undefined,
    execute: () => undefined
  };
  const view = render(
    <MLPlatContext.Provider value={context}>
      <SidebarView />
    </MLPlatContext.Provider>
  );
  return { server, model, view };
}

/** The open JupyterLab dialog (attached to document.body). */
async function dialog(): Promise<HTMLElement> {
  await waitFor(() => expect(document.querySelector('.jp-Dialog')).not.toBeNull());
  return document.querySelector('.jp-Dialog') as HTMLElement;
}

function accept(node: HTMLElement): void {
  fireEvent.click(node.querySelector('.jp-Dialog-button.jp-mod-accept')!);
}

const SHARED = {
  shared: [
    { kind: 'model', owner: 'carol', name: 'scorer', id: '7', project: 'carol/risk' },
    { kind: 'endpoint', owner: 'dave', name: 'fraud-api', id: '3', project: 'carol/risk' }
  ]
};

describe('the Shared tab', () => {
  afterEach(() => {
    document.querySelectorAll('.jp-Dialog').forEach(node => node.remove());
  });

  it('says how to start when there are no projects and nothing is shared', async () => {
    setup();
    fireEvent.click(screen.getByText('Shared'));
    expect(await screen.findByText(/You are in no project yet/)).toBeTruthy();
    expect(await screen.findByText(/Nothing is shared with you yet/)).toBeTruthy();
    expect(
      screen.getAllByText('jupyter mlplat share model NAME --project PROJECT').length
    ).toBeGreaterThan(0);
    expect(await screen.findByText(/Everything of yours is private/)).toBeTruthy();
  });

  it('lists projects with owner, role, members and hub group, and what others shared', async () => {
    setup({
      'GET projects': {
        json: {
          projects: [
            project('mine', { members: ['bob', 'dave'] }),
            project('risk', { owner: 'carol', role: 'member', members: ['alice'] }),
            project('ml', { owner: 'erin', role: 'hub group', hub_group: 'ml-team' })
          ]
        }
      },
      'GET shared': call => ({
        json: call.query.mine ? { shared: [] } : SHARED
      })
    });
    fireEvent.click(screen.getByText('Shared'));
    const rows = await screen.findByRole('list', { name: 'projects' });
    await waitFor(() => expect(rows.querySelectorAll('li')).toHaveLength(3));
    const mine = rows.querySelector('li[data-project="alice/mine"]')!;
    expect(mine.textContent).toContain('yours · 2 members');
    expect(mine.getAttribute('data-role')).toBe('owner');
    const risk = rows.querySelector('li[data-project="carol/risk"]')!;
    expect(risk.textContent).toBe('risk by carol · 1 membermember');
    expect(risk.getAttribute('title')).toBe('project carol/risk');
    const ml = rows.querySelector('li[data-project="erin/ml"]')!;
    expect(ml.textContent).toContain('group ml-team');
    expect(ml.textContent).toContain('via hub group ml-team');

    const shared = screen.getByRole('list', { name: 'shared with you' });
    await waitFor(() => expect(shared.querySelectorAll('li')).toHaveLength(2));
    const row = shared.querySelector('li[data-kind="model"]')!;
    expect(row.textContent).toContain('carol/scorer');
    expect(row.textContent).toContain('project carol/risk');
    expect(row.getAttribute('data-project')).toBe('carol/risk');
    expect(shared.querySelector('li[data-kind="endpoint"]')!.textContent).toContain(
      'dave/fraud-api'
    );
  });

  it('shows a shared model: its versions, aliases, format and the line that loads it', async () => {
    const { server } = setup({
      'GET shared': call => ({ json: call.query.mine ? { shared: [] } : SHARED }),
      'GET shared/models/carol/scorer': call => ({
        json: sharedModel(call.query.version === '1' ? { version: 1 } : {})
      })
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('carol/scorer'));
    const detail = await screen.findByLabelText('shared model carol/scorer');
    await within(detail).findByText('carol/scorer@2');
    expect(detail.textContent).toContain('flavor sklearn · format skops');
    expect(within(detail).getByText('production→v1')).toBeTruthy();
    expect(detail.querySelector('pre')!.textContent).toContain('mlp.load_model("carol/scorer@2")');
    expect(detail.textContent).not.toContain('Not loadable');
    // another version: fetched by number, its own line
    fireEvent.change(detail.querySelector('select[name="shared-version"]')!, {
      target: { value: '1' }
    });
    await waitFor(() =>
      expect(detail.querySelector('pre')!.textContent).toContain('mlp.load_model("carol/scorer@1")')
    );
    expect(server.callsTo('GET shared/models/carol/scorer').map(c => c.query)).toEqual([
      {},
      { version: '1' }
    ]);
  });

  it('says clearly when a shared model cannot be loaded outside its owner', async () => {
    setup({
      'GET shared': call => ({ json: call.query.mine ? { shared: [] } : SHARED }),
      'GET shared/models/carol/scorer': {
        json: sharedModel({ flavor: 'pyfunc', format: 'cloudpickle', loadable: false })
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('carol/scorer'));
    const detail = await screen.findByLabelText('shared model carol/scorer');
    expect(
      await within(detail).findByText(/Not loadable outside carol's own processes/)
    ).toBeTruthy();
    expect(detail.textContent).toContain(
      'this version (pyfunc, cloudpickle) is not in a safe format for other users'
    );
    expect(detail.textContent).not.toContain('load_model');
    expect(detail.getAttribute('data-loadable')).toBe('false');
  });

  it("shows the server's message when a list cannot be loaded", async () => {
    setup({
      'GET projects': { status: 500, json: { message: 'the store is locked; try again' } }
    });
    fireEvent.click(screen.getByText('Shared'));
    expect((await screen.findByRole('alert')).textContent).toBe('the store is locked; try again');
  });

  it('creates a project through the dialog, with its members', async () => {
    let created = false;
    const { server } = setup({
      'GET projects': () => ({
        json: { projects: created ? [project('fraud', { members: ['bob', 'carol'] })] : [] }
      }),
      'POST projects': call => {
        created = true;
        return { status: 201, json: project(call.body.name, { members: call.body.members }) };
      },
      'GET projects/alice/fraud': { json: project('fraud', { members: ['bob', 'carol'] }) }
    });
    fireEvent.click(screen.getByText('Shared'));
    await screen.findByText(/You are in no project yet/);
    fireEvent.click(screen.getByRole('button', { name: 'New project' }));
    let node = await dialog();
    // an invalid name keeps the dialog open, saying why
    fireEvent.change(node.querySelector('input[name="project-name"]')!, {
      target: { value: 'Fraud' }
    });
    expect(node.querySelector('[role="alert"]')!.textContent).toMatch(/not a valid project name/);
    accept(node);
    await waitFor(() => expect(document.querySelector('.jp-Dialog')).not.toBe(node));
    node = await dialog();
    expect((node.querySelector('input[name="project-name"]') as HTMLInputElement).value).toBe(
      'Fraud'
    );
    expect(server.callsTo('POST projects')).toHaveLength(0);
    fireEvent.change(node.querySelector('input[name="project-name"]')!, {
      target: { value: 'fraud' }
    });
    fireEvent.change(node.querySelector('input[name="project-members"]')!, {
      target: { value: 'bob, carol' }
    });
    accept(node);
    expect(await screen.findByText('Created project alice/fraud with bob, carol.')).toBeTruthy();
    // one request: the project and its members are created together or not at all
    expect(server.callsTo('POST projects')[0].body).toEqual({
      name: 'fraud',
      members: ['bob', 'carol']
    });
    // the new project is listed and opened
    await screen.findByLabelText('project alice/fraud');
    await waitFor(() =>
      expect(
        screen
          .getByRole('list', { name: 'projects' })
          .querySelector('li[data-project="alice/fraud"]')!.className
      ).toContain('jp-mod-selected')
    );
  });

  it("shows the server's refusal of a new project", async () => {
    setup({
      'POST projects': {
        status: 409,
        json: { message: "a project named 'fraud' exists already; choose another name" }
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(screen.getByRole('button', { name: 'New project' }));
    const node = await dialog();
    fireEvent.change(node.querySelector('input[name="project-name"]')!, {
      target: { value: 'fraud' }
    });
    accept(node);
    expect(
      await screen.findByText(
        "Create the project: a project named 'fraud' exists already; choose another name"
      )
    ).toBeTruthy();
  });

  it('adds and removes members of your own project, but not of others', async () => {
    let members = ['bob'];
    const { server } = setup({
      'GET projects': () => ({
        json: {
          projects: [
            project('mine', { members }),
            project('risk', { owner: 'carol', role: 'member', members: ['alice'] })
          ]
        }
      }),
      'GET projects/alice/mine': () => ({
        json: project('mine', {
          members,
          shared: [{ kind: 'model', owner: 'alice', name: 'churn', id: '1', project: 'alice/mine' }]
        })
      }),
      'GET projects/carol/risk': {
        json: project('risk', { owner: 'carol', role: 'member', members: ['alice'] })
      },
      'PUT projects/alice/mine/members/dave': () => {
        members = [...members, 'dave'];
        return { json: project('mine', { members }) };
      },
      'DELETE projects/alice/mine/members/bob': () => {
        members = members.filter(m => m !== 'bob');
        return { json: project('mine', { members }) };
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('mine'));
    const detail = await screen.findByLabelText('project alice/mine');
    await within(detail).findByText('model alice/churn');
    expect(within(detail).queryByText('Leave project')).toBeNull();
    fireEvent.change(within(detail).getByLabelText('user to add'), {
      target: { value: 'dave' }
    });
    fireEvent.click(within(detail).getByText('Add member'));
    await waitFor(() => expect(detail.querySelector('[data-member="dave"]')).not.toBeNull());
    expect(screen.getByText('Added dave to project alice/mine.')).toBeTruthy();
    fireEvent.click(within(detail).getByTitle('Remove bob from alice/mine'));
    await waitFor(() => expect(detail.querySelector('[data-member="bob"]')).toBeNull());
    expect(server.callsTo('PUT projects/alice/mine/members/dave')).toHaveLength(1);
    expect(server.callsTo('DELETE projects/alice/mine/members/bob')).toHaveLength(1);

    // a project of someone else: members shown, no owner's actions, but "Leave project"
    fireEvent.click(screen.getByText('risk'));
    const other = await screen.findByLabelText('project carol/risk');
    await within(other).findByText(/owner carol/);
    expect(within(other).queryByText('Add member')).toBeNull();
    expect(within(other).queryByText('Delete project')).toBeNull();
    expect(other.querySelector('[data-member="alice"] button')).toBeNull();
    expect(within(other).getByText('Leave project')).toBeTruthy();
  });

  it('tells apart two projects of the same name by their owners', async () => {
    const { server } = setup({
      'GET projects': {
        json: {
          projects: [
            project('risk', { members: ['bob'] }),
            project('risk', { owner: 'carol', role: 'member', members: ['alice', 'dave'] })
          ]
        }
      },
      'GET projects/alice/risk': { json: project('risk', { members: ['bob'] }) },
      'GET projects/carol/risk': {
        json: project('risk', { owner: 'carol', role: 'member', members: ['alice', 'dave'] })
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    const rows = await screen.findByRole('list', { name: 'projects' });
    await waitFor(() => expect(rows.querySelectorAll('li')).toHaveLength(2));
    expect(
      [...rows.querySelectorAll('li')].map(li => [
        li.getAttribute('data-project'),
        li.querySelector('.jp-mlplat-muted')!.textContent
      ])
    ).toEqual([
      ['alice/risk', 'yours · 1 member'],
      ['carol/risk', 'by carol · 2 members']
    ]);
    fireEvent.click(rows.querySelector('li[data-project="carol/risk"] .jp-mlplat-row-main')!);
    const carols = await screen.findByLabelText('project carol/risk');
    await within(carols).findByText('carol/risk');
    expect(carols.querySelector('[data-member="dave"]')).not.toBeNull();
    fireEvent.click(rows.querySelector('li[data-project="alice/risk"] .jp-mlplat-row-main')!);
    const mine = await screen.findByLabelText('project alice/risk');
    await waitFor(() => expect(mine.querySelector('[data-member="bob"]')).not.toBeNull());
    expect(screen.queryByLabelText('project carol/risk')).toBeNull();
    expect(server.calls.filter(c => c.path.startsWith('projects/')).map(c => c.path)).toEqual([
      'projects/carol/risk',
      'projects/alice/risk'
    ]);
  });

  it('leaves a project you were added to, after asking', async () => {
    let member = true;
    const { server } = setup({
      'GET version': { json: { version: '0.1.0', owner: 'alice' } },
      'GET projects': () => ({
        json: {
          projects: member
            ? [project('risk', { owner: 'carol', role: 'member', members: ['alice', 'bob'] })]
            : []
        }
      }),
      'GET projects/carol/risk': {
        json: project('risk', { owner: 'carol', role: 'member', members: ['alice', 'bob'] })
      },
      'DELETE projects/carol/risk/members/alice': () => {
        member = false;
        return { json: project('risk', { owner: 'carol', role: 'hub group', members: ['bob'] }) };
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('risk'));
    const detail = await screen.findByLabelText('project carol/risk');
    expect(detail.getAttribute('data-role')).toBe('member');
    // cancelled: nothing happens
    fireEvent.click(within(detail).getByText('Leave project'));
    let node = await dialog();
    expect(node.textContent).toContain('Leave project carol/risk?');
    fireEvent.click(node.querySelector('.jp-Dialog-button.jp-mod-reject')!);
    await waitFor(() => expect(document.querySelector('.jp-Dialog')).toBeNull());
    expect(server.callsTo('DELETE projects/carol/risk/members/alice')).toHaveLength(0);
    const button = within(detail).getByText('Leave project') as HTMLButtonElement;
    await waitFor(() => expect(button.disabled).toBe(false));
    // accepted: the caller removes themselves, the project is gone from the list
    fireEvent.click(button);
    node = await dialog();
    accept(node);
    expect(await screen.findByText('You left project carol/risk.')).toBeTruthy();
    expect(server.callsTo('DELETE projects/carol/risk/members/alice')).toHaveLength(1);
    await waitFor(() => expect(screen.queryByLabelText('project carol/risk')).toBeNull());
    expect(await screen.findByText(/You are in no project yet/)).toBeTruthy();
  });

  it("shows the server's refusal to let you leave", async () => {
    setup({
      'GET version': { json: { version: '0.1.0', owner: 'alice' } },
      'GET projects': {
        json: { projects: [project('risk', { owner: 'carol', role: 'member', members: [] })] }
      },
      'GET projects/carol/risk': {
        json: project('risk', { owner: 'carol', role: 'member', members: [] })
      },
      'DELETE projects/carol/risk/members/alice': {
        status: 404,
        json: { message: "'alice' is not a member of project 'carol/risk'" }
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('risk'));
    const detail = await screen.findByLabelText('project carol/risk');
    fireEvent.click(within(detail).getByText('Leave project'));
    accept(await dialog());
    expect(
      await screen.findByText(
        "Leave project carol/risk: 'alice' is not a member of project 'carol/risk'"
      )
    ).toBeTruthy();
    expect(screen.getByLabelText('project carol/risk')).toBeTruthy();
  });

  it('says how you belong through a hub group, with no Leave', async () => {
    setup({
      'GET projects': {
        json: {
          projects: [project('ml', { owner: 'erin', role: 'hub group', hub_group: 'ml-team' })]
        }
      },
      'GET projects/erin/ml': {
        json: project('ml', { owner: 'erin', role: 'hub group', hub_group: 'ml-team' })
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('ml'));
    const detail = await screen.findByLabelText('project erin/ml');
    expect(
      await within(detail).findByText(
        'You belong through JupyterHub group ml-team: you leave it by leaving that group.'
      )
    ).toBeTruthy();
    expect(within(detail).queryByText('Leave project')).toBeNull();
    expect(within(detail).queryByText('Delete project')).toBeNull();
  });

  it('deletes a project of yours by its key, saying what became private', async () => {
    let exists = true;
    const { server } = setup({
      'GET projects': () => ({ json: { projects: exists ? [project('mine')] : [] } }),
      'GET projects/alice/mine': { json: project('mine') },
      'DELETE projects/alice/mine': () => {
        exists = false;
        return { json: { deleted: 'alice/mine', unshared: 2 } };
      }
    });
    fireEvent.click(screen.getByText('Shared'));
    fireEvent.click(await screen.findByText('mine'));
    const detail = await screen.findByLabelText('project alice/mine');
    fireEvent.click(within(detail).getByText('Delete project'));
    const node = await dialog();
    expect(node.textContent).toContain('Delete project alice/mine?');
    accept(node);
    expect(
      await screen.findByText('Deleted project alice/mine; 2 shared items are private again.')
    ).toBeTruthy();
    expect(server.callsTo('DELETE projects/alice/mine')).toHaveLength(1);
    await waitFor(() => expect(screen.queryByLabelText('project alice/mine')).toBeNull());
  });
});

const SHARED_ALL = {
  shared: [
    { kind: 'endpoint', owner: 'dave', name: 'fraud-api', id: '3', project: 'carol/risk' },
    { kind: 'pipeline', owner: 'carol', name: 'train', id: '9', project: 'carol/risk' },
    { kind: 'schedule', owner: 'carol', name: 'nightly', id: 's-42', project: 'carol/risk' }
  ]
};

/** The Shared tab with SHARED_ALL shared with the user, and `routes` for the details. */
async function openShared(routes: FakeServer['routes']): Promise<FakeServer> {
  const { server } = setup({
    'GET shared': call => ({ json: call.query.mine ? { shared: [] } : SHARED_ALL }),
    ...routes
  });
  fireEvent.click(screen.getByText('Shared'));
  const list = await screen.findByRole('list', { name: 'shared with you' });
  await waitFor(() => expect(list.querySelectorAll('li')).toHaveLength(3));
  return server;
}

function sharedRow(kind: string): HTMLElement {
  const list = screen.getByRole('list', { name: 'shared with you' });
  return list.querySelector(`li[data-kind="${kind}"]`) as HTMLElement;
}

describe('reading a shared endpoint, pipeline or schedule', () => {
  it('picks the newest revision and writes routes in one line', () => {
    const info = sharedEndpoint();
    expect(currentRevision(info)!.revision).toBe(2);
    expect(currentRevision({ revisions: [...info.revisions].reverse() })!.revision).toBe(2);
    expect(currentRevision({ revisions: [] })).toBeNull();
    expect(describeRoutes(info.revisions[1])).toBe(
      'fraud@1 80%, fraud@2 20% · shadow fraud@3 (50%)'
    );
    expect(describeRoutes({ routes: [], shadow: null })).toBe('nothing');
  });

  it('measures a run from its start to its end, blank while it runs', () => {
    const [failed, done] = sharedPipeline().runs;
    expect(runDuration(failed)).toBe('5.0 s');
    expect(runDuration(done)).toBe('1 min 30 s');
    expect(runDuration({ ...done, finished_at: null })).toBe('');
  });

  it('shows what a shared endpoint serves, its shadow and its revisions', async () => {
    const server = await openShared({
      'GET shared/endpoints/dave/fraud-api': { json: sharedEndpoint() }
    });
    expect(sharedRow('endpoint').title).toBe('Show what it serves and its revisions');
    fireEvent.click(within(sharedRow('endpoint')).getByText('dave/fraud-api'));
    const detail = await screen.findByLabelText('shared endpoint dave/fraud-api');
    const routes = await within(detail).findByRole('table', { name: 'routes' });
    expect(
      [...routes.querySelectorAll('tbody tr')].map(tr =>
        [...tr.querySelectorAll('td')].map(td => td.textContent)
      )
    ).toEqual([
      ['fraud@1', '80%'],
      ['fraud@2', '20%']
    ]);
    expect(detail.querySelector('.jp-mlplat-shadow')!.textContent).toBe(
      'Shadow: fraud@3 gets 50% of requests mirrored (answers logged only).'
    );
    expect(detail.getAttribute('data-public')).toBe('false');
    expect(detail.textContent).toContain('needs a token');
    expect(detail.textContent).toContain('Callers need a token, which only dave can give');
    expect(detail.textContent).toContain(
      `revision 2 by dave, ${formatTime('2026-03-02T09:30:00+00:00')}`
    );
    // revisions newest first: number, change (forced, why), what it served, who and when
    const revisions = within(detail).getByRole('table', { name: 'revisions' });
    const rows = [...revisions.querySelectorAll('tbody tr')];
    expect(rows.map(tr => tr.getAttribute('data-revision'))).toEqual(['2', '1']);
    const cells = [...rows[0].querySelectorAll('td')].map(td => td.textContent);
    expect(cells).toEqual([
      '2',
      'deployforcedhotfix before the audit',
      'fraud@1 80%, fraud@2 20% · shadow fraud@3 (50%)',
      `dave ${formatTime('2026-03-02T09:30:00+00:00')}`
    ]);
    expect(rows[1].querySelectorAll('td')[2].textContent).toBe('fraud@1 100%');
    // read-only: no buttons of the endpoint's own tab
    expect(within(detail).queryAllByRole('button')).toHaveLength(0);
    expect(server.callsTo('GET shared/endpoints/dave/fraud-api')).toHaveLength(1);
  });

  it('says when a shared endpoint serves nothing, and when it is public', async () => {
    const info = sharedEndpoint();
    await openShared({
      'GET shared/endpoints/dave/fraud-api': {
        json: sharedEndpoint({
          public: true,
          revisions: [
            ...info.revisions,
            {
              revision: 3,
              action: 'undeploy',
              routes: [],
              public: true,
              forced: false,
              actor: 'dave',
              at: '2026-03-03T09:00:00+00:00'
            }
          ]
        })
      }
    });
    fireEvent.click(within(sharedRow('endpoint')).getByText('dave/fraud-api'));
    const detail = await screen.findByLabelText('shared endpoint dave/fraud-api');
    expect(
      await within(detail).findByText(
        'Not serving now: its newest revision (3, undeploy) routes no traffic.'
      )
    ).toBeTruthy();
    expect(within(detail).queryByRole('table', { name: 'routes' })).toBeNull();
    expect(detail.getAttribute('data-serving')).toBe('false');
    expect(detail.textContent).toContain('Public: callers need no token.');
    expect(detail.querySelectorAll('table[aria-label="revisions"] tbody tr')).toHaveLength(3);
  });

  it("shows a shared pipeline's notebook and its newest runs with metrics", async () => {
    await openShared({ 'GET shared/pipelines/carol/train': { json: sharedPipeline() } });
    fireEvent.click(within(sharedRow('pipeline')).getByText('carol/train'));
    const detail = await screen.findByLabelText('shared pipeline carol/train');
    await within(detail).findByText('work/train.ipynb');
    expect(detail.textContent).toContain("(in carol's files; shared with project carol/risk)");
    expect(within(detail).getByText('Newest runs (2)')).toBeTruthy();
    const table = within(detail).getByRole('table', { name: 'runs' });
    const rows = [...table.querySelectorAll<HTMLElement>('tbody tr')];
    expect(rows.map(tr => [tr.getAttribute('data-run'), tr.getAttribute('data-status')])).toEqual([
      ['bbbbbbbb-2222', 'failed'],
      ['aaaaaaaa-1111', 'succeeded']
    ]);
    const done = rows[1];
    expect(done.querySelector('td code')!.textContent).toBe('aaaaaaaa');
    expect(within(done).getByText('succeeded')).toBeTruthy();
    expect(done.textContent).toContain(formatTime('2026-03-01T10:00:00+00:00'));
    expect(done.textContent).toContain('· took 1 min 30 s');
    expect(done.querySelector('[data-metric="auc"]')!.textContent).toBe('auc 0.8123');
    expect(done.querySelector('[data-metric="loss"]')!.textContent).toBe('loss 0.25');
    expect(done.querySelector('.jp-mlplat-params')!.textContent).toBe('C=1, solver=lbfgs');
    expect(rows[0].textContent).toContain('none');
    expect(rows[0].querySelector('.jp-mlplat-params')!.textContent).toBe('C=0.1');
  });

  it('says when a shared pipeline has not run yet', async () => {
    await openShared({
      'GET shared/pipelines/carol/train': { json: sharedPipeline({ runs: [] }) }
    });
    fireEvent.click(within(sharedRow('pipeline')).getByText('carol/train'));
    const detail = await screen.findByLabelText('shared pipeline carol/train');
    expect(await within(detail).findByText('No runs yet.')).toBeTruthy();
    expect(within(detail).queryByRole('table')).toBeNull();
  });

  it('shows a shared schedule by its id: cron, timezone, next fire, target, firings', async () => {
    const server = await openShared({
      'GET shared/schedules/carol/s-42': { json: sharedSchedule() }
    });
    fireEvent.click(within(sharedRow('schedule')).getByText('carol/nightly'));
    const detail = await screen.findByLabelText('shared schedule carol/nightly');
    await within(detail).findByText('0 3 * * *');
    expect(detail.querySelector('.jp-mlplat-when')!.textContent).toBe(
      `0 3 * * * in Europe/Berlin · next ${formatTime('2026-03-03T02:00:00+00:00')}`
    );
    expect(detail.getAttribute('data-paused')).toBe('false');
    expect(detail.textContent).toContain('Runs the pipeline of work/train.ipynb');
    expect(detail.textContent).toContain('Parameters: {"C":0.5}');
    const firings = within(detail).getByRole('table', { name: 'firings' });
    const rows = [...firings.querySelectorAll('tbody tr')];
    expect(rows.map(tr => [tr.getAttribute('data-kind'), tr.getAttribute('data-status')])).toEqual([
      ['cron', 'failed'],
      ['manual', 'succeeded']
    ]);
    expect(rows[0].textContent).toContain(formatTime('2026-03-02T02:00:00+00:00'));
    expect(rows[0].querySelector('code')!.textContent).toBe('cccccccc');
    expect(server.callsTo('GET shared/schedules/carol/s-42')).toHaveLength(1);
  });

  it('says a shared schedule is paused and has not fired', async () => {
    await openShared({
      'GET shared/schedules/carol/s-42': {
        json: sharedSchedule({ paused: true, next_fire_at: null, target: 'notebook', firings: [] })
      }
    });
    fireEvent.click(within(sharedRow('schedule')).getByText('carol/nightly'));
    const detail = await screen.findByLabelText('shared schedule carol/nightly');
    await within(detail).findByText('Not fired yet.');
    expect(detail.querySelector('.jp-mlplat-when')!.textContent).toBe(
      '0 3 * * * in Europe/Berlin · paused: it does not fire'
    );
    expect(detail.getAttribute('data-paused')).toBe('true');
    expect(detail.textContent).toContain('Runs the notebook work/train.ipynb (a papermill job');
  });

  it("shows the server's message when a shared item cannot be read", async () => {
    await openShared({
      'GET shared/pipelines/carol/train': {
        status: 404,
        json: {
          message:
            'no pipeline carol/train shared with you; `jupyter mlplat shared` lists what others shared with your projects'
        }
      }
    });
    fireEvent.click(within(sharedRow('pipeline')).getByText('carol/train'));
    expect((await screen.findByRole('alert')).textContent).toBe(
      'Shared pipeline carol/train: no pipeline carol/train shared with you; `jupyter mlplat shared` lists what others shared with your projects'
    );
    expect(screen.queryByLabelText('shared pipeline carol/train')).toBeNull();
  });

  it('switches between shared items and closes one on a second click', async () => {
    await openShared({
      'GET shared/endpoints/dave/fraud-api': { json: sharedEndpoint() },
      'GET shared/schedules/carol/s-42': { json: sharedSchedule() }
    });
    fireEvent.click(within(sharedRow('endpoint')).getByText('dave/fraud-api'));
    await screen.findByLabelText('shared endpoint dave/fraud-api');
    fireEvent.click(within(sharedRow('schedule')).getByText('carol/nightly'));
    await screen.findByLabelText('shared schedule carol/nightly');
    expect(screen.queryByLabelText('shared endpoint dave/fraud-api')).toBeNull();
    fireEvent.click(within(sharedRow('schedule')).getByText('carol/nightly'));
    await waitFor(() =>
      expect(screen.queryByLabelText('shared schedule carol/nightly')).toBeNull()
    );
  });
});

describe('"Share…" in the Models tab', () => {
  afterEach(() => {
    document.querySelectorAll('.jp-Dialog').forEach(node => node.remove());
  });

  const models = {
    models: [
      {
        name: 'churn',
        versions: 1,
        latest: 1,
        latest_verdict: 'blessed',
        aliases: {},
        created_at: '2026-03-01T10:00:00Z'
      }
    ]
  };

  it('shares a model with a chosen project by its key, then makes it private again', async () => {
    let sharedWith: string | null = null;
    const { server } = setup({
      'GET models': { json: models },
      'GET models/churn': { json: modelWith([version(1, 'blessed')]) },
      'GET projects': {
        json: {
          projects: [
            project('fraud'),
            project('risk'),
            project('risk', { owner: 'carol', role: 'member', members: ['alice'] })
          ]
        }
      },
      'GET shared': call => ({
        json: {
          shared:
            call.query.mine && sharedWith
              ? [{ kind: 'model', owner: 'alice', name: 'churn', id: '1', project: sharedWith }]
              : []
        }
      }),
      'PUT shares/model/churn': call => {
        sharedWith = call.body.project;
        return {
          json: { kind: 'model', owner: 'alice', name: 'churn', id: '1', project: sharedWith }
        };
      },
      'DELETE shares/model/churn': () => {
        sharedWith = null;
        return { json: { kind: 'model', owner: 'alice', name: 'churn', id: '1', project: null } };
      }
    });
    fireEvent.click(screen.getByText('Models'));
    fireEvent.click(await screen.findByText('churn'));
    const state = await screen.findByText('Private');
    fireEvent.click(screen.getByText('Share…'));
    let node = await dialog();
    const select = node.querySelector('select[name="share-project"]') as HTMLSelectElement;
    expect([...select.options].map(o => [o.value, o.textContent])).toEqual([
      ['', 'Private (not shared)'],
      ['alice/fraud', 'project alice/fraud (yours, 0 members)'],
      ['alice/risk', 'project alice/risk (yours, 0 members)'],
      ['carol/risk', 'project carol/risk (by carol, 1 member)']
    ]);
    fireEvent.change(select, { target: { value: 'carol/risk' } });
    accept(node);
    expect(
      await screen.findByText(
        'Shared model churn with project carol/risk: its members may read it, never change it.'
      )
    ).toBeTruthy();
    expect(server.callsTo('PUT shares/model/churn')[0].body).toEqual({ project: 'carol/risk' });
    await waitFor(() => expect(state.textContent).toBe('Shared with project carol/risk'));

    // the dialog opens on the project it is shared with; keeping it changes nothing
    fireEvent.click(screen.getByText('Share…'));
    node = await dialog();
    expect((node.querySelector('select[name="share-project"]') as HTMLSelectElement).value).toBe(
      'carol/risk'
    );
    accept(node);
    expect(
      await screen.findByText('model churn stays shared with project carol/risk.')
    ).toBeTruthy();
    expect(server.callsTo('PUT shares/model/churn')).toHaveLength(1);

    fireEvent.click(screen.getByText('Share…'));
    node = await dialog();
    const again = node.querySelector('select[name="share-project"]') as HTMLSelectElement;
    expect(again.value).toBe('carol/risk');
    fireEvent.change(again, { target: { value: '' } });
    accept(node);
    expect(await screen.findByText('model churn is private again.')).toBeTruthy();
    expect(server.callsTo('DELETE shares/model/churn')).toHaveLength(1);
    await waitFor(() => expect(state.textContent).toBe('Private'));
  });

  it("shows the server's refusal", async () => {
    setup({
      'GET models': { json: models },
      'GET models/churn': { json: modelWith([version(1, 'blessed')]) },
      'GET projects': { json: { projects: [project('fraud')] } },
      'PUT shares/model/churn': {
        status: 404,
        json: { message: "no project 'alice/fraud' of yours" }
      }
    });
    fireEvent.click(screen.getByText('Models'));
    fireEvent.click(await screen.findByText('churn'));
    await screen.findByText('Private');
    fireEvent.click(screen.getByText('Share…'));
    const node = await dialog();
    fireEvent.change(node.querySelector('select[name="share-project"]')!, {
      target: { value: 'alice/fraud' }
    });
    accept(node);
    expect(
      await screen.findByText("Share model churn: no project 'alice/fraud' of yours")
    ).toBeTruthy();
  });

  it('keeps a project you are no longer in as the current choice', async () => {
    const { server } = setup({
      'GET models': { json: models },
      'GET models/churn': { json: modelWith([version(1, 'blessed')]) },
      'GET projects': { json: { projects: [project('fraud')] } },
      'GET shared': call => ({
        json: {
          shared: call.query.mine
            ? [{ kind: 'model', owner: 'alice', name: 'churn', id: '1', project: 'carol/risk' }]
            : []
        }
      }),
      'PUT shares/model/churn': call => ({
        json: { kind: 'model', owner: 'alice', name: 'churn', id: '1', project: call.body.project }
      })
    });
    fireEvent.click(screen.getByText('Models'));
    fireEvent.click(await screen.findByText('churn'));
    await screen.findByText('Shared with project carol/risk');
    fireEvent.click(screen.getByText('Share…'));
    const node = await dialog();
    const select = node.querySelector('select[name="share-project"]') as HTMLSelectElement;
    expect(select.value).toBe('carol/risk');
    expect([...select.options].map(o => o.textContent)).toEqual([
      'Private (not shared)',
      'project alice/fraud (yours, 0 members)',
      'project carol/risk (you are no longer in it)'
    ]);
    fireEvent.change(select, { target: { value: 'alice/fraud' } });
    accept(node);
    expect(
      await screen.findByText(
        'Shared model churn with project alice/fraud: its members may read it, never change it.'
      )
    ).toBeTruthy();
    expect(server.callsTo('PUT shares/model/churn')[0].body).toEqual({ project: 'alice/fraud' });
  });
});
