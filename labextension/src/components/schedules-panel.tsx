/**
 * Schedules tab: notebooks and pipelines on cron, their next fire times and history (each
 * firing -> its run), pause / resume / run now / delete, and a form to add one.
 */
import * as React from 'react';

import { ICreateSchedule, IDescribeSchedule } from '../api';
import { MLPlatRequestError } from '../request';
import { ActionButton, formatTime, Message, shortId, StatusBadge } from './common';
import { useAsync, useMLPlat, useSignals } from './context';

/** The browser's time zone (IANA name), the form's default. */
export function localTimezone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** Parse the form's parameters (a JSON object); throws with what was expected. */
export function parseParameters(text: string): Record<string, unknown> {
  if (!text.trim()) {
    return {};
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `Parameters are not valid JSON (${(error as Error).message}); expected an object such as {"C": 0.5}.`
    );
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('Parameters must be a JSON object such as {"C": 0.5}.');
  }
  return value as Record<string, unknown>;
}

export function SchedulesPanel(): JSX.Element {
  const { model } = useMLPlat();
  const tick = useSignals(model.runFinished);
  const list = useAsync(() => model.client.listSchedules(), [tick]);
  const [adding, setAdding] = React.useState(false);
  const [selected, setSelected] = React.useState<string | null>(null);
  const missing = list.error !== null && /not found|404/i.test(list.error);
  return (
    <div className="jp-mlplat-panel jp-mlplat-schedules">
      <div className="jp-mlplat-toolbar">
        <ActionButton label="Refresh" what="Load the schedules" action={() => list.reload()} />
        <button
          type="button"
          className="jp-mlplat-button jp-mod-accept"
          disabled={missing}
          onClick={() => setAdding(!adding)}
        >
          {adding ? 'Close form' : 'New schedule'}
        </button>
      </div>
      {missing ? (
        <Message>This server has no scheduler (GET schedules answered 404).</Message>
      ) : (
        list.error && <Message kind="error">{list.error}</Message>
      )}
      {adding && (
        <ScheduleForm
          onCreated={() => {
            setAdding(false);
            list.reload();
          }}
        />
      )}
      {list.value && list.value.schedules.length === 0 && !adding && (
        <Message>No schedules yet.</Message>
      )}
      <ul className="jp-mlplat-list" aria-label="schedules">
        {(list.value?.schedules ?? []).map(s => (
          <li
            key={String(s.id)}
            className={`jp-mlplat-row${s.id === selected ? ' jp-mod-selected' : ''}`}
            data-schedule={String(s.id)}
            onClick={() => setSelected(s.id === selected ? null : s.id)}
          >
            <span className="jp-mlplat-row-main">
              {s.name || s.notebook} <code>{s.cron}</code>{' '}
              <span className="jp-mlplat-muted">
                {s.paused ? s.timezone : `next ${formatTime(s.next_fire_at)} (${s.timezone})`}
              </span>
            </span>
            <span className="jp-mlplat-row-side">
              {s.last_firing && (
                <StatusBadge
                  status={s.last_firing.status}
                  title={`last firing: ${s.last_firing.status}`}
                />
              )}{' '}
              <StatusBadge status={s.paused ? 'paused' : 'active'} />
            </span>
          </li>
        ))}
      </ul>
      {selected !== null && (
        <ScheduleDetail
          id={selected}
          onChanged={() => list.reload()}
          onDeleted={() => {
            setSelected(null);
            list.reload();
          }}
        />
      )}
    </div>
  );
}

function ScheduleDetail(props: {
  id: string | number;
  onChanged: () => void;
  onDeleted: () => void;
}): JSX.Element {
  const { model } = useMLPlat();
  const detail = useAsync(() => model.client.getSchedule(props.id), [props.id]);
  const s = detail.value;
  if (detail.error) {
    return <Message kind="error">{detail.error}</Message>;
  }
  if (!s) {
    return <Message kind="loading">Loading…</Message>;
  }
  const act = async (call: Promise<unknown>): Promise<void> => {
    await call;
    detail.reload();
    props.onChanged();
  };
  return (
    <section className="jp-mlplat-detail" aria-label={`schedule ${s.id}`}>
      <h3 className="jp-mlplat-heading">
        {s.name || s.notebook} <StatusBadge status={s.paused ? 'paused' : 'active'} />
      </h3>
      <div className="jp-mlplat-muted">
        {s.target === 'pipeline' ? 'pipeline' : 'notebook'} {s.notebook} · <code>{s.cron}</code> (
        {s.timezone}) · missed slots: {s.missed === 'skip' ? 'skipped' : 'fire once'}
      </div>
      {s.error && <Message kind="error">{s.error}</Message>}
      <div className="jp-mlplat-toolbar">
        {s.paused ? (
          <ActionButton
            label="Resume"
            what="Resume the schedule"
            action={() => act(model.client.resumeSchedule(s.id))}
          />
        ) : (
          <ActionButton
            label="Pause"
            what="Pause the schedule"
            action={() => act(model.client.pauseSchedule(s.id))}
          />
        )}
        <ActionButton
          label="Run now"
          accent
          what="Run the schedule now"
          action={() => act(model.client.runSchedule(s.id))}
        />
        <ActionButton
          label="Delete"
          what="Delete the schedule"
          action={async () => {
            await model.client.deleteSchedule(s.id);
            props.onDeleted();
          }}
        />
      </div>
      <ScheduleFacts schedule={s} />
    </section>
  );
}

