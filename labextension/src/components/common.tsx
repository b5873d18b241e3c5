/**
 * Small pieces shared by the sidebar's panels: status badges, messages, buttons, copy.
 */
import { Clipboard } from '@jupyterlab/apputils';
import * as React from 'react';

import { STATE_LABELS, NodeState } from '../graph';
import { showError } from '../notify';

/** A coloured pill with a run, step or verdict status. */
export function StatusBadge(props: { status: string; title?: string }): JSX.Element {
  const label = (STATE_LABELS as Record<string, string>)[props.status as NodeState] ?? props.status;
  return (
    <span
      className={`jp-mlplat-status jp-mlplat-status-${props.status}`}
      data-status={props.status}
      title={props.title ?? label}
    >
      {label}
    </span>
  );
}

/** A message line: an error (the server's words), a hint, or a loading note. */
export function Message(props: {
  kind?: 'error' | 'info' | 'loading';
  children: React.ReactNode;
}): JSX.Element {
  const kind = props.kind ?? 'info';
  return (
    <div
      className={`jp-mlplat-message jp-mlplat-message-${kind}`}
      role={kind === 'error' ? 'alert' : undefined}
    >
      {props.children}
    </div>
  );
}

/**
 * A button that runs an async action, disables itself meanwhile and shows a failure as a
 * notification (with the server's message).
 */
export function ActionButton(props: {
  label: string;
  action: () => Promise<unknown> | unknown;
  /** What failed, for the notification ("Cancel run abc"). */
  what: string;
  title?: string;
  disabled?: boolean;
  accent?: boolean;
  className?: string;
}): JSX.Element {
  const [busy, setBusy] = React.useState(false);
  const mounted = React.useRef(true);
  React.useEffect(
    () => () => {
      mounted.current = false;
    },
    []
  );
  const onClick = async (): Promise<void> => {
    setBusy(true);
    try {
      await props.action();
    } catch (error) {
      showError(props.what, error);
    } finally {
      if (mounted.current) {
        setBusy(false);
      }
    }
  };
  const classes = ['jp-mlplat-button', props.accent ? 'jp-mod-accept' : '', props.className ?? '']
    .filter(Boolean)
    .join(' ');
  return (
    <button
      type="button"
      className={classes}
      title={props.title}
      disabled={props.disabled || busy}
      onClick={() => void onClick()}
    >
      {props.label}
    </button>
  );
}

/** A code block with a "Copy" button. */
export function CopyBlock(props: { text: string; label?: string }): JSX.Element {
  const [copied, setCopied] = React.useState(false);
  return (
    <div className="jp-mlplat-copy">
      <pre className="jp-mlplat-code">{props.text}</pre>
      <button
        type="button"
        className="jp-mlplat-button"
        onClick={() => {
          Clipboard.copyToSystem(props.text);
          setCopied(true);
        }}
      >
        {copied ? 'Copied' : (props.label ?? 'Copy')}
      </button>
    </div>
  );
}

/** "2026-03-01 14:05:12" in local time, or "" */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A number with 4 significant decimals, or the value as text. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    if (Number.isInteger(value)) {
      return String(value);
    }
    const text = value.toPrecision(4);
    return text.includes('.') && !text.includes('e')
      ? text.replace(/0+$/, '').replace(/\.$/, '')
      : text;
  }
  if (value === null || value === undefined) {
    return '—';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The first 8 characters of a run id, as the CLI shows it. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}
