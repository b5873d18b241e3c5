/**
 * "Run pipeline": the parameters dialog (typed like each parameter's default), which steps to run
 * (all, only one, from one, up to one) and which to force past the cache.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ICreateRun, IDescribePipeline, IParameterInfo } from '../api';

export type SelectionMode = 'all' | 'only' | 'from' | 'to';

export interface IRunFormValues {
  /** Raw form input a parameter: text, or a boolean for `bool` parameters. */
  params: Record<string, string | boolean>;
  mode: SelectionMode;
  step: string;
  force: string[];
}

/**
 * Whether the default is a literal the server could send as JSON (an expression such as
 * `np.arange(3)` comes as `default: null` with a source that is not `None`).
 */
export function isLiteral(param: IParameterInfo): boolean {
  return !(param.default === null && param.source.trim() !== 'None');
}

/** The text a parameter's field starts with: its default, as JSON where it is a literal. */
export function initialText(param: IParameterInfo): string | boolean {
  if (param.type_name === 'bool' && typeof param.default === 'boolean') {
    return param.default;
  }
  if (!isLiteral(param)) {
    return '';
  }
  if (typeof param.default === 'string') {
    return param.default;
  }
  return JSON.stringify(param.default);
}

/**
 * The value to send for one parameter, typed like its default (as the CLI's `-p` does), or
 * why the input does not fit. `undefined` value: keep the notebook's default.
 */
export function coerceParameter(
  param: IParameterInfo,
  raw: string | boolean
): { value?: unknown; error?: string } {
  const type = param.type_name;
  if (typeof raw === 'boolean') {
    return { value: raw };
  }
  const text = raw.trim();
  if (text === '' && type !== 'str') {
    return isLiteral(param)
      ? { error: `${param.name}: give a value (the default is ${param.source}).` }
      : {};
  }
  switch (type) {
    case 'int': {
      if (!/^[-+]?\d+$/.test(text)) {
        return { error: `${param.name} is an int: "${text}" is not a whole number.` };
      }
      return { value: Number(text) };
    }
    case 'float': {
      const value = Number(text);
      if (!Number.isFinite(value)) {
        return { error: `${param.name} is a float: "${text}" is not a number.` };
      }
      return { value };
    }
    case 'str':
    case 'string':
      return { value: raw };
    case 'bool':
    case 'boolean': {
      const lower = text.toLowerCase();
      if (['true', '1', 'yes'].includes(lower)) {
        return { value: true };
      }
      if (['false', '0', 'no'].includes(lower)) {
        return { value: false };
      }
      return { error: `${param.name} is a bool: use true or false, not "${text}".` };
    }
    default: {
      try {
        return { value: JSON.parse(text) };
      } catch {
        return {
          error: `${param.name} (${type}): "${text}" is not valid JSON; write lists as [1, 2] and strings in double quotes.`
        };
      }
    }
  }
}

/** Whether the value equals the parameter's default (then it is not sent). */
function sameAsDefault(param: IParameterInfo, value: unknown): boolean {
  return isLiteral(param) && JSON.stringify(value) === JSON.stringify(param.default);
}

/**
 * The `POST runs` body for the form's values, or the problems with them.
 */
export function buildCreateRun(
  notebook: string,
  pipeline: IDescribePipeline,
  values: IRunFormValues
): { body: ICreateRun | null; problems: string[] } {
  const problems: string[] = [];
  const parameters: Record<string, unknown> = {};
  for (const param of pipeline.parameters ?? []) {
    const raw = values.params[param.name];
    if (raw === undefined) {
      continue;
    }
    const { value, error } = coerceParameter(param, raw);
    if (error) {
      problems.push(error);
    } else if (value !== undefined && !sameAsDefault(param, value)) {
      parameters[param.name] = value;
    }
  }
  const steps = pipeline.steps.map(s => s.name);
  const selection: ICreateRun['selection'] = {};
  if (values.mode !== 'all') {
    if (!steps.includes(values.step)) {
      problems.push(`Pick the step to run ${values.mode === 'to' ? 'up to' : values.mode}.`);
    } else {
      selection[values.mode] = values.step;
    }
  }
  const force = values.force.filter(name => steps.includes(name));
  if (problems.length > 0) {
    return { body: null, problems };
  }
  return { body: { notebook, parameters, selection, force }, problems };
}

