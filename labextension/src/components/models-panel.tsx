/**
 * Models tab: registered models, their versions with metrics and verdicts (with the reason of
 * every check), slice metrics against the policy's floor, lineage, and aliases.
 */
import * as React from 'react';

import { IDescribeModel, IDescribeModelVersion, ISliceMetricRow } from '../api';
import { sliceBarsSpec } from '../charts';
import { ActionButton, formatTime, formatValue, Message, shortId, StatusBadge } from './common';
import { useAsync, useMLPlat, useSignals } from './context';
import { ShareControl } from './shared-panel';
import { VegaChart } from './vega-chart';

export function ModelsPanel(props: {
  selected: string | null;
  onSelect: (name: string | null) => void;
}): JSX.Element {
  const { model } = useMLPlat();
  const tick = useSignals(model.runFinished);
  const models = useAsync(() => model.client.listModels(), [tick]);
  return (
    <div className="jp-mlplat-panel jp-mlplat-models">
      <div className="jp-mlplat-toolbar">
        <ActionButton label="Refresh" what="Load the models" action={() => models.reload()} />
      </div>
      {models.error && <Message kind="error">{models.error}</Message>}
      {models.value && models.value.models.length === 0 && (
        <Message>
          No models yet. A step that calls{' '}
          <code>mlp.log_model(model, "name", sample_input=...)</code> registers one.
        </Message>
      )}
      <ul className="jp-mlplat-list" aria-label="models">
        {(models.value?.models ?? []).map(m => (
          <li
            key={m.name}
            className={`jp-mlplat-row${m.name === props.selected ? ' jp-mod-selected' : ''}`}
            data-model={m.name}
            onClick={() => props.onSelect(m.name === props.selected ? null : m.name)}
          >
            <span className="jp-mlplat-row-main">
              {m.name}{' '}
              <span className="jp-mlplat-muted">
                {m.versions} version{m.versions === 1 ? '' : 's'}
              </span>
            </span>
            <span className="jp-mlplat-row-side">
              {Object.entries(m.aliases).map(([alias, v]) => (
                <span key={alias} className="jp-mlplat-chip">
                  {alias}→v{v}
                </span>
              ))}
              <StatusBadge
                status={m.latest_verdict}
                title={`latest version: ${m.latest_verdict}`}
              />
            </span>
          </li>
        ))}
      </ul>
      {props.selected && <ModelDetail name={props.selected} refresh={tick} />}
    </div>
  );
}