function ScheduleFacts(props: { schedule: IDescribeSchedule }): JSX.Element {
  const { model } = useMLPlat();
  const s = props.schedule;
  return (
    <>
      {Object.keys(s.parameters ?? {}).length > 0 && (
        <div className="jp-mlplat-line">
          Parameters: <code>{JSON.stringify(s.parameters)}</code>
        </div>
      )}
      {s.on_success?.deploy_if_blessed && (
        <div className="jp-mlplat-line">
          On success: deploy {s.on_success.deploy_if_blessed.model} to{' '}
          {s.on_success.deploy_if_blessed.endpoint || s.on_success.deploy_if_blessed.model} if
          blessed
        </div>
      )}
      {(s.next_fire_times ?? []).length > 0 && (
        <>
          <h4 className="jp-mlplat-heading">Next</h4>
          <ul className="jp-mlplat-list jp-mlplat-small">
            {(s.next_fire_times ?? []).map(t => (
              <li key={t}>{formatTime(t)}</li>
            ))}
          </ul>
        </>
      )}
      <h4 className="jp-mlplat-heading">History</h4>
      {(s.history ?? []).length === 0 && <div className="jp-mlplat-muted">Not fired yet.</div>}
      <ul className="jp-mlplat-list jp-mlplat-small">
        {(s.history ?? []).map((f, i) => (
          <li key={String(f.id ?? i)} className="jp-mlplat-row">
            <span>
              {formatTime(f.slot_at)} <span className="jp-mlplat-muted">{f.kind}</span>{' '}
              {f.run_id && (
                <a
                  href="#"
                  className="jp-mlplat-link"
                  onClick={event => {
                    event.preventDefault();
                    model.show({ tab: 'runs', runId: f.run_id as string });
                  }}
                >
                  run {shortId(f.run_id)}
                </a>
              )}
              {f.error ? <span className="jp-mlplat-muted"> {f.error}</span> : null}
              {f.on_success ? (
                <span className="jp-mlplat-muted">
                  {' '}
                  · {f.on_success.status}: {f.on_success.detail}
                </span>
              ) : null}
            </span>
            <StatusBadge status={f.status} />
          </li>
        ))}
      </ul>
    </>
  );
}

function ScheduleForm(props: { onCreated: () => void }): JSX.Element {
  const { model } = useMLPlat();
  const [form, setForm] = React.useState({
    notebook: model.currentNotebook ?? '',
    target: 'pipeline' as 'notebook' | 'pipeline',
    cron: '0 3 * * *',
    timezone: localTimezone(),
    parameters: '',
    deployModel: '',
    deployEndpoint: ''
  });
  const [problem, setProblem] = React.useState<string | null>(null);
  const set =
    (key: keyof typeof form) =>
    (event: React.ChangeEvent<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>): void =>
      setForm({ ...form, [key]: event.target.value });
  const submit = async (): Promise<void> => {
    let body: ICreateSchedule;
    try {
      body = {
        notebook: form.notebook.trim(),
        target: form.target,
        cron: form.cron.trim(),
        timezone: form.timezone.trim(),
        parameters: parseParameters(form.parameters),
        on_success: form.deployModel.trim()
          ? {
              deploy_if_blessed: {
                model: form.deployModel.trim(),
                endpoint: form.deployEndpoint.trim() || null
              }
            }
          : {}
      };
    } catch (error) {
      setProblem((error as Error).message);
      return;
    }
    try {
      await model.client.createSchedule(body);
      setProblem(null);
      props.onCreated();
    } catch (error) {
      // The server says what was wrong (cron, time zone, notebook, parameter): show it here.
      setProblem(error instanceof MLPlatRequestError ? error.message : (error as Error).message);
    }
  };
  return (
    <form
      className="jp-mlplat-form"
      aria-label="new schedule"
      onSubmit={event => {
        event.preventDefault();
        void submit();
      }}
    >
      <label>
        Notebook{' '}
        <input className="jp-mlplat-input" value={form.notebook} onChange={set('notebook')} />
      </label>
      <label>
        Run as{' '}
        <select className="jp-mlplat-input" value={form.target} onChange={set('target')}>
          <option value="pipeline">a pipeline (its steps)</option>
          <option value="notebook">one notebook (papermill)</option>
        </select>
      </label>
      <label>
        Cron <input className="jp-mlplat-input" value={form.cron} onChange={set('cron')} />
      </label>
      <label>
        Time zone{' '}
        <input className="jp-mlplat-input" value={form.timezone} onChange={set('timezone')} />
      </label>
      <label>
        Parameters (JSON)
        <textarea
          className="jp-mlplat-input"
          rows={2}
          value={form.parameters}
          placeholder='{"C": 0.5}'
          onChange={set('parameters')}
        />
      </label>
      <label>
        Deploy if blessed: model{' '}
        <input
          className="jp-mlplat-input"
          value={form.deployModel}
          placeholder="(none)"
          onChange={set('deployModel')}
        />
      </label>
      {form.deployModel && (
        <label>
          to endpoint{' '}
          <input
            className="jp-mlplat-input"
            value={form.deployEndpoint}
            placeholder={form.deployModel}
            onChange={set('deployEndpoint')}
          />
        </label>
      )}
      {problem && <Message kind="error">{problem}</Message>}
      <button type="submit" className="jp-mlplat-button jp-mod-accept">
        Add schedule
      </button>
    </form>
  );
}
