/**
 * "Deploy model": pick a model and a version (blessed ones first, verdict shown), the endpoint,
 * a canary share and a shadow; the answer is a `POST endpoints` body.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import {
  ICreateDeployment,
  IDescribeModel,
  IDescribeModelVersion,
  IModelSummary,
  MLPlatClient
} from '../api';

/** Endpoint and model names the server accepts (`store/registry.py`'s NAME_RE). */
export const ENDPOINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface IDeployFormValues {
  model: string;
  version: number | null;
  endpoint: string;
  /** 0: all traffic to the version; 1-99: a canary beside what the endpoint serves now. */
  canary: number;
  shadow: boolean;
  shadowVersion: number | null;
  /** Percent of requests mirrored to the shadow. */
  shadowShare: number;
  public: boolean;
  force: boolean;
  reason: string;
}

const VERDICT_ORDER = { blessed: 0, unvalidated: 1, rejected: 2 };

/** Versions for the picker: blessed first, then unvalidated, then rejected; newest first in each. */
export function orderVersions(versions: IDescribeModelVersion[]): IDescribeModelVersion[] {
  return [...versions].sort(
    (a, b) =>
      VERDICT_ORDER[a.verdict_status] - VERDICT_ORDER[b.verdict_status] || b.version - a.version
  );
}

/** "v3 · blessed · production" with the verdict's summary for rejected ones. */
export function versionLabel(v: IDescribeModelVersion): string {
  const parts = [`v${v.version}`, v.verdict_status];
  if (v.aliases.length > 0) {
    parts.push(v.aliases.join(', '));
  }
  const why = v.verdict_status === 'rejected' ? v.verdict?.summary : v.verdict_reason;
  return parts.join(' · ') + (why ? ` — ${why}` : '');
}

/** The reasons of a version's failed checks, for the "not blessed" message. */
export function failedReasons(v: IDescribeModelVersion): string {
  const failed = (v.verdict?.checks ?? []).filter(c => c.status === 'failed').map(c => c.reason);
  if (failed.length > 0) {
    return failed.join('; ');
  }
  return v.verdict?.summary ?? v.verdict_reason ?? 'it has no verdict (no validation policy)';
}

/** What is wrong with the form, one message a problem. */
export function deploymentProblems(
  values: IDeployFormValues,
  version: IDescribeModelVersion | undefined
): string[] {
  const problems: string[] = [];
  if (!values.model) {
    problems.push('Pick a model.');
    return problems;
  }
  if (values.version === null || !version) {
    problems.push(`Pick a version of ${values.model}.`);
  }
  if (!ENDPOINT_NAME.test(values.endpoint)) {
    problems.push(
      `"${values.endpoint}" is not a valid endpoint name: 1-128 letters, digits, ".", "_" or "-", ` +
        'starting with a letter or digit.'
    );
  }
  if (!Number.isInteger(values.canary) || values.canary < 0 || values.canary > 99) {
    problems.push('Canary is a whole percentage from 0 (all traffic) to 99.');
  }
  if (values.shadow) {
    if (values.shadowVersion === null) {
      problems.push('Pick the version that gets the mirrored traffic.');
    } else if (values.shadowVersion === values.version) {
      problems.push('The shadow must be another version than the one deployed.');
    }
    if (!(values.shadowShare > 0 && values.shadowShare <= 100)) {
      problems.push('The shadow share is a percentage above 0 and at most 100.');
    }
  }
  if (version && version.verdict_status !== 'blessed') {
    if (!values.force) {
      problems.push(
        `${values.model}@${version.version} is ${version.verdict_status}: ${failedReasons(version)}. ` +
          'Only a blessed version deploys; tick "Deploy anyway" and give a reason to override.'
      );
    } else if (!values.reason.trim()) {
      problems.push('Deploying a version that is not blessed needs a reason (it is recorded).');
    }
  }
  return problems;
}

