/**
 * Endpoints tab: what each endpoint serves (traffic split, shadow), its URL with a copyable curl,
 * "Try it" with the model's sample input, rollback, undeploy, and its revisions.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IDescribeEndpoint, IEndpointRevisionInfo, IRouteSpec, ITryEndpointResponse } from '../api';
import { ActionButton, CopyBlock, formatTime, Message, StatusBadge } from './common';
import { useAsync, useMLPlat, useSignals } from './context';

/** A curl command that calls the endpoint: the server's, else one built from its URL. */
export function curlFor(endpoint: IDescribeEndpoint): string | null {
  if (endpoint.curl) {
    return endpoint.curl;
  }
  if (!endpoint.url) {
    return null;
  }
  const auth = endpoint.public ? '' : ' -H "Authorization: Bearer $MLPLAT_ENDPOINT_TOKEN"';
  return `curl -s ${endpoint.url}${auth} -H "Content-Type: application/json" -d @input.json`;
}

/** The routes as `{MODEL@V: weight}`, what `PUT traffic` takes. */
export function trafficOf(routes: IRouteSpec[]): Record<string, number> {
  const traffic: Record<string, number> = {};
  for (const route of routes) {
    traffic[`${route.model}@${route.version}`] = route.weight;
  }
  return traffic;
}

/** What is wrong with a traffic split (weights in percent), or null. */
export function trafficProblem(traffic: Record<string, number>): string | null {
  const weights = Object.values(traffic);
  if (weights.some(w => !Number.isInteger(w) || w < 0 || w > 100)) {
    return 'Each weight is a whole percentage from 0 to 100.';
  }
  const total = weights.reduce((a, b) => a + b, 0);
  return total === 100 ? null : `The weights add up to ${total}%; they must add up to 100%.`;
}

export function EndpointsPanel(props: {
  selected: string | null;
  onSelect: (name: string | null) => void;
}): JSX.Element {
  const { model } = useMLPlat();
  useSignals(model.endpointsChanged);
  const [error, setError] = React.useState<string | null>(null);
  React.useEffect(() => {
    model.refreshEndpoints().then(
      () => setError(null),
      e => setError((e as Error).message)
    );
  }, []);
  const endpoints = model.endpoints;
  const selected = endpoints.find(e => e.name === props.selected) ?? null;
  return (
    <div className="jp-mlplat-panel jp-mlplat-endpoints">
      <div className="jp-mlplat-toolbar">
        <ActionButton
          label="Refresh"
          what="Load the endpoints"
          action={async () => {
            await model.refreshEndpoints();
            setError(null);
          }}
        />
      </div>
      {error && <Message kind="error">{error}</Message>}
      {endpoints.length === 0 && !error && (
        <Message>No endpoints yet. Press "Deploy model" on a notebook's toolbar.</Message>
      )}
      <ul className="jp-mlplat-list" aria-label="endpoints">
        {endpoints.map(e => (
          <li
            key={e.name}
            className={`jp-mlplat-row${e.name === props.selected ? ' jp-mod-selected' : ''}`}
            data-endpoint={e.name}
            onClick={() => props.onSelect(e.name === props.selected ? null : e.name)}
          >
            <span className="jp-mlplat-row-main">
              {e.name}{' '}
              <span className="jp-mlplat-muted">
                {e.routes.map(r => `${r.model}@${r.version} ${r.weight}%`).join(' · ')}
              </span>
            </span>
            <StatusBadge status={e.deployed ? 'deployed' : 'undeployed'} />
          </li>
        ))}
      </ul>
      {selected && <EndpointDetail endpoint={selected} />}
    </div>
  );
}

function EndpointDetail(props: { endpoint: IDescribeEndpoint }): JSX.Element {
  const { model } = useMLPlat();
  // The list carries the current revision only: the history comes with the endpoint itself.
  const full = useAsync(
    () => model.client.getEndpoint(props.endpoint.name),
    [props.endpoint.name, props.endpoint.revision, props.endpoint.deployed]
  );
  const e =
    full.value && full.value.revision === props.endpoint.revision ? full.value : props.endpoint;
  const [answer, setAnswer] = React.useState<ITryEndpointResponse | null>(null);
  const curl = curlFor(e);
  return (
    <section className="jp-mlplat-detail" aria-label={`endpoint ${e.name}`} data-endpoint={e.name}>
      <h3 className="jp-mlplat-heading">
        {e.name}{' '}
        {e.revision ? <span className="jp-mlplat-muted">revision {e.revision}</span> : null}
      </h3>
      {e.url && (
        <div className="jp-mlplat-line">
          URL: <code className="jp-mlplat-url">{e.url}</code>
          {e.public ? ' (public)' : ' (needs the endpoint token)'}
        </div>
      )}
      {curl && <CopyBlock text={curl} label="Copy curl" />}
      <div className="jp-mlplat-toolbar">
        <ActionButton
          label="Try it"
          accent
          disabled={!e.deployed}
          title="Send the model's sample input and show the answer"
          what={`Try endpoint ${e.name}`}
          action={async () => setAnswer(await model.client.tryEndpoint(e.name))}
        />
        <ActionButton
          label="Roll back"
          disabled={e.revisions.length < 2}
          title="Back to the previous revision"
          what={`Roll back ${e.name}`}
          action={async () => model.upsertEndpoint(await model.client.rollback(e.name))}
        />
        {!e.public && (
          <ActionButton
            label="New token"
            title="A new bearer token; the old one stops working"
            what={`New token for ${e.name}`}
            action={async () => {
              const result = await model.client.rotateToken(e.name);
              model.upsertEndpoint(result.endpoint);
              await showDialog({
                title: `New token for ${e.name}`,
                body: ReactWidget.create(
                  <div className="jp-mlplat-dialog-body">
                    <p>Shown once: callers send it as Authorization: Bearer …</p>
                    <CopyBlock text={result.token ?? ''} label="Copy token" />
                  </div>
                ),
                buttons: [Dialog.okButton({ label: 'Done' })]
              });
            }}
          />
        )}
        <ActionButton
          label="Undeploy"
          disabled={!e.deployed}
          what={`Undeploy ${e.name}`}
          action={async () => {
            const result = await showDialog({
              title: `Undeploy ${e.name}?`,
              body: 'Callers of this endpoint get 404 until it is deployed again.',
              buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Undeploy' })]
            });
            if (result.button.accept) {
              model.upsertEndpoint(await model.client.undeploy(e.name));
            }
          }}
        />
      </div>
      {answer && <TryAnswer answer={answer} />}
      {e.deployed && <TrafficEditor endpoint={e} />}
      {e.shadow && (
        <div className="jp-mlplat-line">
          Shadow: {e.shadow.model}@{e.shadow.version} gets {Math.round(e.shadow.share * 100)}% of
          requests mirrored (answers logged only).
        </div>
      )}
      <h4 className="jp-mlplat-heading">Revisions</h4>
      <RevisionsTable
        revisions={e.revisions}
        serves={r =>
          r.routes.map(x => `${x.model}@${x.version} ${x.weight}%`).join(', ') +
          (r.shadow ? ` · shadow ${r.shadow.model}@${r.shadow.version}` : '')
        }
      />
    </section>
  );
}

