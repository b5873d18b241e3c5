/**
 * "Promote to pipeline step": a dialog (name, runs after, GPUs, cache) whose answer is written
 * to the cell's `metadata.mlplat`.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IStepOptions, validateStepOptions } from './marks';

export interface IPromoteFormProps {
  initial: IStepOptions;
  /** The notebook's other steps (what the step may run after). */
  otherSteps: string[];
  /** Step names already used by another cell (the same name extends that step). */
  usedElsewhere: string[];
  onChange: (values: IStepOptions) => void;
}

export function PromoteForm(props: IPromoteFormProps): JSX.Element {
  const [values, setValues] = React.useState<IStepOptions>(props.initial);
  const update = (patch: Partial<IStepOptions>): void => {
    const next = { ...values, ...patch };
    setValues(next);
    props.onChange(next);
  };
  const problems = validateStepOptions(values, props.otherSteps);
  const extends_ = props.usedElsewhere.includes(values.name);
  return (
    <div className="jp-mlplat-form jp-mlplat-promote">
      <label>
        Step name
        <input
          className="jp-mlplat-input"
          name="step-name"
          autoFocus
          value={values.name}
          onChange={event => update({ name: event.target.value.trim() })}
        />
      </label>
      {extends_ && (
        <div className="jp-mlplat-muted">
          Another cell already starts step "{values.name}": this cell will extend that step.
        </div>
      )}
      <fieldset className="jp-mlplat-fieldset">
        <legend>Runs after</legend>
        {props.otherSteps.length === 0 && (
          <div className="jp-mlplat-muted">No other steps yet.</div>
        )}
        {props.otherSteps.map(name => (
          <label key={name} className="jp-mlplat-check">
            <input
              type="checkbox"
              name="after"
              value={name}
              checked={values.after.includes(name)}
              onChange={event =>
                update({
                  after: event.target.checked
                    ? [...values.after, name]
                    : values.after.filter(n => n !== name)
                })
              }
            />
            {name}
          </label>
        ))}
        <div className="jp-mlplat-muted">
          Steps that read a name another step defines run after it anyway; this is for order without
          data.
        </div>
      </fieldset>
      <label>
        GPUs
        <input
          className="jp-mlplat-input jp-mlplat-number"
          type="number"
          name="gpus"
          min={0}
          step={1}
          value={Number.isNaN(values.gpu) ? '' : values.gpu}
          onChange={event =>
            update({ gpu: event.target.value === '' ? 0 : Number(event.target.value) })
          }
        />
      </label>
      <label className="jp-mlplat-check">
        <input
          type="checkbox"
          name="cache"
          checked={values.cache}
          onChange={event => update({ cache: event.target.checked })}
        />
        Cache: skip the step when its code, inputs and parameters are unchanged
      </label>
      {problems.map(problem => (
        <div key={problem} className="jp-mlplat-message jp-mlplat-message-error" role="alert">
          {problem}
        </div>
      ))}
    </div>
  );
}

class PromoteBody extends ReactWidget implements Dialog.IBodyWidget<IStepOptions> {
  constructor(private readonly _props: Omit<IPromoteFormProps, 'onChange'>) {
    super();
    this._values = _props.initial;
    this.addClass('jp-mlplat-dialog-body');
  }

  getValue(): IStepOptions {
    return this._values;
  }

  render(): JSX.Element {
    return <PromoteForm {...this._props} onChange={values => (this._values = values)} />;
  }

  private _values: IStepOptions;
}

/** What the dialog returns: new options, a request to remove the mark, or nothing. */
export type PromoteAnswer =
  { action: 'promote'; values: IStepOptions } | { action: 'remove' } | null;

/**
 * Ask for the step's options until they are valid or the user cancels.
 *
 * @param isStep - the cell is a step already (offers "Remove step mark")
 */
export async function askStepOptions(
  options: Omit<IPromoteFormProps, 'onChange'> & { isStep: boolean }
): Promise<PromoteAnswer> {
  let initial = options.initial;
  for (;;) {
    const buttons = [
      Dialog.cancelButton(),
      ...(options.isStep
        ? [Dialog.warnButton({ label: 'Remove step mark', actions: ['remove'] })]
        : []),
      Dialog.okButton({ label: options.isStep ? 'Save' : 'Promote' })
    ];
    const result = await showDialog<IStepOptions>({
      title: options.isStep ? `Pipeline step "${initial.name}"` : 'Promote to pipeline step',
      body: new PromoteBody({ ...options, initial }),
      buttons,
      focusNodeSelector: 'input[name="step-name"]'
    });
    if (result.button.actions.includes('remove')) {
      return { action: 'remove' };
    }
    if (!result.button.accept || !result.value) {
      return null;
    }
    if (validateStepOptions(result.value, options.otherSteps).length === 0) {
      return { action: 'promote', values: result.value };
    }
    initial = result.value; // shown again with its problems listed
  }
}
