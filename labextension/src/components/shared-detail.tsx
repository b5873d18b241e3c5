/**
 * What another user shared with you, read-only, in the Shared tab: an endpoint (what it serves
 * now, by weight, its shadow, whether it needs a token, its revisions), a pipeline (its notebook
 * and its newest runs with their metrics) and a schedule (cron and timezone, paused or the next
 * fire time, what it runs, its latest firings). A shared model is `SharedModelDetail` in
 * shared-panel.tsx. Nothing here changes anything: members read, only the owner acts.
 */
import * as React from 'react';

import {
  IEndpointRevisionInfo,
  ISharedEndpointInfo,
  ISharedFiringInfo,
  ISharedRunInfo
} from '../api';
import { formatDuration } from '../graph';
import { formatTime, formatValue, Message, shortId, StatusBadge } from './common';
import { useAsync, useMLPlat } from './context';
import { RevisionsTable } from './endpoints-panel';

/** The revision an endpoint serves now: the newest one (null when it has none). */
export function currentRevision(
  endpoint: Pick<ISharedEndpointInfo, 'revisions'>
): IEndpointRevisionInfo | null {
  return endpoint.revisions.reduce<IEndpointRevisionInfo | null>(
    (newest, r) => (newest === null || r.revision > newest.revision ? r : newest),
    null
  );
}

/** "churn@2 90%, churn@3 10% · shadow churn@4 (50%)", or "nothing" for an undeployed one. */
export function describeRoutes(revision: Pick<IEndpointRevisionInfo, 'routes' | 'shadow'>): string {
  const routes = revision.routes.map(r => `${r.model}@${r.version} ${r.weight}%`).join(', ');
  const shadow = revision.shadow
    ? ` · shadow ${revision.shadow.model}@${revision.shadow.version} (${Math.round(
        revision.shadow.share * 100
      )}%)`
    : '';
  return (routes || 'nothing') + shadow;
}

/** How long a run took, from its creation to its end ("" while it runs or unknown). */
export function runDuration(run: Pick<ISharedRunInfo, 'created_at' | 'finished_at'>): string {
  if (!run.finished_at) {
    return '';
  }
  const seconds = (Date.parse(run.finished_at) - Date.parse(run.created_at)) / 1000;
  return seconds >= 0 ? formatDuration(seconds) : '';
}

/** "a=1, b='x'": a run's values as one line, sorted by name. */
function valuesLine(values: Record<string, unknown>): string {
  return Object.keys(values)
    .sort()
    .map(key => `${key}=${formatValue(values[key])}`)
    .join(', ');
}

function Loading(props: { what: string }): JSX.Element {
  return <Message kind="loading">Loading {props.what}…</Message>;
}

