/**
 * The notebook actions behind the commands: promote a cell, run the pipeline, deploy a model.
 */
import { Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import { IDeployResult, ITryEndpointResponse, MLPlatClient } from '../api';
import { shortId } from '../components/common';
import { MLPlatModel } from '../model';
import { messageOf } from '../notify';
import { MLPlatRequestError } from '../request';
import { askDeployment } from './deploy-dialog';
import { showDeployResult } from './deploy-result';
import { applyStepMark, initialStepOptions, readMark, removeStepMark, stepNames } from './marks';
import { askStepOptions } from './promote-dialog';
import { askRunOptions } from './run-dialog';

/** Whether a notebook lives on the server's own drive (a run's executed notebook does not). */
export function isServerNotebook(panel: NotebookPanel | null): panel is NotebookPanel {
  return !!panel && !panel.context.path.includes(':');
}

/** Write a mark update into a cell's metadata (null deletes the key). */
function writeMark(cell: Cell, update: { mlplat: unknown; tags: unknown }): void {
  const model = cell.model;
  for (const [key, value] of [
    ['mlplat', update.mlplat],
    ['tags', update.tags]
  ] as const) {
    if (value === null) {
      if (model.getMetadata(key) !== undefined) {
        model.deleteMetadata(key);
      }
    } else {
      model.setMetadata(key, value);
    }
  }
}

/**
 * "Promote to pipeline step" on `cell`: ask name, runs after, GPUs and cache; write
 * `metadata.mlplat`.
 */
export async function promoteCell(panel: NotebookPanel, cell: Cell): Promise<void> {
  if (cell.model.type !== 'code') {
    Notification.warning('Only code cells can be pipeline steps.', { autoClose: 5000 });
    return;
  }
  const cells = panel.content.widgets;
  const mark = readMark(cell.model.getMetadata('mlplat'), cell.model.getMetadata('tags'));
  if (mark.role) {
    Notification.error(
      `Cell ${cells.indexOf(cell)} is the notebook's ${mark.role} cell; a cell is either a ` +
        `step or a ${mark.role} cell. Promote a cell below it instead.`,
      { autoClose: 8000 }
    );
    return;
  }
  const others = cells
    .filter(c => c !== cell)
    .map(c => ({
      mlplat: c.model.getMetadata('mlplat'),
      tags: c.model.getMetadata('tags'),
      cellType: c.model.type
    }));
  const usedElsewhere = stepNames(others);
  const otherSteps = usedElsewhere.filter(name => name !== mark.step);
  const answer = await askStepOptions({
    initial: initialStepOptions(mark, usedElsewhere),
    otherSteps,
    usedElsewhere,
    isStep: mark.step !== null
  });
  if (!answer) {
    return;
  }
  const mlplat = cell.model.getMetadata('mlplat');
  const tags = cell.model.getMetadata('tags');
  if (answer.action === 'remove') {
    writeMark(cell, removeStepMark(mlplat, tags));
    return;
  }
  writeMark(cell, applyStepMark(mlplat, tags, answer.values));
}

/**
 * "Run pipeline": save the notebook (the run uses what the user sees), parse it, ask for
 * parameters, start the run.
 *
 * @returns the run's id, or null when nothing started
 */
export async function runPipeline(
  panel: NotebookPanel,
  model: MLPlatModel
): Promise<string | null> {
  await panel.context.ready;
  await panel.context.save();
  const path = panel.context.path;
  const state = await model.parsePipeline(path);
  if (state.error !== null || !state.pipeline) {
    throw new Error(`${path} cannot run: ${state.error}`);
  }
  const errors = state.pipeline.errors ?? [];
  if (errors.length > 0) {
    throw new Error(
      `${path} cannot run: ${errors.map(e => e.message).join('; ')} (marked on the cell)`
    );
  }
  const body = await askRunOptions(path, state.pipeline);
  if (!body) {
    return null;
  }
  const run = await model.client.createRun(body);
  model.upsertRun(run);
  Notification.info(`Run ${shortId(run.id)} of ${run.pipeline} started.`, { autoClose: 4000 });
  return run.id;
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/**
 * Send the model's sample input until the endpoint answers (a serve process applies a new
 * revision within a second; the first one may be starting). Waits with growing pauses, at most
 * `timeoutMs`; a client error (no sample input, ...) ends the wait at once.
 */
export async function waitUntilLive(
  client: MLPlatClient,
  endpoint: string,
  timeoutMs = 60_000
): Promise<{ answer: ITryEndpointResponse | null; problem: string | null }> {
  const deadline = Date.now() + timeoutMs;
  let pause = 500;
  let last = '';
  for (;;) {
    try {
      const answer = await client.tryEndpoint(endpoint);
      if (answer.status < 500 && answer.status !== 404) {
        return { answer, problem: null };
      }
      last = `the endpoint answered HTTP ${answer.status}`;
    } catch (error) {
      const retry =
        !(error instanceof MLPlatRequestError) || [404, 502, 503, 504].includes(error.status);
      last = messageOf(error);
      if (!retry) {
        return { answer: null, problem: `Try it: ${last}` };
      }
    }
    if (Date.now() + pause > deadline) {
      return { answer: null, problem: `Not answering yet (${last}); try again from the sidebar.` };
    }
    await sleep(pause);
    pause = Math.min(pause * 2, 5000);
  }
}

/**
 * "Deploy model": ask what to deploy, deploy it, wait until it answers, show its URL.
 *
 * @returns the deploy result, or null when nothing was deployed
 */
export async function deployModel(
  model: MLPlatModel,
  notebook: string | null
): Promise<IDeployResult | null> {
  const { models } = await model.client.listModels();
  if (models.length === 0) {
    Notification.warning(
      'No model is registered yet: a step that calls mlp.log_model(model, "name", ' +
        'sample_input=...) registers one. Run the pipeline first.',
      { autoClose: 8000 }
    );
    return null;
  }
  const fromNotebook = notebook
    ? model.runs.find(
        run => model.relativeNotebook(run.notebook) === notebook && run.models.length > 0
      )
    : undefined;
  const body = await askDeployment(model.client, models, fromNotebook?.models[0]?.model ?? null);
  if (!body) {
    return null;
  }
  const id = Notification.emit(`Deploying ${body.model} to ${body.endpoint}…`, 'in-progress', {
    autoClose: false
  });
  let result: IDeployResult;
  try {
    result = await model.client.deploy(body);
  } catch (error) {
    Notification.dismiss(id);
    throw error;
  }
  model.upsertEndpoint(result.endpoint);
  Notification.update({
    id,
    message: `Deployed ${body.model} to ${result.endpoint.name}; waiting for it to answer…`,
    type: 'in-progress',
    autoClose: false
  });
  const { answer, problem } = await waitUntilLive(model.client, result.endpoint.name);
  Notification.dismiss(id);
  if (await showDeployResult(result, answer, problem)) {
    model.show({ tab: 'endpoints', endpoint: result.endpoint.name });
  }
  return result;
}
