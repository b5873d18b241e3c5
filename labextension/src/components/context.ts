/**
 * What the sidebar's components share: the model (client + live state), JupyterLab's renderers
 * and commands. Given by the sidebar widget; components read it with `useMLPlat()`.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISignal } from '@lumino/signaling';
import * as React from 'react';

import { MLPlatModel } from '../model';

export interface IMLPlatContext {
  model: MLPlatModel;
  /** JupyterLab's renderers (the Vega-Lite one draws the charts); null: charts are left out. */
  rendermime: IRenderMimeRegistry | null;
  /** Open the executed notebook of a step in the main area. */
  openStepNotebook: (runId: string, step: string) => void;
  /** Open a file of the server root in the main area. */
  openPath: (path: string) => void;
  /** Run a JupyterLab command (`mlplat:run-pipeline`, ...). */
  execute: (command: string, args?: Record<string, any>) => void;
}

export const MLPlatContext = React.createContext<IMLPlatContext | null>(null);

export function useMLPlat(): IMLPlatContext {
  const context = React.useContext(MLPlatContext);
  if (!context) {
    throw new Error('jupyter-mlplat components need an MLPlatContext provider');
  }
  return context;
}

/** Re-render the calling component whenever one of the signals fires. */
export function useSignals(...signals: Array<ISignal<any, any>>): number {
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    const bump = (): void => setTick(t => t + 1);
    for (const signal of signals) {
      signal.connect(bump);
    }
    return () => {
      for (const signal of signals) {
        signal.disconnect(bump);
      }
    };
  }, signals);
  return tick;
}

/**
 * Load something asynchronously and keep its value, error and loading flag; `reload()` runs
 * the loader again. A stale answer (the deps changed meanwhile) is dropped.
 */
export function useAsync<T>(
  loader: () => Promise<T>,
  deps: React.DependencyList
): { value: T | null; error: string | null; loading: boolean; reload: () => void } {
  const [state, setState] = React.useState<{
    value: T | null;
    error: string | null;
    loading: boolean;
  }>({ value: null, error: null, loading: true });
  const [generation, setGeneration] = React.useState(0);
  React.useEffect(() => {
    let current = true;
    setState(s => ({ ...s, loading: true }));
    loader().then(
      value => current && setState({ value, error: null, loading: false }),
      error => current && setState({ value: null, error: (error as Error).message, loading: false })
    );
    return () => {
      current = false;
    };
  }, [...deps, generation]);
  return { ...state, reload: () => setGeneration(g => g + 1) };
}
