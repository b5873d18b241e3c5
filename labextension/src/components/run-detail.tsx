/**
 * One run: actions (cancel, resume), the DAG with live status colours, the steps with their
 * durations, logs, executed notebooks and re-run buttons, parameters, metrics and curves.
 */
import * as React from 'react';

import { IDescribeRun, IDescribeStepRun } from '../api';
import { metricCurvesSpec } from '../charts';
import { formatDuration, runGraph } from '../graph';
import { isFinished } from '../model';
import { ActionButton, formatTime, formatValue, Message, shortId, StatusBadge } from './common';
import { useAsync, useMLPlat, useSignals } from './context';
import { DagLegend, DagView } from './dag-view';
import { VegaChart } from './vega-chart';

const RESUMABLE = ['failed', 'cancelled', 'interrupted'];

export function RunDetail(props: { run: IDescribeRun }): JSX.Element {
  const { model } = useMLPlat();
  const { run } = props;
  const [step, setStep] = React.useState<string | null>(null);
  useSignals(model.pipelineChanged);
  const notebook = model.relativeNotebook(run.notebook);
  const pipelineState = model.pipelineState(notebook);
  React.useEffect(() => {
    if (!pipelineState) {
      void model.parsePipeline(notebook);
    }
  }, [notebook]);
  const graph = React.useMemo(
    () => runGraph(run, pipelineState?.pipeline ?? null),
    [run, pipelineState]
  );
  const selectedStep = run.steps.find(s => s.name === step) ?? null;

  const show = async (promise: Promise<IDescribeRun>): Promise<void> => {
    const next = await promise;
    model.upsertRun(next);
    model.show({ tab: 'runs', runId: next.id });
  };

  return (
    <section className="jp-mlplat-detail" aria-label={`run ${run.id}`} data-run={run.id}>
      <h3 className="jp-mlplat-heading">
        Run <code>{shortId(run.id)}</code> <StatusBadge status={run.status} />
      </h3>
      <div className="jp-mlplat-muted">
        {notebook} · started {formatTime(run.started_at ?? run.created_at)}
        {run.duration !== null && run.duration !== undefined
          ? ` · ${formatDuration(run.duration)}`
          : ''}
        {run.options?.selection ? ` · ${describeSelection(run.options.selection)}` : ''}
      </div>
      {run.error && <Message kind="error">{run.error}</Message>}
      <div className="jp-mlplat-toolbar">
        {!isFinished(run) && (
          <ActionButton
            label="Cancel"
            what={`Cancel run ${shortId(run.id)}`}
            action={async () => model.upsertRun(await model.client.cancelRun(run.id))}
          />
        )}
        {RESUMABLE.includes(run.status) && (
          <ActionButton
            label="Resume"
            title="Run again only the steps that did not succeed"
            what={`Resume run ${shortId(run.id)}`}
            action={() => show(model.client.resumeRun(run.id))}
          />
        )}
      </div>
      {run.steps.length > 0 && (
        <>
          <DagView graph={graph} selected={step} onSelect={setStep} />
          <DagLegend graph={graph} />
        </>
      )}
      <table className="jp-mlplat-table jp-mlplat-steps">
        <thead>
          <tr>
            <th>step</th>
            <th>status, time</th>
          </tr>
        </thead>
        <tbody>
          {run.steps.map(s => (
            <StepRow
              key={s.name}
              step={s}
              selected={s.name === step}
              onSelect={() => setStep(s.name === step ? null : s.name)}
            />
          ))}
        </tbody>
      </table>
      {selectedStep && (
        <StepPanel
          run={run}
          step={selectedStep}
          onRerun={mode => show(model.client.rerunStep(run.id, { step: selectedStep.name, mode }))}
        />
      )}
      <KeyValues title="Parameters" values={run.parameters} />
      <KeyValues title="Metrics" values={run.metrics} />
      {run.models.length > 0 && (
        <>
          <h4 className="jp-mlplat-heading">Models</h4>
          <ul className="jp-mlplat-list">
            {run.models.map(m => (
              <li key={`${m.model}@${m.version}`} className="jp-mlplat-row">
                <a
                  href="#"
                  className="jp-mlplat-link"
                  onClick={event => {
                    event.preventDefault();
                    model.show({ tab: 'models', model: m.model });
                  }}
                >
                  {m.model}@{m.version}
                </a>
                <StatusBadge status={m.verdict} title={m.summary ?? m.verdict} />
              </li>
            ))}
          </ul>
        </>
      )}
      <RunCurves run={run} />
    </section>
  );
}

function describeSelection(selection: unknown): string {
  if (!selection || typeof selection !== 'object') {
    return '';
  }
  const { only, from, to } = selection as Record<string, string | null>;
  if (only) {
    return `only ${only}`;
  }
  if (from) {
    return `from ${from}`;
  }
  return to ? `up to ${to}` : '';
}

/** What went wrong in a step, in one line. */
export function stepError(step: IDescribeStepRun): string | null {
  if (step.ename || step.evalue) {
    const where =
      step.error_cell_index !== null && step.error_cell_index !== undefined
        ? ` (cell ${step.error_cell_index} of the executed notebook)`
        : '';
    return `${step.ename ?? 'Error'}: ${step.evalue ?? ''}${where}`;
  }
  return step.message ?? null;
}