/** A shared endpoint: what it serves now and every revision (who changed it, when, how). */
export function SharedEndpointDetail(props: { owner: string; name: string }): JSX.Element {
  const { model } = useMLPlat();
  const detail = useAsync(
    () => model.client.getSharedEndpoint(props.owner, props.name),
    [props.owner, props.name]
  );
  const ref = `${props.owner}/${props.name}`;
  const e = detail.value;
  if (detail.error) {
    return <Message kind="error">{`Shared endpoint ${ref}: ${detail.error}`}</Message>;
  }
  if (!e) {
    return <Loading what={ref} />;
  }
  const current = currentRevision(e);
  const serving = current !== null && current.routes.length > 0;
  return (
    <section
      className="jp-mlplat-detail jp-mlplat-shared-endpoint"
      aria-label={`shared endpoint ${ref}`}
      data-owner={e.owner}
      data-name={e.name}
      data-public={String(e.public)}
      data-serving={String(serving)}
    >
      <h3 className="jp-mlplat-heading">
        {ref}{' '}
        <span className="jp-mlplat-chip" title="who may call it">
          {e.public ? 'public' : 'needs a token'}
        </span>
      </h3>
      <div className="jp-mlplat-muted">
        endpoint of {e.owner}
        {e.project ? ` · shared with project ${e.project}` : ''}
        {current
          ? ` · revision ${current.revision} by ${current.actor}, ${formatTime(current.at)}`
          : ''}
      </div>
      {current === null && <Message>Never deployed: it has no revision yet.</Message>}
      {current !== null && !serving && (
        <Message>
          Not serving now: its newest revision ({current.revision}, {current.action}) routes no
          traffic.
        </Message>
      )}
      {serving && (
        <>
          <h4 className="jp-mlplat-heading">Serves</h4>
          <table className="jp-mlplat-table jp-mlplat-routes" aria-label="routes">
            <thead>
              <tr>
                <th>model version</th>
                <th>traffic</th>
              </tr>
            </thead>
            <tbody>
              {current.routes.map(r => (
                <tr key={`${r.model}@${r.version}`} data-route={`${r.model}@${r.version}`}>
                  <td>
                    {r.model}@{r.version}
                  </td>
                  <td>{r.weight}%</td>
                </tr>
              ))}
            </tbody>
          </table>
          {current.shadow ? (
            <div className="jp-mlplat-line jp-mlplat-shadow">
              Shadow: {current.shadow.model}@{current.shadow.version} gets{' '}
              {Math.round(current.shadow.share * 100)}% of requests mirrored (answers logged only).
            </div>
          ) : (
            <div className="jp-mlplat-muted">No shadow.</div>
          )}
        </>
      )}
      <div className="jp-mlplat-line">
        {e.public
          ? 'Public: callers need no token.'
          : `Callers need a token, which only ${e.owner} can give; shared reads never show it.`}
      </div>
      <h4 className="jp-mlplat-heading">Revisions</h4>
      {e.revisions.length === 0 ? (
        <div className="jp-mlplat-muted">None yet.</div>
      ) : (
        <RevisionsTable revisions={e.revisions} serves={describeRoutes} label="revisions" />
      )}
    </section>
  );
}

