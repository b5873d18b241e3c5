/**
 * Runs tab: the owner's runs, live (server-sent events), and one run in detail.
 */
import * as React from 'react';

import { IDescribeRun } from '../api';
import { formatDuration } from '../graph';
import { formatTime, Message, shortId, StatusBadge } from './common';
import { useMLPlat, useSignals } from './context';
import { RunDetail } from './run-detail';

export function RunsPanel(props: {
  selected: string | null;
  onSelect: (runId: string | null) => void;
}): JSX.Element {
  const { model } = useMLPlat();
  useSignals(model.runsChanged, model.currentNotebookChanged);
  const [onlyThis, setOnlyThis] = React.useState(false);
  const current = model.currentNotebook;
  const runs = model.runs.filter(
    run => !onlyThis || !current || model.relativeNotebook(run.notebook) === current
  );
  const selected = props.selected ? model.getRun(props.selected) : undefined;

  React.useEffect(() => {
    if (props.selected && !selected) {
      model.loadRun(props.selected).catch(() => undefined);
    }
  }, [props.selected]);

  return (
    <div className="jp-mlplat-panel jp-mlplat-runs">
      <div className="jp-mlplat-toolbar">
        <ConnectionState />
        <label className="jp-mlplat-check">
          <input
            type="checkbox"
            checked={onlyThis}
            disabled={!current}
            onChange={event => setOnlyThis(event.target.checked)}
          />
          this notebook only
        </label>
      </div>
      {model.loadError && <Message kind="error">{model.loadError}</Message>}
      {runs.length === 0 && !model.loadError && (
        <Message>No runs yet. Press "Run pipeline" on a notebook's toolbar to start one.</Message>
      )}
      <ul className="jp-mlplat-list" aria-label="runs">
        {runs.map(run => (
          <RunRow
            key={run.id}
            run={run}
            selected={run.id === props.selected}
            onClick={() => props.onSelect(run.id === props.selected ? null : run.id)}
          />
        ))}
      </ul>
      {selected && <RunDetail run={selected} />}
    </div>
  );
}

function RunRow(props: { run: IDescribeRun; selected: boolean; onClick: () => void }): JSX.Element {
  const { run } = props;
  const done = run.steps.filter(s => s.status === 'succeeded' || s.status === 'cached').length;
  return (
    <li
      className={`jp-mlplat-row${props.selected ? ' jp-mod-selected' : ''}`}
      data-run={run.id}
      data-status={run.status}
      onClick={props.onClick}
      tabIndex={0}
      onKeyDown={event => {
        if (event.key === 'Enter') {
          props.onClick();
        }
      }}
    >
      <span className="jp-mlplat-row-main">
        <code>{shortId(run.id)}</code> {run.pipeline}
      </span>
      <span className="jp-mlplat-row-side">
        <span className="jp-mlplat-muted" title={formatTime(run.created_at)}>
          {run.steps.length > 0 ? `${done}/${run.steps.length}` : ''} {formatDuration(run.duration)}
        </span>{' '}
        <StatusBadge status={run.status} />
      </span>
    </li>
  );
}

/** Whether live updates arrive: the event stream's state. */
export function ConnectionState(): JSX.Element {
  const { model } = useMLPlat();
  useSignals(model.events.stateChanged);
  const state = model.connection;
  const words = { open: 'live', connecting: 'connecting…', closed: 'not live' }[state];
  return (
    <span
      className={`jp-mlplat-live jp-mlplat-live-${state}`}
      title={
        state === 'open'
          ? 'Status changes arrive as they happen'
          : 'The event stream is not connected; it reconnects by itself'
      }
    >
      ● {words}
    </span>
  );
}