function StepRow(props: {
  step: IDescribeStepRun;
  selected: boolean;
  onSelect: () => void;
}): JSX.Element {
  const { step } = props;
  const error = stepError(step);
  return (
    <>
      <tr
        className={props.selected ? 'jp-mod-selected' : ''}
        data-step={step.name}
        data-status={step.status}
        onClick={props.onSelect}
      >
        <td>
          <a
            href="#"
            className="jp-mlplat-link"
            title="Show the step: log, executed notebook, re-run"
            onClick={event => event.preventDefault()}
          >
            {step.name}
          </a>
        </td>
        <td>
          <StatusBadge status={step.status} />{' '}
          <span className="jp-mlplat-muted">
            {step.cached && step.cached_from_run
              ? `from ${shortId(step.cached_from_run)}`
              : formatDuration(step.duration)}
          </span>
        </td>
      </tr>
      {error && (
        <tr className="jp-mlplat-step-error">
          <td colSpan={2}>
            <Message kind="error">{error}</Message>
          </td>
        </tr>
      )}
    </>
  );
}

/** The selected step: its actions and its log. */
function StepPanel(props: {
  run: IDescribeRun;
  step: IDescribeStepRun;
  onRerun: (mode: 'only' | 'from') => Promise<void>;
}): JSX.Element {
  const { openStepNotebook } = useMLPlat();
  const { run, step } = props;
  const hasNotebook =
    Boolean(step.executed_notebook) ||
    ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(step.status);
  return (
    <div className="jp-mlplat-step" data-step={step.name}>
      <h4 className="jp-mlplat-heading">
        {step.name} <StatusBadge status={step.status} />
        {step.worker ? <span className="jp-mlplat-muted"> on {step.worker}</span> : null}
      </h4>
      <div className="jp-mlplat-toolbar">
        <button
          type="button"
          className="jp-mlplat-button jp-mlplat-open-notebook"
          disabled={!hasNotebook}
          title="Open the executed notebook of this step"
          onClick={() => openStepNotebook(run.id, step.name)}
        >
          Executed notebook
        </button>
        <ActionButton
          label="Re-run step"
          title="A new run of this step only (inputs from earlier runs)"
          what={`Re-run ${step.name}`}
          disabled={!isFinished(run)}
          action={() => props.onRerun('only')}
        />
        <ActionButton
          label="Run from here"
          title="A new run of this step and every step after it"
          what={`Run from ${step.name}`}
          disabled={!isFinished(run)}
          action={() => props.onRerun('from')}
        />
      </div>
      <StepLog run={run} step={step} />
    </div>
  );
}

/** The cell output of a step; fetched again while the step runs, at each status change. */
function StepLog(props: { run: IDescribeRun; step: IDescribeStepRun }): JSX.Element {
  const { model } = useMLPlat();
  const { run, step } = props;
  const log = useAsync(
    () => model.client.stepLog(run.id, step.name),
    [run.id, step.name, step.status, step.finished_at]
  );
  return (
    <div className="jp-mlplat-log" aria-label={`log of ${step.name}`}>
      <div className="jp-mlplat-muted">
        Log{' '}
        {!isFinished(run) && (
          <button type="button" className="jp-mlplat-button" onClick={() => log.reload()}>
            Reload
          </button>
        )}
      </div>
      {log.error && <Message kind="error">{log.error}</Message>}
      {log.value !== null && <pre className="jp-mlplat-code">{log.value || '(no output)'}</pre>}
      {log.loading && log.value === null && <Message kind="loading">Loading…</Message>}
    </div>
  );
}

function KeyValues(props: { title: string; values: Record<string, unknown> }): JSX.Element {
  const entries = Object.entries(props.values ?? {});
  if (entries.length === 0) {
    return <></>;
  }
  return (
    <>
      <h4 className="jp-mlplat-heading">{props.title}</h4>
      <table className="jp-mlplat-table">
        <tbody>
          {entries.map(([key, value]) => (
            <tr key={key}>
              <td>{key}</td>
              <td>{formatValue(value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Metric curves (`log_metric` with `step`) of the run, fetched again when a step ends. */
function RunCurves(props: { run: IDescribeRun }): JSX.Element {
  const { model } = useMLPlat();
  const { run } = props;
  const finishedSteps = run.steps.filter(s => s.finished_at).length;
  const metrics = useAsync(
    () => model.client.runMetrics(run.id),
    [run.id, finishedSteps, run.status]
  );
  if (metrics.error) {
    return <Message kind="error">{metrics.error}</Message>;
  }
  const points = metrics.value?.metrics ?? [];
  if (!points.some(p => p.step !== null && p.step !== undefined)) {
    return <></>;
  }
  return (
    <>
      <h4 className="jp-mlplat-heading">Curves</h4>
      <VegaChart
        label={`metric curves of run ${run.id}`}
        build={theme => metricCurvesSpec(points, theme)}
      />
    </>
  );
}