/** An endpoint's revisions, newest first: change, what it served (`serves`), who and when. */
export function RevisionsTable(props: {
  revisions: IEndpointRevisionInfo[];
  serves: (revision: IEndpointRevisionInfo) => string;
  label?: string;
}): JSX.Element {
  return (
    <table className="jp-mlplat-table jp-mlplat-revisions" aria-label={props.label}>
      <thead>
        <tr>
          <th>#</th>
          <th>change</th>
          <th>serves</th>
          <th>who, when</th>
        </tr>
      </thead>
      <tbody>
        {[...props.revisions]
          .sort((a, b) => b.revision - a.revision)
          .map(r => (
            <tr key={r.revision} data-revision={r.revision}>
              <td>{r.revision}</td>
              <td>
                {r.action}
                {r.forced ? <span className="jp-mlplat-chip">forced</span> : null}
                {r.reason ? <div className="jp-mlplat-muted">{r.reason}</div> : null}
              </td>
              <td>{props.serves(r)}</td>
              <td className="jp-mlplat-muted">
                {r.actor} {formatTime(r.at)}
              </td>
            </tr>
          ))}
      </tbody>
    </table>
  );
}

/** The request and the answer of a "Try it" call. */
export function TryAnswer(props: { answer: ITryEndpointResponse }): JSX.Element {
  const { answer } = props;
  const ok = answer.status >= 200 && answer.status < 300;
  return (
    <div className="jp-mlplat-try" data-status={answer.status}>
      <div className="jp-mlplat-line">
        <StatusBadge status={ok ? 'succeeded' : 'failed'} title={`HTTP ${answer.status}`} /> HTTP{' '}
        {answer.status}
        {answer.model_version ? ` from ${answer.model_version}` : ''}
        {typeof answer.duration_ms === 'number' ? ` in ${answer.duration_ms.toFixed(0)} ms` : ''}
      </div>
      <details>
        <summary>Request</summary>
        <pre className="jp-mlplat-code">{JSON.stringify(answer.request, null, 2)}</pre>
      </details>
      <div className="jp-mlplat-muted">Answer</div>
      <pre className="jp-mlplat-code jp-mlplat-try-response">
        {JSON.stringify(answer.response, null, 2)}
      </pre>
    </div>
  );
}

function TrafficEditor(props: { endpoint: IDescribeEndpoint }): JSX.Element {
  const { model } = useMLPlat();
  const initial = trafficOf(props.endpoint.routes);
  const [traffic, setTraffic] = React.useState(initial);
  React.useEffect(() => setTraffic(trafficOf(props.endpoint.routes)), [props.endpoint.revision]);
  const problem = trafficProblem(traffic);
  const changed = JSON.stringify(traffic) !== JSON.stringify(initial);
  return (
    <div className="jp-mlplat-traffic">
      <h4 className="jp-mlplat-heading">Traffic split</h4>
      {Object.entries(traffic).map(([ref, weight]) => (
        <div key={ref} className="jp-mlplat-form-row">
          <span className="jp-mlplat-traffic-ref">{ref}</span>
          <input
            type="range"
            min={0}
            max={100}
            value={weight}
            aria-label={`weight of ${ref}`}
            onChange={event => setTraffic({ ...traffic, [ref]: Number(event.target.value) })}
          />
          <input
            type="number"
            className="jp-mlplat-input jp-mlplat-number"
            min={0}
            max={100}
            value={weight}
            onChange={event => setTraffic({ ...traffic, [ref]: Number(event.target.value) })}
          />
          %
        </div>
      ))}
      {changed && problem && <Message kind="error">{problem}</Message>}
      {changed && (
        <ActionButton
          label="Apply split"
          accent
          disabled={problem !== null}
          what={`Change the traffic of ${props.endpoint.name}`}
          action={async () =>
            model.upsertEndpoint(await model.client.setTraffic(props.endpoint.name, { traffic }))
          }
        />
      )}
    </div>
  );
}