function ModelDetail(props: { name: string; refresh: number }): JSX.Element {
  const { model } = useMLPlat();
  const detail = useAsync(() => model.client.getModel(props.name), [props.name, props.refresh]);
  const [version, setVersion] = React.useState<number | null>(null);
  const m = detail.value;
  React.useEffect(() => {
    if (m && (version === null || !m.versions.some(v => v.version === version))) {
      setVersion(m.versions.length ? Math.max(...m.versions.map(v => v.version)) : null);
    }
  }, [m]);
  if (detail.error) {
    return <Message kind="error">{detail.error}</Message>;
  }
  if (!m) {
    return <Message kind="loading">Loading {props.name}…</Message>;
  }
  const selected = m.versions.find(v => v.version === version) ?? null;
  const metricNames = [...new Set(m.versions.flatMap(v => Object.keys(v.metrics)))].slice(0, 2);
  return (
    <section className="jp-mlplat-detail" aria-label={`model ${m.name}`}>
      <h3 className="jp-mlplat-heading">{m.name}</h3>
      <ShareControl kind="model" name={m.name} />
      {m.policy && <PolicyLine policy={m.policy} />}
      <table className="jp-mlplat-table jp-mlplat-versions">
        <thead>
          <tr>
            <th>version</th>
            <th>verdict</th>
            {metricNames.map(name => (
              <th key={name}>{name}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {[...m.versions]
            .sort((a, b) => b.version - a.version)
            .map(v => (
              <tr
                key={v.version}
                className={v.version === version ? 'jp-mod-selected' : ''}
                data-version={v.version}
                onClick={() => setVersion(v.version)}
              >
                <td>
                  v{v.version}
                  {v.aliases.map(a => (
                    <span key={a} className="jp-mlplat-chip">
                      {a}
                    </span>
                  ))}
                </td>
                <td>
                  <StatusBadge
                    status={v.verdict_status}
                    title={v.verdict?.summary ?? v.verdict_reason ?? ''}
                  />
                </td>
                {metricNames.map(name => (
                  <td key={name}>{formatValue(v.metrics[name])}</td>
                ))}
              </tr>
            ))}
        </tbody>
      </table>
      {selected && <VersionDetail model={m} version={selected} onChanged={() => detail.reload()} />}
      {m.alias_history.length > 0 && (
        <>
          <h4 className="jp-mlplat-heading">Alias history</h4>
          <ul className="jp-mlplat-list jp-mlplat-small">
            {[...m.alias_history].reverse().map((move, i) => (
              <li key={i}>
                {formatTime(move.at)} · {move.alias}: {move.previous ? `v${move.previous}` : '—'} →{' '}
                {move.version ? `v${move.version}` : 'removed'} by {move.actor}
                {move.reason ? ` (${move.reason})` : ''}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function PolicyLine(props: { policy: Record<string, unknown> }): JSX.Element {
  const parts = Object.entries(props.policy)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key} ${formatValue(value)}`);
  return <div className="jp-mlplat-muted">Policy: {parts.join(' · ')}</div>;
}

/** The floor, direction and minimum slice size a version's slices are judged against. */
export function sliceRule(
  model: IDescribeModel,
  version: IDescribeModelVersion
): { metric?: string; floor: number | null; higherIsBetter: boolean; minCount: number } {
  const policy = { ...(model.policy ?? {}), ...(version.verdict?.policy ?? {}) } as Record<
    string,
    unknown
  >;
  const num = (value: unknown): number | null => (typeof value === 'number' ? value : null);
  return {
    metric: (version.verdict?.metric ?? policy.metric) as string | undefined,
    floor: num(policy.slice_floor),
    higherIsBetter: version.verdict?.higher_is_better ?? true,
    minCount: num(policy.min_slice_count) ?? 0
  };
}

function VersionDetail(props: {
  model: IDescribeModel;
  version: IDescribeModelVersion;
  onChanged: () => void;
}): JSX.Element {
  const { model: m, version: v } = props;
  const rule = sliceRule(m, v);
  const slices: ISliceMetricRow[] = v.slices ?? [];
  const sliceMetrics = [...new Set(slices.map(s => s.metric))];
  const metric = rule.metric && sliceMetrics.includes(rule.metric) ? rule.metric : sliceMetrics[0];
  return (
    <div className="jp-mlplat-version" data-version={v.version}>
      <h4 className="jp-mlplat-heading">
        {m.name}@{v.version} <StatusBadge status={v.verdict_status} />
      </h4>
      <div className="jp-mlplat-muted">
        {v.flavor}
        {v.trusted_only ? ' (trusted-only)' : ''} · by {v.created_by} · {formatTime(v.created_at)}
        {v.run_id ? ` · run ${shortId(v.run_id)}` : ''}
      </div>
      {v.verdict ? (
        <>
          <div className="jp-mlplat-line">{v.verdict.summary}</div>
          <ul className="jp-mlplat-list jp-mlplat-checks">
            {v.verdict.checks.map((check, i) => (
              <li key={i} data-check={check.status} className="jp-mlplat-check-row">
                <StatusBadge status={check.status} /> <strong>{check.name}</strong>{' '}
                <span className="jp-mlplat-muted">{check.reason}</span>
              </li>
            ))}
          </ul>
          {v.verdict.note && <div className="jp-mlplat-muted">{v.verdict.note}</div>}
        </>
      ) : (
        <div className="jp-mlplat-muted">
          Not validated{v.verdict_reason ? `: ${v.verdict_reason}` : ' (no policy for this model)'}.
        </div>
      )}
      {Object.keys(v.metrics).length > 0 && (
        <table className="jp-mlplat-table">
          <tbody>
            {Object.entries(v.metrics).map(([name, value]) => (
              <tr key={name}>
                <td>{name}</td>
                <td>{formatValue(value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {metric && (
        <>
          <h4 className="jp-mlplat-heading">
            Slices: {metric}
            {rule.floor !== null ? ` (floor ${formatValue(rule.floor)})` : ''}
          </h4>
          <VegaChart
            label={`slice ${metric} of ${m.name}@${v.version}`}
            build={theme =>
              sliceBarsSpec(
                slices,
                {
                  metric,
                  floor: rule.floor,
                  higherIsBetter: rule.higherIsBetter,
                  minCount: rule.minCount
                },
                theme
              )
            }
          />
          <table className="jp-mlplat-table jp-mlplat-slices">
            <thead>
              <tr>
                <th>slice</th>
                <th>{metric}</th>
                <th>rows</th>
              </tr>
            </thead>
            <tbody>
              {slices
                .filter(s => s.metric === metric)
                .map((s, i) => (
                  <tr key={i}>
                    <td>{s.by ? `${s.by}=${s.slice}` : s.slice}</td>
                    <td>{formatValue(s.value)}</td>
                    <td>{s.count}</td>
                  </tr>
                ))}
            </tbody>
          </table>
        </>
      )}
      {v.signature_text && (
        <>
          <h4 className="jp-mlplat-heading">Signature</h4>
          <pre className="jp-mlplat-code">{v.signature_text}</pre>
        </>
      )}
      <AliasEditor model={m} version={v} onChanged={props.onChanged} />
      <Lineage model={m.name} version={v.version} />
    </div>
  );
}

function AliasEditor(props: {
  model: IDescribeModel;
  version: IDescribeModelVersion;
  onChanged: () => void;
}): JSX.Element {
  const { model } = useMLPlat();
  const [alias, setAlias] = React.useState('production');
  const [reason, setReason] = React.useState('');
  const { model: m, version: v } = props;
  return (
    <div className="jp-mlplat-form-row">
      <span>Aliases:</span>
      {v.aliases.map(a => (
        <span key={a} className="jp-mlplat-chip">
          {a}
          <ActionButton
            label="×"
            className="jp-mlplat-chip-remove"
            title={`Remove alias ${a}`}
            what={`Remove alias ${a}`}
            action={async () => {
              await model.client.deleteAlias(m.name, a);
              props.onChanged();
            }}
          />
        </span>
      ))}
      <input
        className="jp-mlplat-input"
        aria-label="alias"
        value={alias}
        onChange={event => setAlias(event.target.value)}
      />
      <input
        className="jp-mlplat-input"
        aria-label="reason"
        placeholder="reason (optional)"
        value={reason}
        onChange={event => setReason(event.target.value)}
      />
      <ActionButton
        label={`Point at v${v.version}`}
        what={`Set alias ${alias}`}
        disabled={!alias.trim()}
        action={async () => {
          await model.client.setAlias(m.name, alias.trim(), {
            version: v.version,
            reason: reason.trim() || null
          });
          props.onChanged();
        }}
      />
    </div>
  );
}

function Lineage(props: { model: string; version: number }): JSX.Element {
  const { model, openPath } = useMLPlat();
  const [open, setOpen] = React.useState(false);
  const lineage = useAsync(
    () => (open ? model.client.lineage(props.model, props.version) : Promise.resolve(null)),
    [open, props.model, props.version]
  );
  const l = lineage.value;
  return (
    <details
      className="jp-mlplat-lineage"
      onToggle={event => setOpen((event.target as HTMLDetailsElement).open)}
    >
      <summary>Lineage</summary>
      {lineage.error && <Message kind="error">{lineage.error}</Message>}
      {l && (
        <ul className="jp-mlplat-list jp-mlplat-small">
          {l.notebook && (
            <li>
              notebook{' '}
              <a
                href="#"
                className="jp-mlplat-link"
                onClick={event => {
                  event.preventDefault();
                  openPath(l.notebook as string);
                }}
              >
                {l.notebook}
              </a>
              {l.cells.length ? ` · cells ${l.cells.join(', ')}` : ''}
            </li>
          )}
          {l.step && (
            <li>
              step {l.step}
              {l.step_version ? ` · version ${l.step_version.slice(0, 12)}` : ''}
            </li>
          )}
          {Object.entries(l.inputs).map(([name, sha]) => (
            <li key={name}>
              input {name} · sha256 {String(sha).slice(0, 12)}
            </li>
          ))}
          {l.run && (
            <li>
              run {shortId(String(l.run.id ?? ''))} {l.run.status ? `(${l.run.status})` : ''}
            </li>
          )}
          <li>
            logged by {l.created_by} · {formatTime(l.created_at)}
          </li>
          {l.endpoints.map((e, i) => (
            <li key={i}>
              served by endpoint {String(e.endpoint ?? e.name ?? '')} revision{' '}
              {String(e.revision ?? '')}
            </li>
          ))}
        </ul>
      )}
    </details>
  );
}
