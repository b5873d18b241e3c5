/**
 * Shared tab: your projects (owner, your role, members, hub group; on your own projects: add and
 * remove members, delete; on projects you were added to: leave), what other users shared with
 * your projects (a shared model: its versions, aliases and format, and the line that loads it
 * when its format is safe; an endpoint, pipeline or schedule: shared-detail.tsx), and what you
 * shared yourself. Everything is private unless shared with a project.
 *
 * Project names are per owner: two users may each have a project "risk". A project is told by
 * its key, `OWNER/NAME` ("carol/risk"), which is what shares name and what "Share…" sends.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ICreateProjectRequest, IDescribeSharedModel, IProjectInfo, ISharedItem } from '../api';
import { messageOf } from '../notify';
import { ActionButton, CopyBlock, formatTime, Message } from './common';
import { useAsync, useMLPlat } from './context';
import { SharedEndpointDetail, SharedPipelineDetail, SharedScheduleDetail } from './shared-detail';

/** A project name as the server accepts it (`store/projects.py`, `PROJECT_RE`). */
export const PROJECT_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Whether `text` is a user or hub group name as JupyterHub allows it: 1-255 characters, no
 * control characters, no '/'. */
function isUserName(text: string): boolean {
  return (
    text.length >= 1 &&
    text.length <= 255 &&
    ![...text].some(c => c === '/' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  );
}

/** What the "New project" dialog asks. */
export interface INewProjectValues {
  name: string;
  /** Users to add, separated by commas. */
  members: string;
  hubGroup: string;
  description: string;
}

/** The users of a comma-separated list: trimmed, blanks dropped, each once, in order. */
export function parseMembers(text: string): string[] {
  const users = text
    .split(',')
    .map(user => user.trim())
    .filter(user => user.length > 0);
  return [...new Set(users)];
}

/**
 * The `POST projects` body (the project and its first members, created together) for the
 * dialog's values, or what is wrong with them (the server checks again; these are its rules,
 * said before the round trip).
 */
export function buildCreateProject(values: INewProjectValues): {
  body: ICreateProjectRequest | null;
  members: string[];
  problems: string[];
} {
  const problems: string[] = [];
  const name = values.name.trim();
  if (!name) {
    problems.push('Give the project a name.');
  } else if (!PROJECT_NAME_RE.test(name)) {
    problems.push(
      `"${name}" is not a valid project name: use 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit.`
    );
  }
  const members = parseMembers(values.members);
  const bad = members.filter(user => !isUserName(user));
  if (bad.length > 0) {
    problems.push(`Not a user name: ${bad.map(user => JSON.stringify(user)).join(', ')}.`);
  }
  const hubGroup = values.hubGroup.trim();
  if (hubGroup && !isUserName(hubGroup)) {
    problems.push(`"${hubGroup}" is not a JupyterHub group name (no "/" or control characters).`);
  }
  if (values.description.length > 2000) {
    problems.push('The description is longer than 2000 characters.');
  }
  if (problems.length > 0) {
    return { body: null, members, problems };
  }
  const body: ICreateProjectRequest = { name };
  if (hubGroup) {
    body.hub_group = hubGroup;
  }
  if (values.description.trim()) {
    body.description = values.description.trim();
  }
  if (members.length > 0) {
    body.members = members;
  }
  return { body, members, problems };
}

/** The Python that loads a shared model version in another user's notebook. */
export function loadSnippet(
  model: Pick<IDescribeSharedModel, 'owner' | 'name' | 'version'>
): string {
  const ref = `${model.owner}/${model.name}@${model.version}`;
  return `import jupyter_mlplat as mlp\n\nmodel = mlp.load_model(${JSON.stringify(ref)})`;
}

/** What clicking a row of "Shared with you" shows, as its tooltip. */
const SHOW_TITLES: Record<ISharedItem['kind'], string> = {
  model: 'Show its versions and how to load it',
  endpoint: 'Show what it serves and its revisions',
  pipeline: 'Show its notebook and newest runs',
  schedule: 'Show when it fires and its latest firings'
};

/** The read-only view of something another user shared with you. */
function SharedItemDetail(props: { item: ISharedItem }): JSX.Element {
  const { kind, owner, name, id } = props.item;
  switch (kind) {
    case 'model':
      return <SharedModelDetail owner={owner} name={name} />;
    case 'endpoint':
      return <SharedEndpointDetail owner={owner} name={name} />;
    case 'pipeline':
      return <SharedPipelineDetail owner={owner} name={name} />;
    case 'schedule':
      return <SharedScheduleDetail owner={owner} id={id} name={name} />;
  }
}

/** The role of the caller in a project, in words. */
function roleLabel(project: IProjectInfo): string {
  return project.role === 'hub group' ? `via hub group ${project.hub_group ?? ''}` : project.role;
}

/** Whose a project is, in words: "yours" or "by carol". */
export function ownerLabel(project: Pick<IProjectInfo, 'owner' | 'role'>): string {
  return project.role === 'owner' ? 'yours' : `by ${project.owner}`;
}

/** "1 member", "2 members". */
function membersLabel(project: Pick<IProjectInfo, 'members'>): string {
  const n = project.members.length;
  return `${n} member${n === 1 ? '' : 's'}`;
}

/** Which project is open in the tab: its key and the two parts its routes take. */
type ProjectRef = Pick<IProjectInfo, 'key' | 'owner' | 'name'>;

/** An outcome line of the panel: what an action did, or the server's words on why it failed. */
interface IOutcome {
  kind: 'info' | 'error';
  text: string;
}

export function SharedPanel(): JSX.Element {
  const { model } = useMLPlat();
  const projects = useAsync(() => model.client.listProjects(), []);
  const shared = useAsync(() => model.client.listShared(), []);
  const mine = useAsync(() => model.client.listShared({ mine: true }), []);
  const [project, setProject] = React.useState<ProjectRef | null>(null);
  const [item, setItem] = React.useState<ISharedItem | null>(null);
  const [outcome, setOutcome] = React.useState<IOutcome | null>(null);

  const reload = (): void => {
    projects.reload();
    shared.reload();
    mine.reload();
  };
  /** Run an action; its failure becomes the outcome line, with the server's message. */
  const attempt = async (what: string, action: () => Promise<string | null>): Promise<void> => {
    try {
      const text = await action();
      if (text) {
        setOutcome({ kind: 'info', text });
      }
    } catch (error) {
      setOutcome({ kind: 'error', text: `${what}: ${messageOf(error)}` });
    }
  };

  const newProject = (): Promise<void> =>
    attempt('Create the project', async () => {
      const asked = await askNewProject();
      if (!asked) {
        return null;
      }
      const created = await model.client.createProject(asked.body);
      setProject(created);
      projects.reload();
      const members = created.members.length ? ` with ${created.members.join(', ')}` : '';
      return `Created project ${created.key}${members}.`;
    });

  const projectList = projects.value?.projects ?? [];
  const sharedList = shared.value?.shared ?? [];
  const mineList = mine.value?.shared ?? [];
  return (
    <div className="jp-mlplat-panel jp-mlplat-shared">
      <div className="jp-mlplat-toolbar">
        <ActionButton label="Refresh" what="Load projects and shares" action={reload} />
        <ActionButton label="New project" accent what="Create a project" action={newProject} />
      </div>
      {outcome && (
        <div className="jp-mlplat-outcome" data-kind={outcome.kind}>
          <Message kind={outcome.kind}>{outcome.text}</Message>
        </div>
      )}

      <h3 className="jp-mlplat-heading">Your projects</h3>
      {projects.error && <Message kind="error">{projects.error}</Message>}
      {projects.value && projectList.length === 0 && (
        <Message>
          You are in no project yet. A project groups users: what is shared with it, its members may
          read. Press <strong>New project</strong>, or ask a project&apos;s owner to add you (
          <code>jupyter mlplat project add PROJECT USER</code>).
        </Message>
      )}
      <ul className="jp-mlplat-list" aria-label="projects">
        {projectList.map(p => (
          <li
            key={p.key}
            className={`jp-mlplat-row${p.key === project?.key ? ' jp-mod-selected' : ''}`}
            data-project={p.key}
            data-owner={p.owner}
            data-name={p.name}
            data-role={p.role}
            title={`project ${p.key}`}
            onClick={() => setProject(p.key === project?.key ? null : p)}
          >
            <span className="jp-mlplat-row-main">
              {p.name}{' '}
              <span className="jp-mlplat-muted">
                {ownerLabel(p)} · {membersLabel(p)}
              </span>
            </span>
            <span className="jp-mlplat-row-side">
              {p.hub_group && (
                <span className="jp-mlplat-chip" title="members of this hub group belong too">
                  group {p.hub_group}
                </span>
              )}
              <span className="jp-mlplat-chip jp-mlplat-role" title="your role">
                {roleLabel(p)}
              </span>
            </span>
          </li>
        ))}
      </ul>
      {project && (
        <ProjectDetail
          key={project.key}
          owner={project.owner}
          name={project.name}
          onChanged={text => {
            setOutcome(text ? { kind: 'info', text } : null);
            projects.reload();
          }}
          onGone={text => {
            setProject(null);
            setOutcome({ kind: 'info', text });
            reload();
          }}
          onError={text => setOutcome({ kind: 'error', text })}
        />
      )}

      <h3 className="jp-mlplat-heading">Shared with you</h3>
      {shared.error && <Message kind="error">{shared.error}</Message>}
      {shared.value && sharedList.length === 0 && (
        <Message>
          Nothing is shared with you yet. Other users share with a project you are in, from
          &ldquo;Share…&rdquo; on a model in the Models tab or with{' '}
          <code>jupyter mlplat share model NAME --project PROJECT</code> (also endpoint, pipeline,
          schedule); members may read it, never change it.
        </Message>
      )}
      <ul className="jp-mlplat-list" aria-label="shared with you">
        {sharedList.map(s => {
          const key = `${s.kind}/${s.owner}/${s.name}`;
          const selected = item !== null && key === `${item.kind}/${item.owner}/${item.name}`;
          return (
            <li
              key={key}
              className={`jp-mlplat-row${selected ? ' jp-mod-selected' : ''}`}
              data-kind={s.kind}
              data-owner={s.owner}
              data-name={s.name}
              data-project={s.project ?? ''}
              title={SHOW_TITLES[s.kind]}
              onClick={() => setItem(selected ? null : s)}
            >
              <span className="jp-mlplat-row-main">
                <span className="jp-mlplat-chip jp-mlplat-kind">{s.kind}</span> {s.owner}/{s.name}
              </span>
              <span className="jp-mlplat-row-side jp-mlplat-muted">project {s.project}</span>
            </li>
          );
        })}
      </ul>
      {item && <SharedItemDetail key={`${item.kind}/${item.owner}/${item.id}`} item={item} />}

      <h3 className="jp-mlplat-heading">Shared by you</h3>
      {mine.error && <Message kind="error">{mine.error}</Message>}
      {mine.value && mineList.length === 0 && (
        <Message>
          Everything of yours is private. Share a model with &ldquo;Share…&rdquo; in the Models tab,
          or <code>jupyter mlplat share model NAME --project PROJECT</code>.
        </Message>
      )}
      <ul className="jp-mlplat-list" aria-label="shared by you">
        {mineList.map(s => (
          <li
            key={`${s.kind}/${s.name}`}
            className="jp-mlplat-row jp-mlplat-mine"
            data-kind={s.kind}
            data-name={s.name}
            data-project={s.project ?? ''}
          >
            <span className="jp-mlplat-row-main">
              <span className="jp-mlplat-chip jp-mlplat-kind">{s.kind}</span> {s.name}{' '}
              <span className="jp-mlplat-muted">with project {s.project}</span>
            </span>
            <span className="jp-mlplat-row-side">
              <ActionButton
                label="Make private"
                what={`Unshare ${s.kind} ${s.name}`}
                action={() =>
                  attempt(`Unshare ${s.kind} ${s.name}`, async () => {
                    await model.client.unshare(s.kind, s.name);
                    mine.reload();
                    return `${s.kind} ${s.name} is private again.`;
                  })
                }
              />
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}

/**
 * One project: its members and what is shared with it; its owner adds and removes members or
 * deletes it, a member added by the owner may leave it.
 */
function ProjectDetail(props: {
  owner: string;
  name: string;
  onChanged: (text: string | null) => void;
  /** The project was deleted, or the caller left it. */
  onGone: (text: string) => void;
  onError: (text: string) => void;
}): JSX.Element {
  const { model } = useMLPlat();
  const detail = useAsync(
    () => model.client.getProject(props.owner, props.name),
    [props.owner, props.name]
  );
  const [user, setUser] = React.useState('');
  const p = detail.value;
  if (detail.error) {
    return (
      <Message kind="error">{`Project ${props.owner}/${props.name}: ${detail.error}`}</Message>
    );
  }
  if (!p) {
    return (
      <Message kind="loading">
        Loading {props.owner}/{props.name}…
      </Message>
    );
  }
  const own = p.role === 'owner';
  const act = async (what: string, action: () => Promise<string>): Promise<void> => {
    try {
      const text = await action();
      detail.reload();
      props.onChanged(text);
    } catch (error) {
      props.onError(`${what}: ${messageOf(error)}`);
    }
  };
  const add = (): Promise<void> => {
    const users = parseMembers(user);
    return act(`Add ${users.join(', ')} to ${p.key}`, async () => {
      for (const u of users) {
        await model.client.addProjectMember(p.owner, p.name, u);
      }
      setUser('');
      return `Added ${users.join(', ')} to project ${p.key}.`;
    });
  };
  const leave = async (): Promise<void> => {
    const answer = await showDialog({
      title: `Leave project ${p.key}?`,
      body:
        `What is shared with it is no longer yours to read, and what you shared with it ` +
        `stays shared until you make it private. Only ${p.owner} can add you again.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Leave' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      // The route names the member; leaving is removing yourself.
      const { owner: me } = await model.client.version();
      await model.client.removeProjectMember(p.owner, p.name, me);
      props.onGone(`You left project ${p.key}.`);
    } catch (error) {
      props.onError(`Leave project ${p.key}: ${messageOf(error)}`);
    }
  };
  return (
    <section
      className="jp-mlplat-detail"
      aria-label={`project ${p.key}`}
      data-project={p.key}
      data-role={p.role}
    >
      <h3 className="jp-mlplat-heading">{p.key}</h3>
      {p.description && <div className="jp-mlplat-line">{p.description}</div>}
      <div className="jp-mlplat-muted">
        owner {p.owner} · you: {roleLabel(p)}
        {p.hub_group ? ` · members of hub group ${p.hub_group} belong too` : ''} · created{' '}
        {formatTime(p.created_at)}
      </div>
      <div className="jp-mlplat-form-row jp-mlplat-members" aria-label="members">
        <span>Members:</span>
        {p.members.length === 0 && <span className="jp-mlplat-muted">none added</span>}
        {p.members.map(m => (
          <span key={m} className="jp-mlplat-chip" data-member={m}>
            {m}
            {own && (
              <ActionButton
                label="×"
                className="jp-mlplat-chip-remove"
                title={`Remove ${m} from ${p.key}`}
                what={`Remove ${m}`}
                action={() =>
                  act(`Remove ${m} from ${p.key}`, async () => {
                    await model.client.removeProjectMember(p.owner, p.name, m);
                    return `Removed ${m} from project ${p.key}.`;
                  })
                }
              />
            )}
          </span>
        ))}
      </div>
      {own && (
        <div className="jp-mlplat-form-row">
          <input
            className="jp-mlplat-input"
            aria-label="user to add"
            name="member"
            placeholder="user (or several, comma-separated)"
            value={user}
            onChange={event => setUser(event.target.value)}
            onKeyDown={event => {
              if (event.key === 'Enter' && parseMembers(user).length > 0) {
                void add();
              }
            }}
          />
          <ActionButton
            label="Add member"
            what="Add a member"
            disabled={parseMembers(user).length === 0}
            action={add}
          />
        </div>
      )}
      <h4 className="jp-mlplat-heading">Shared with {p.key}</h4>
      {p.shared.length === 0 ? (
        <div className="jp-mlplat-muted">Nothing yet.</div>
      ) : (
        <ul className="jp-mlplat-list jp-mlplat-small">
          {p.shared.map(s => (
            <li key={`${s.kind}/${s.owner}/${s.name}`}>
              {s.kind} {s.owner}/{s.name}
            </li>
          ))}
        </ul>
      )}
      {own && (
        <div className="jp-mlplat-toolbar">
          <ActionButton
            label="Delete project"
            what={`Delete project ${p.key}`}
            action={async () => {
              const answer = await showDialog({
                title: `Delete project ${p.key}?`,
                body: 'Its members go, and whatever was shared with it becomes private again.',
                buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
              });
              if (!answer.button.accept) {
                return;
              }
              try {
                const { deleted, unshared } = await model.client.deleteProject(p.owner, p.name);
                props.onGone(
                  `Deleted project ${deleted}; ${unshared} shared item${unshared === 1 ? ' is' : 's are'} private again.`
                );
              } catch (error) {
                props.onError(`Delete project ${p.key}: ${messageOf(error)}`);
              }
            }}
          />
        </div>
      )}
      {p.role === 'member' && (
        <div className="jp-mlplat-toolbar">
          <ActionButton
            label="Leave project"
            title={`Stop being a member of ${p.key}`}
            what={`Leave project ${p.key}`}
            action={leave}
          />
        </div>
      )}
      {p.role === 'hub group' && (
        <div className="jp-mlplat-muted jp-mlplat-via-group">
          You belong through JupyterHub group {p.hub_group}: you leave it by leaving that group.
        </div>
      )}
    </section>
  );
}

/** A version of a model another user shared: what it is and whether (and how) you may load it. */
export function SharedModelDetail(props: { owner: string; name: string }): JSX.Element {
  const { model } = useMLPlat();
  const [selector, setSelector] = React.useState<number | null>(null);
  const detail = useAsync(
    () => model.client.getSharedModel(props.owner, props.name, selector),
    [props.owner, props.name, selector]
  );
  const m = detail.value;
  const ref = `${props.owner}/${props.name}`;
  if (detail.error) {
    return <Message kind="error">{detail.error}</Message>;
  }
  if (!m) {
    return <Message kind="loading">Loading {ref}…</Message>;
  }
  const aliasesOf = (v: number): string[] =>
    Object.entries(m.aliases)
      .filter(([, version]) => version === v)
      .map(([alias]) => alias);
  return (
    <section
      className="jp-mlplat-detail jp-mlplat-shared-model"
      aria-label={`shared model ${ref}`}
      data-owner={m.owner}
      data-name={m.name}
      data-version={m.version}
      data-loadable={String(m.loadable)}
    >
      <h3 className="jp-mlplat-heading">
        {ref}@{m.version}
      </h3>
      <div className="jp-mlplat-form-row">
        <label>
          Version{' '}
          <select
            className="jp-mlplat-input"
            name="shared-version"
            value={m.version}
            onChange={event => setSelector(Number(event.target.value))}
          >
            {[...m.versions]
              .sort((a, b) => b - a)
              .map(v => (
                <option key={v} value={v}>
                  v{v}
                  {aliasesOf(v).length ? ` (${aliasesOf(v).join(', ')})` : ''}
                </option>
              ))}
          </select>
        </label>
        {Object.entries(m.aliases).map(([alias, v]) => (
          <span key={alias} className="jp-mlplat-chip">
            {alias}→v{v}
          </span>
        ))}
      </div>
      <div className="jp-mlplat-muted">
        flavor {m.flavor} · format {m.format} · logged {formatTime(m.created_at)}
      </div>
      {m.loadable ? (
        <>
          <div className="jp-mlplat-line">Load it in your notebook (read-only, a safe format):</div>
          <CopyBlock text={loadSnippet(m)} />
        </>
      ) : (
        <div className="jp-mlplat-not-loadable">
          <Message>
            Not loadable outside {m.owner}&apos;s own processes: this version ({m.flavor},{' '}
            {m.format}) is not in a safe format for other users. Only skops models made of the
            project&apos;s trusted types load for others; pickled, tree and torch models stay with
            their owner. {m.owner} may serve it from an endpoint of their own and share that.
          </Message>
        </div>
      )}
      {Object.keys(m.signature ?? {}).length > 0 && (
        <details className="jp-mlplat-fieldset">
          <summary>Signature</summary>
          <pre className="jp-mlplat-code">{JSON.stringify(m.signature, null, 2)}</pre>
        </details>
      )}
    </section>
  );
}

// -- the "New project" dialog --------------------------------------------------------------------

export function NewProjectForm(props: {
  initial: INewProjectValues;
  onChange: (values: INewProjectValues) => void;
  /** Show the problems before the name was typed in (the dialog came back after "Create"). */
  showProblems?: boolean;
}): JSX.Element {
  const [values, setValues] = React.useState(props.initial);
  const [touched, setTouched] = React.useState(props.showProblems ?? false);
  const update = (patch: Partial<INewProjectValues>): void => {
    const next = { ...values, ...patch };
    setValues(next);
    props.onChange(next);
  };
  const { problems } = buildCreateProject(values);
  const field = (
    key: keyof INewProjectValues,
    label: string,
    name: string,
    placeholder: string
  ): JSX.Element => (
    <label className="jp-mlplat-field">
      {label}
      <input
        className="jp-mlplat-input"
        name={name}
        value={values[key]}
        placeholder={placeholder}
        onChange={event => {
          if (key === 'name') {
            setTouched(true);
          }
          update({ [key]: event.target.value });
        }}
      />
    </label>
  );
  return (
    <div className="jp-mlplat-form jp-mlplat-project-form">
      {field('name', 'Name', 'project-name', 'e.g. fraud (lowercase)')}
      {field('members', 'Members (optional)', 'project-members', 'bob, carol')}
      {field(
        'hubGroup',
        'JupyterHub group (optional)',
        'project-hub-group',
        'its members belong too'
      )}
      {field('description', 'Description (optional)', 'project-description', 'what it is for')}
      <div className="jp-mlplat-muted">
        Members may read what you share with the project; only you change it.
      </div>
      {touched &&
        problems.map(problem => (
          <div key={problem} className="jp-mlplat-message jp-mlplat-message-error" role="alert">
            {problem}
          </div>
        ))}
    </div>
  );
}

class NewProjectBody extends ReactWidget implements Dialog.IBodyWidget<INewProjectValues> {
  constructor(
    initial: INewProjectValues,
    private readonly _showProblems: boolean
  ) {
    super();
    this._values = initial;
    this.addClass('jp-mlplat-dialog-body');
  }

  getValue(): INewProjectValues {
    return this._values;
  }

  render(): JSX.Element {
    return (
      <NewProjectForm
        initial={this._values}
        showProblems={this._showProblems}
        onChange={values => (this._values = values)}
      />
    );
  }

  private _values: INewProjectValues;
}

/** Ask for a new project until its values are valid; null when cancelled. */
export async function askNewProject(): Promise<{
  body: ICreateProjectRequest;
  members: string[];
} | null> {
  let values: INewProjectValues = { name: '', members: '', hubGroup: '', description: '' };
  for (let attempt = 0; ; attempt++) {
    const result = await showDialog<INewProjectValues>({
      title: 'New project',
      body: new NewProjectBody(values, attempt > 0),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create' })],
      focusNodeSelector: 'input[name="project-name"]'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    values = result.value;
    const { body, members } = buildCreateProject(values);
    if (body) {
      return { body, members };
    }
  }
}

// -- "Share…" on something of yours (the Models tab) ------------------------------------------------

/** The dialog's choice: a project's key (`OWNER/NAME`), or '' for private. */
class ShareBody extends ReactWidget implements Dialog.IBodyWidget<string> {
  constructor(
    private readonly _what: string,
    private readonly _projects: IProjectInfo[],
    private _value: string
  ) {
    super();
    this.addClass('jp-mlplat-dialog-body');
  }

  getValue(): string {
    return this._value;
  }

  render(): JSX.Element {
    return (
      <ShareForm
        what={this._what}
        projects={this._projects}
        initial={this._value}
        onChange={value => (this._value = value)}
      />
    );
  }
}

/** The "Share…" dialog's form: the projects you belong to, by key, or private. */
export function ShareForm(props: {
  what: string;
  projects: IProjectInfo[];
  /** The key of the project it is shared with now, or '' (private). */
  initial: string;
  onChange: (project: string) => void;
}): JSX.Element {
  const [value, setValue] = React.useState(props.initial);
  // Shared with a project the caller no longer belongs to: keep it a choice, not a blank.
  const gone = props.initial !== '' && !props.projects.some(p => p.key === props.initial);
  return (
    <div className="jp-mlplat-form jp-mlplat-share-form">
      <label className="jp-mlplat-field">
        Share {props.what} with
        <select
          className="jp-mlplat-input"
          name="share-project"
          value={value}
          onChange={event => {
            setValue(event.target.value);
            props.onChange(event.target.value);
          }}
        >
          <option value="">Private (not shared)</option>
          {props.projects.map(p => (
            <option key={p.key} value={p.key}>
              project {p.key} ({ownerLabel(p)}, {membersLabel(p)})
            </option>
          ))}
          {gone && (
            <option value={props.initial}>project {props.initial} (you are no longer in it)</option>
          )}
        </select>
      </label>
      <div className="jp-mlplat-muted">
        {props.projects.length === 0
          ? 'You are in no project yet: create one in the Shared tab ("New project").'
          : "The project's members may read it and load its safe versions; only you change it."}
      </div>
    </div>
  );
}

/**
 * "Share…": whether something of yours is shared, and a dialog to share it with one of your
 * projects or make it private again; the outcome shows beside it.
 */
export function ShareControl(props: { kind: ISharedItem['kind']; name: string }): JSX.Element {
  const { model } = useMLPlat();
  const current = useAsync(
    () =>
      model.client
        .listShared({ mine: true, kind: props.kind })
        .then(({ shared }) => shared.find(s => s.name === props.name)?.project ?? null),
    [props.kind, props.name]
  );
  const [outcome, setOutcome] = React.useState<IOutcome | null>(null);
  React.useEffect(() => setOutcome(null), [props.kind, props.name]);
  const what = `${props.kind} ${props.name}`;
  const share = async (): Promise<void> => {
    try {
      const { projects } = await model.client.listProjects();
      const before = current.value ?? '';
      const answer = await showDialog<string>({
        title: `Share ${what}`,
        body: new ShareBody(what, projects, before),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Apply' })]
      });
      if (!answer.button.accept || answer.value === null) {
        return;
      }
      const chosen = answer.value;
      if (chosen === before) {
        setOutcome({
          kind: 'info',
          text: chosen ? `${what} stays shared with project ${chosen}.` : `${what} stays private.`
        });
        return;
      }
      if (chosen) {
        await model.client.share(props.kind, props.name, chosen);
        setOutcome({
          kind: 'info',
          text: `Shared ${what} with project ${chosen}: its members may read it, never change it.`
        });
      } else {
        await model.client.unshare(props.kind, props.name);
        setOutcome({ kind: 'info', text: `${what} is private again.` });
      }
      current.reload();
    } catch (error) {
      setOutcome({ kind: 'error', text: `Share ${what}: ${messageOf(error)}` });
    }
  };
  return (
    <div className="jp-mlplat-share" data-kind={props.kind} data-name={props.name}>
      <div className="jp-mlplat-form-row">
        <span className="jp-mlplat-share-state" data-project={current.value ?? ''}>
          {current.loading && current.value === null
            ? 'Sharing: …'
            : current.value
              ? `Shared with project ${current.value}`
              : 'Private'}
        </span>
        <ActionButton label="Share…" what={`Share ${what}`} action={share} />
      </div>
      {current.error && <Message kind="error">{current.error}</Message>}
      {outcome && (
        <div className="jp-mlplat-outcome" data-kind={outcome.kind}>
          <Message kind={outcome.kind}>{outcome.text}</Message>
        </div>
      )}
    </div>
  );
}