/** The `POST endpoints` body for valid form values. */
export function buildDeployment(values: IDeployFormValues): ICreateDeployment {
  const body: ICreateDeployment = {
    model: values.model,
    version: values.version,
    endpoint: values.endpoint,
    force: values.force,
    public: values.public
  };
  if (values.canary > 0) {
    body.canary = values.canary;
  }
  if (values.shadow && values.shadowVersion !== null) {
    body.shadow = `${values.model}@${values.shadowVersion}`;
    body.shadow_share = values.shadowShare / 100;
  }
  if (values.force) {
    body.reason = values.reason.trim();
  }
  return body;
}

export function DeployForm(props: {
  client: MLPlatClient;
  models: IModelSummary[];
  initial: IDeployFormValues;
  onChange: (values: IDeployFormValues, version: IDescribeModelVersion | undefined) => void;
}): JSX.Element {
  const [values, setValues] = React.useState(props.initial);
  const [detail, setDetail] = React.useState<IDescribeModel | null>(null);
  const [error, setError] = React.useState<string | null>(null);

  React.useEffect(() => {
    let current = true;
    setDetail(null);
    if (!values.model) {
      return;
    }
    props.client.getModel(values.model).then(
      model => {
        if (!current) {
          return;
        }
        setDetail(model);
        setError(null);
        const ordered = orderVersions(model.versions);
        if (!model.versions.some(v => v.version === values.version)) {
          change({ version: ordered[0]?.version ?? null }, model);
        } else {
          change({}, model);
        }
      },
      e => current && setError((e as Error).message)
    );
    return () => {
      current = false;
    };
  }, [values.model]);

  const versionOf = (
    model: IDescribeModel | null,
    v: number | null
  ): IDescribeModelVersion | undefined => model?.versions.find(x => x.version === v);

  function change(patch: Partial<IDeployFormValues>, model: IDescribeModel | null = detail): void {
    setValues(previous => {
      const next = { ...previous, ...patch };
      props.onChange(next, versionOf(model, next.version));
      return next;
    });
  }

  const ordered = orderVersions(detail?.versions ?? []);
  const selected = versionOf(detail, values.version);
  const problems = detail ? deploymentProblems(values, selected) : [];
  return (
    <div className="jp-mlplat-form jp-mlplat-deploy-form">
      <label>
        Model
        <select
          className="jp-mlplat-input"
          name="model"
          value={values.model}
          onChange={event =>
            change({
              model: event.target.value,
              version: null,
              endpoint: values.endpoint === values.model ? event.target.value : values.endpoint
            })
          }
        >
          {props.models.map(m => (
            <option key={m.name} value={m.name}>
              {m.name}
            </option>
          ))}
        </select>
      </label>
      {error && <div className="jp-mlplat-message jp-mlplat-message-error">{error}</div>}
      <label>
        Version
        <select
          className="jp-mlplat-input"
          name="version"
          value={values.version ?? ''}
          disabled={!detail}
          onChange={event => change({ version: Number(event.target.value) })}
        >
          {ordered.map(v => (
            <option key={v.version} value={v.version} data-verdict={v.verdict_status}>
              {versionLabel(v)}
            </option>
          ))}
        </select>
      </label>
      {selected?.verdict && (
        <div className={`jp-mlplat-verdict jp-mlplat-verdict-${selected.verdict_status}`}>
          {selected.verdict.summary}
          <ul>
            {selected.verdict.checks.map((c, i) => (
              <li key={i} data-check={c.status}>
                {c.status === 'passed' ? '✓' : c.status === 'failed' ? '✗' : '–'} {c.reason}
              </li>
            ))}
          </ul>
        </div>
      )}
      <label>
        Endpoint
        <input
          className="jp-mlplat-input"
          name="endpoint"
          value={values.endpoint}
          onChange={event => change({ endpoint: event.target.value.trim() })}
        />
      </label>
      <label>
        Canary % <span className="jp-mlplat-muted">(0: all traffic to this version)</span>
        <input
          className="jp-mlplat-input jp-mlplat-number"
          type="number"
          name="canary"
          min={0}
          max={99}
          value={values.canary}
          onChange={event => change({ canary: Number(event.target.value) })}
        />
      </label>
      <label className="jp-mlplat-check">
        <input
          type="checkbox"
          name="shadow"
          checked={values.shadow}
          onChange={event => change({ shadow: event.target.checked })}
        />
        Shadow: mirror requests to another version (its answers are logged, not returned)
      </label>
      {values.shadow && (
        <div className="jp-mlplat-form-row">
          <select
            className="jp-mlplat-input"
            name="shadow-version"
            value={values.shadowVersion ?? ''}
            onChange={event => change({ shadowVersion: Number(event.target.value) || null })}
          >
            <option value="">(version)</option>
            {ordered
              .filter(v => v.version !== values.version)
              .map(v => (
                <option key={v.version} value={v.version}>
                  {versionLabel(v)}
                </option>
              ))}
          </select>
          <input
            className="jp-mlplat-input jp-mlplat-number"
            type="number"
            name="shadow-share"
            min={1}
            max={100}
            value={values.shadowShare}
            onChange={event => change({ shadowShare: Number(event.target.value) })}
          />
          % of requests
        </div>
      )}
      <label className="jp-mlplat-check">
        <input
          type="checkbox"
          name="public"
          checked={values.public}
          onChange={event => change({ public: event.target.checked })}
        />
        Public (no token needed to call it)
      </label>
      {selected && selected.verdict_status !== 'blessed' && (
        <>
          <label className="jp-mlplat-check">
            <input
              type="checkbox"
              name="force"
              checked={values.force}
              onChange={event => change({ force: event.target.checked })}
            />
            Deploy anyway (recorded with the reason)
          </label>
          {values.force && (
            <input
              className="jp-mlplat-input"
              name="reason"
              placeholder="reason"
              value={values.reason}
              onChange={event => change({ reason: event.target.value })}
            />
          )}
        </>
      )}
      {problems.map(problem => (
        <div key={problem} className="jp-mlplat-message jp-mlplat-message-error" role="alert">
          {problem}
        </div>
      ))}
    </div>
  );
}

