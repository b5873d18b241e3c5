/**
 * The end of "Deploy model": the live endpoint's URL, a copyable curl, the token (shown once)
 * and the answer to the model's sample input.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IDeployResult, ITryEndpointResponse } from '../api';
import { CopyBlock, Message } from '../components/common';
import { curlFor, TryAnswer } from '../components/endpoints-panel';

export function DeployResultView(props: {
  result: IDeployResult;
  answer: ITryEndpointResponse | null;
  problem: string | null;
}): JSX.Element {
  const { endpoint, token, forced } = props.result;
  const curl = curlFor(endpoint);
  return (
    <div className="jp-mlplat-deploy-result" data-endpoint={endpoint.name}>
      <p>
        {props.answer && props.answer.status < 300 ? 'Live' : 'Deployed'}: endpoint{' '}
        <strong>{endpoint.name}</strong> serves{' '}
        {endpoint.routes.map(r => `${r.model}@${r.version} (${r.weight}%)`).join(', ')}
        {forced ? ' (forced past the release gate; recorded)' : ''}.
      </p>
      {endpoint.url && (
        <p>
          URL:{' '}
          <a className="jp-mlplat-url" href={endpoint.url} target="_blank" rel="noreferrer">
            {endpoint.url}
          </a>
        </p>
      )}
      {token && (
        <>
          <div className="jp-mlplat-muted">
            Token (shown once; keep it: callers send it as <code>Authorization: Bearer …</code>):
          </div>
          <CopyBlock text={token} label="Copy token" />
        </>
      )}
      {curl && (
        <CopyBlock
          text={token ? curl.replace('$MLPLAT_ENDPOINT_TOKEN', token) : curl}
          label="Copy curl"
        />
      )}
      {props.answer && <TryAnswer answer={props.answer} />}
      {props.problem && <Message kind="error">{props.problem}</Message>}
    </div>
  );
}

/** Show the outcome; resolves true when the user asks to see the endpoint in the sidebar. */
export async function showDeployResult(
  result: IDeployResult,
  answer: ITryEndpointResponse | null,
  problem: string | null
): Promise<boolean> {
  const body = ReactWidget.create(
    <DeployResultView result={result} answer={answer} problem={problem} />
  );
  body.addClass('jp-mlplat-dialog-body');
  const shown = await showDialog({
    title: `Endpoint ${result.endpoint.name}`,
    body,
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.okButton({ label: 'Show in sidebar' })
    ]
  });
  return shown.button.accept;
}
