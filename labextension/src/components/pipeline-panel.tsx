/**
 * Pipeline tab: the DAG of the notebook in focus (steps, data edges, which steps a run now would
 * take from the cache), its parameters, and the problems in its marks.
 */
import * as React from 'react';

import { IDescribePipeline, IDescribeRun } from '../api';
import { pipelineGraph } from '../graph';
import { isFinished } from '../model';
import { ActionButton, formatValue, Message, shortId, StatusBadge } from './common';
import { useMLPlat, useSignals } from './context';
import { DagLegend, DagView } from './dag-view';

/** The newest run of a notebook, if any. */
export function latestRunOf(
  runs: IDescribeRun[],
  notebook: string,
  relative: (path: string) => string = path => path
): IDescribeRun | null {
  return runs.find(run => relative(run.notebook) === notebook) ?? null;
}

/** "reads df_train, NUMERIC from split; X_num from featurize_numeric · writes model" */
export function describeIO(inputs: Record<string, string>, outputs: string[]): string {
  const byProducer = new Map<string, string[]>();
  for (const [name, producer] of Object.entries(inputs)) {
    byProducer.set(producer, [...(byProducer.get(producer) ?? []), name]);
  }
  const reads = [...byProducer.entries()]
    .map(([producer, names]) => `${names.join(', ')} from ${producer}`)
    .join('; ');
  const parts = [
    reads ? `reads ${reads}` : '',
    outputs.length ? `writes ${outputs.join(', ')}` : ''
  ];
  return parts.filter(Boolean).join(' · ');
}

export function PipelinePanel(): JSX.Element {
  const { model, execute } = useMLPlat();
  useSignals(model.currentNotebookChanged, model.pipelineChanged, model.runsChanged);
  const path = model.currentNotebook;
  const state = path ? model.pipelineState(path) : undefined;

  React.useEffect(() => {
    if (path && !model.pipelineState(path)) {
      void model.parsePipeline(path);
    }
  }, [path]);

  if (!path) {
    return <Message>Open a notebook to see its pipeline.</Message>;
  }
  const latest = latestRunOf(model.runs, path, p => model.relativeNotebook(p));
  return (
    <div className="jp-mlplat-panel jp-mlplat-pipeline">
      <div className="jp-mlplat-toolbar">
        <span className="jp-mlplat-path" title={path}>
          {path}
        </span>
        <ActionButton
          label="Check again"
          title="Parse the saved notebook again"
          what="Parse the pipeline"
          action={() => model.parsePipeline(path)}
        />
        <ActionButton
          label="Run pipeline"
          accent
          what="Run the pipeline"
          action={() => execute('mlplat:run-pipeline')}
        />
      </div>
      {!state && <Message kind="loading">Parsing {path}…</Message>}
      {state?.error && <Message kind="error">{state.error}</Message>}
      {state?.pipeline && <PipelineView pipeline={state.pipeline} latest={latest} />}
    </div>
  );
}

function PipelineView(props: {
  pipeline: IDescribePipeline;
  latest: IDescribeRun | null;
}): JSX.Element {
  const { model } = useMLPlat();
  const { pipeline, latest } = props;
  const live = latest && !isFinished(latest) ? latest : null;
  const graph = React.useMemo(() => pipelineGraph(pipeline, live), [pipeline, live]);
  const errors = pipeline.errors ?? [];
  return (
    <>
      {errors.length > 0 && (
        <div className="jp-mlplat-errors" role="alert">
          {errors.map((error, i) => (
            <Message key={i} kind="error">
              {error.message}
            </Message>
          ))}
        </div>
      )}
      {latest && (
        <div className="jp-mlplat-line">
          {live ? 'Running now' : 'Latest run'}:{' '}
          <a
            href="#"
            className="jp-mlplat-link"
            onClick={event => {
              event.preventDefault();
              model.show({ tab: 'runs', runId: latest.id });
            }}
          >
            {shortId(latest.id)}
          </a>{' '}
          <StatusBadge status={latest.status} />
        </div>
      )}
      {pipeline.steps.length > 0 ? (
        <>
          <DagView graph={graph} />
          <DagLegend graph={graph} />
          <ul className="jp-mlplat-list jp-mlplat-pipeline-steps">
            {pipeline.steps.map(step => (
              <li key={step.name} data-step={step.name} className="jp-mlplat-step-line">
                <div>
                  <strong>{step.name}</strong>{' '}
                  <StatusBadge status={step.cached ? 'cached' : 'will-run'} />
                  {step.gpus ? <span className="jp-mlplat-chip">{step.gpus} GPU</span> : null}
                  {step.cache === false ? <span className="jp-mlplat-chip">no cache</span> : null}
                </div>
                <div className="jp-mlplat-muted">{describeIO(step.inputs ?? {}, step.outputs)}</div>
              </li>
            ))}
          </ul>
        </>
      ) : (
        errors.length === 0 && <Message>This notebook has no code cells.</Message>
      )}
      {(pipeline.parameters ?? []).length > 0 && (
        <>
          <h4 className="jp-mlplat-heading">Parameters</h4>
          <table className="jp-mlplat-table">
            <tbody>
              {(pipeline.parameters ?? []).map(p => (
                <tr key={p.name}>
                  <td>{p.name}</td>
                  <td>
                    <code>{p.source || formatValue(p.default)}</code>
                  </td>
                  <td className="jp-mlplat-muted">{p.type_name}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