export function RunForm(props: {
  pipeline: IDescribePipeline;
  initial: IRunFormValues;
  onChange: (values: IRunFormValues) => void;
}): JSX.Element {
  const [values, setValues] = React.useState(props.initial);
  const update = (patch: Partial<IRunFormValues>): void => {
    const next = { ...values, ...patch };
    setValues(next);
    props.onChange(next);
  };
  const params = props.pipeline.parameters ?? [];
  const steps = props.pipeline.steps.map(s => s.name);
  const { problems } = buildCreateRun(props.pipeline.notebook, props.pipeline, values);
  return (
    <div className="jp-mlplat-form jp-mlplat-run-form">
      <div className="jp-mlplat-muted">
        The notebook was saved: the run uses what you see. {steps.length} step
        {steps.length === 1 ? '' : 's'}
        {props.pipeline.steps.some(s => s.cached)
          ? `, ${props.pipeline.steps.filter(s => s.cached).length} unchanged (from cache)`
          : ''}
        .
      </div>
      {params.length > 0 ? (
        <fieldset className="jp-mlplat-fieldset">
          <legend>Parameters</legend>
          {params.map(param => {
            const raw = values.params[param.name];
            const setRaw = (next: string | boolean): void =>
              update({ params: { ...values.params, [param.name]: next } });
            return (
              <label key={param.name} className={typeof raw === 'boolean' ? 'jp-mlplat-check' : ''}>
                {typeof raw === 'boolean' ? (
                  <>
                    <input
                      type="checkbox"
                      name={`param-${param.name}`}
                      checked={raw}
                      onChange={event => setRaw(event.target.checked)}
                    />
                    {param.name}
                  </>
                ) : (
                  <>
                    {param.name} <span className="jp-mlplat-muted">{param.type_name}</span>
                    <input
                      className="jp-mlplat-input"
                      name={`param-${param.name}`}
                      value={raw ?? ''}
                      placeholder={param.source}
                      onChange={event => setRaw(event.target.value)}
                    />
                  </>
                )}
              </label>
            );
          })}
        </fieldset>
      ) : (
        <div className="jp-mlplat-muted">
          This notebook has no parameters cell (tag a cell "parameters" to add some).
        </div>
      )}
      <fieldset className="jp-mlplat-fieldset">
        <legend>Steps</legend>
        <select
          className="jp-mlplat-input"
          name="selection-mode"
          value={values.mode}
          onChange={event => update({ mode: event.target.value as SelectionMode })}
        >
          <option value="all">all steps</option>
          <option value="only">only</option>
          <option value="from">from (and everything after)</option>
          <option value="to">up to (and everything before)</option>
        </select>
        {values.mode !== 'all' && (
          <select
            className="jp-mlplat-input"
            name="selection-step"
            value={values.step}
            onChange={event => update({ step: event.target.value })}
          >
            <option value="">(pick a step)</option>
            {steps.map(s => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        )}
      </fieldset>
      {steps.length > 0 && (
        <details className="jp-mlplat-fieldset">
          <summary>Ignore the cache for…</summary>
          {steps.map(s => (
            <label key={s} className="jp-mlplat-check">
              <input
                type="checkbox"
                name="force"
                value={s}
                checked={values.force.includes(s)}
                onChange={event =>
                  update({
                    force: event.target.checked
                      ? [...values.force, s]
                      : values.force.filter(x => x !== s)
                  })
                }
              />
              {s}
            </label>
          ))}
        </details>
      )}
      {problems.map(problem => (
        <div key={problem} className="jp-mlplat-message jp-mlplat-message-error" role="alert">
          {problem}
        </div>
      ))}
    </div>
  );
}

class RunBody extends ReactWidget implements Dialog.IBodyWidget<IRunFormValues> {
  constructor(
    private readonly _pipeline: IDescribePipeline,
    initial: IRunFormValues
  ) {
    super();
    this._values = initial;
    this.addClass('jp-mlplat-dialog-body');
  }

  getValue(): IRunFormValues {
    return this._values;
  }

  render(): JSX.Element {
    return (
      <RunForm
        pipeline={this._pipeline}
        initial={this._values}
        onChange={values => (this._values = values)}
      />
    );
  }

  private _values: IRunFormValues;
}

/**
 * Ask for parameters and a selection until they are valid; null when cancelled.
 */
export async function askRunOptions(
  notebook: string,
  pipeline: IDescribePipeline
): Promise<ICreateRun | null> {
  let values: IRunFormValues = {
    params: Object.fromEntries((pipeline.parameters ?? []).map(p => [p.name, initialText(p)])),
    mode: 'all',
    step: '',
    force: []
  };
  for (;;) {
    const result = await showDialog<IRunFormValues>({
      title: `Run pipeline ${pipeline.name}`,
      body: new RunBody(pipeline, values),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })]
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    values = result.value;
    const { body } = buildCreateRun(notebook, pipeline, values);
    if (body) {
      return body;
    }
  }
}