/** A shared pipeline: its notebook and its newest runs with status, time, params, metrics. */
export function SharedPipelineDetail(props: { owner: string; name: string }): JSX.Element {
  const { model } = useMLPlat();
  const detail = useAsync(
    () => model.client.getSharedPipeline(props.owner, props.name),
    [props.owner, props.name]
  );
  const ref = `${props.owner}/${props.name}`;
  const p = detail.value;
  if (detail.error) {
    return <Message kind="error">{`Shared pipeline ${ref}: ${detail.error}`}</Message>;
  }
  if (!p) {
    return <Loading what={ref} />;
  }
  return (
    <section
      className="jp-mlplat-detail jp-mlplat-shared-pipeline"
      aria-label={`shared pipeline ${ref}`}
      data-owner={p.owner}
      data-name={p.name}
    >
      <h3 className="jp-mlplat-heading">{ref}</h3>
      <div className="jp-mlplat-line">
        Notebook <code className="jp-mlplat-path">{p.path}</code>{' '}
        <span className="jp-mlplat-muted">
          (in {p.owner}&apos;s files{p.project ? `; shared with project ${p.project}` : ''})
        </span>
      </div>
      <h4 className="jp-mlplat-heading">Newest runs{p.runs.length ? ` (${p.runs.length})` : ''}</h4>
      {p.runs.length === 0 ? (
        <div className="jp-mlplat-muted">No runs yet.</div>
      ) : (
        <div className="jp-mlplat-scroll-x">
          <table className="jp-mlplat-table jp-mlplat-shared-runs" aria-label="runs">
            <thead>
              <tr>
                <th>run, when</th>
                <th>status</th>
                <th>metrics</th>
              </tr>
            </thead>
            <tbody>
              {p.runs.map(r => (
                <SharedRunRow key={r.id} run={r} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function SharedRunRow(props: { run: ISharedRunInfo }): JSX.Element {
  const r = props.run;
  const metrics = Object.keys(r.metrics).sort();
  const params = valuesLine({ ...r.parameters, ...r.params });
  return (
    <tr data-run={r.id} data-status={r.status}>
      <td>
        <code title={r.id}>{shortId(r.id)}</code>
        <div className="jp-mlplat-muted">
          {formatTime(r.created_at)}
          {runDuration(r) ? ` · took ${runDuration(r)}` : ''}
        </div>
      </td>
      <td>
        <StatusBadge status={r.status} />
      </td>
      <td>
        {metrics.length === 0 && <span className="jp-mlplat-muted">none</span>}
        {metrics.map(name => (
          <div key={name} className="jp-mlplat-metric" data-metric={name}>
            {name} <strong>{formatValue(r.metrics[name])}</strong>
          </div>
        ))}
        {params && <div className="jp-mlplat-muted jp-mlplat-params">{params}</div>}
      </td>
    </tr>
  );
}

/** A shared schedule: when it fires, what it runs and its latest firings. */
export function SharedScheduleDetail(props: {
  owner: string;
  id: string;
  name: string;
}): JSX.Element {
  const { model } = useMLPlat();
  const detail = useAsync(
    () => model.client.getSharedSchedule(props.owner, props.id),
    [props.owner, props.id]
  );
  const ref = `${props.owner}/${props.name || props.id}`;
  const s = detail.value;
  if (detail.error) {
    return <Message kind="error">{`Shared schedule ${ref}: ${detail.error}`}</Message>;
  }
  if (!s) {
    return <Loading what={ref} />;
  }
  return (
    <section
      className="jp-mlplat-detail jp-mlplat-shared-schedule"
      aria-label={`shared schedule ${ref}`}
      data-owner={s.owner}
      data-id={s.id}
      data-paused={String(s.paused)}
    >
      <h3 className="jp-mlplat-heading">
        {s.owner}/{s.name || s.id} <StatusBadge status={s.paused ? 'paused' : 'active'} />
      </h3>
      <div className="jp-mlplat-line jp-mlplat-when">
        <code>{s.cron}</code> in {s.timezone} ·{' '}
        {s.paused
          ? 'paused: it does not fire'
          : s.next_fire_at
            ? `next ${formatTime(s.next_fire_at)}`
            : 'no next fire time'}
      </div>
      <div className="jp-mlplat-line">
        Runs {s.target === 'pipeline' ? 'the pipeline of' : 'the notebook'}{' '}
        <code className="jp-mlplat-path">{s.notebook_path}</code>{' '}
        <span className="jp-mlplat-muted">
          ({s.target === 'pipeline' ? 'every step' : 'a papermill job'}, in {s.owner}&apos;s files)
        </span>
      </div>
      {Object.keys(s.parameters ?? {}).length > 0 && (
        <div className="jp-mlplat-line">
          Parameters: <code>{JSON.stringify(s.parameters)}</code>
        </div>
      )}
      <div className="jp-mlplat-muted">
        schedule {s.id}
        {s.project ? ` · shared with project ${s.project}` : ''}
      </div>
      <h4 className="jp-mlplat-heading">Latest firings</h4>
      {s.firings.length === 0 ? (
        <div className="jp-mlplat-muted">Not fired yet.</div>
      ) : (
        <table className="jp-mlplat-table jp-mlplat-firings" aria-label="firings">
          <thead>
            <tr>
              <th>slot</th>
              <th>status</th>
              <th>run</th>
            </tr>
          </thead>
          <tbody>
            {s.firings.map((f, i) => (
              <SharedFiringRow key={`${f.slot_at}/${f.kind}/${i}`} firing={f} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function SharedFiringRow(props: { firing: ISharedFiringInfo }): JSX.Element {
  const f = props.firing;
  return (
    <tr data-status={f.status} data-kind={f.kind}>
      <td>
        {formatTime(f.slot_at)} <span className="jp-mlplat-muted">{f.kind}</span>
      </td>
      <td>
        <StatusBadge status={f.status} />
        {f.finished_at ? (
          <div className="jp-mlplat-muted">ended {formatTime(f.finished_at)}</div>
        ) : null}
      </td>
      <td title={f.run_id ?? undefined}>
        {f.run_id ? <code>{shortId(f.run_id)}</code> : <span className="jp-mlplat-muted">—</span>}
      </td>
    </tr>
  );
}
