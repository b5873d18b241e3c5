/**
 * Compare tab: pick two or more runs; their parameters and metrics side by side with the
 * differences marked, and their metrics on one chart.
 */
import * as React from 'react';

import { ICompareRuns } from '../api';
import { compareRunsSpec, IRunSeries } from '../charts';
import { ActionButton, formatTime, formatValue, Message, shortId, StatusBadge } from './common';
import { useMLPlat, useSignals } from './context';
import { VegaChart } from './vega-chart';

/** Rows of the comparison table: `param.X` and `metric.Y`, each with one value a run. */
export function comparisonRows(result: ICompareRuns): Array<{
  key: string;
  kind: 'param' | 'metric';
  name: string;
  values: unknown[];
  differs: boolean;
}> {
  const rows = [];
  for (const [kind, table] of [
    ['param', result.params],
    ['metric', result.metrics]
  ] as const) {
    for (const [name, byRun] of Object.entries(table ?? {})) {
      const key = `${kind}.${name}`;
      rows.push({
        key,
        kind,
        name,
        values: result.runs.map(id => (byRun as Record<string, unknown>)[id] ?? null),
        differs: result.differs.includes(key)
      });
    }
  }
  return rows;
}

export function ComparePanel(): JSX.Element {
  const { model } = useMLPlat();
  useSignals(model.runsChanged);
  const [picked, setPicked] = React.useState<string[]>([]);
  const [result, setResult] = React.useState<ICompareRuns | null>(null);
  const [series, setSeries] = React.useState<IRunSeries[]>([]);
  const [onlyDiffs, setOnlyDiffs] = React.useState(false);
  const runs = model.runs;

  const toggle = (id: string): void =>
    setPicked(p => (p.includes(id) ? p.filter(x => x !== id) : [...p, id]));

  const compare = async (): Promise<void> => {
    const answer = await model.client.compareRuns(picked);
    setResult(answer);
    const curves = await Promise.all(
      answer.runs.map(async id => ({
        run: shortId(id),
        points: (await model.client.runMetrics(id)).metrics
      }))
    );
    setSeries(curves);
  };

  const rows = result ? comparisonRows(result).filter(r => !onlyDiffs || r.differs) : [];
  return (
    <div className="jp-mlplat-panel jp-mlplat-compare">
      <div className="jp-mlplat-toolbar">
        <span className="jp-mlplat-muted">Pick two or more runs.</span>
        <ActionButton
          label={`Compare ${picked.length || ''}`.trim()}
          accent
          disabled={picked.length < 2}
          what="Compare runs"
          action={compare}
        />
        {picked.length > 0 && (
          <button type="button" className="jp-mlplat-button" onClick={() => setPicked([])}>
            Clear
          </button>
        )}
      </div>
      <ul className="jp-mlplat-list jp-mlplat-pick" aria-label="runs to compare">
        {runs.map(run => (
          <li key={run.id} className="jp-mlplat-row" data-run={run.id}>
            <label className="jp-mlplat-check">
              <input
                type="checkbox"
                checked={picked.includes(run.id)}
                onChange={() => toggle(run.id)}
              />
              <code>{shortId(run.id)}</code>{' '}
              <span className="jp-mlplat-muted" title={formatTime(run.created_at)}>
                {run.pipeline}
              </span>
            </label>
            <StatusBadge status={run.status} />
          </li>
        ))}
      </ul>
      {runs.length < 2 && <Message>Comparing needs at least two runs.</Message>}
      {result && (
        <section className="jp-mlplat-detail" aria-label="comparison">
          <label className="jp-mlplat-check">
            <input
              type="checkbox"
              checked={onlyDiffs}
              onChange={event => setOnlyDiffs(event.target.checked)}
            />
            differences only ({result.differs.length})
          </label>
          <table className="jp-mlplat-table jp-mlplat-comparison">
            <thead>
              <tr>
                <th />
                {result.runs.map(id => (
                  <th key={id} title={result.pipelines[id] ?? ''}>
                    {shortId(id)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map(row => (
                <tr
                  key={row.key}
                  className={row.differs ? 'jp-mlplat-differs' : ''}
                  data-key={row.key}
                >
                  <td>
                    <span className="jp-mlplat-muted">{row.kind}</span> {row.name}
                    {row.differs && (
                      <span className="jp-mlplat-diff-mark" title="differs">
                        {' '}
                        ≠
                      </span>
                    )}
                  </td>
                  {row.values.map((value, i) => (
                    <td key={i}>{formatValue(value)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          <VegaChart
            label="compared runs"
            empty="These runs logged no metrics."
            build={theme => compareRunsSpec(series, theme)}
          />
        </section>
      )}
    </div>
  );
}