interface IDeployDialogValue {
  values: IDeployFormValues;
  version: IDescribeModelVersion | undefined;
}

class DeployBody extends ReactWidget implements Dialog.IBodyWidget<IDeployDialogValue> {
  constructor(
    private readonly _client: MLPlatClient,
    private readonly _models: IModelSummary[],
    initial: IDeployFormValues
  ) {
    super();
    this._value = { values: initial, version: undefined };
    this.addClass('jp-mlplat-dialog-body');
  }

  getValue(): IDeployDialogValue {
    return this._value;
  }

  render(): JSX.Element {
    return (
      <DeployForm
        client={this._client}
        models={this._models}
        initial={this._value.values}
        onChange={(values, version) => (this._value = { values, version })}
      />
    );
  }

  private _value: IDeployDialogValue;
}

/**
 * Ask what to deploy until the answer is valid; null when cancelled.
 *
 * @param preferred - the model to preselect (e.g. the one the current notebook logs)
 */
export async function askDeployment(
  client: MLPlatClient,
  models: IModelSummary[],
  preferred: string | null
): Promise<ICreateDeployment | null> {
  const model = preferred && models.some(m => m.name === preferred) ? preferred : models[0].name;
  let values: IDeployFormValues = {
    model,
    version: null,
    endpoint: model,
    canary: 0,
    shadow: false,
    shadowVersion: null,
    shadowShare: 10,
    public: false,
    force: false,
    reason: ''
  };
  for (;;) {
    const result = await showDialog<IDeployDialogValue>({
      title: 'Deploy model',
      body: new DeployBody(client, models, values),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Deploy' })]
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    values = result.value.values;
    if (deploymentProblems(values, result.value.version).length === 0) {
      return buildDeployment(values);
    }
  }
}
