/**
 * `MLPlatRuns:`, a read-only drive that opens the executed notebook of a step in JupyterLab
 * straight from the server (`GET runs/{run}/steps/{step}/notebook`), without writing a copy into
 * the user's folders. Paths are `<run id>/<step>.ipynb`.
 */
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { MLPlatClient } from './api';

export const DRIVE_NAME = 'MLPlatRuns';

/** The drive path of a step's executed notebook (`MLPlatRuns:<run>/<step>.ipynb`). */
export function stepNotebookPath(runId: string, step: string): string {
  return `${DRIVE_NAME}:${runId}/${step}.ipynb`;
}

/** `<run>/<step>.ipynb` (the part after the drive name) -> run and step; null otherwise. */
export function parseStepNotebookPath(localPath: string): { runId: string; step: string } | null {
  const match = /^\/?([^/]+)\/([^/]+)\.ipynb$/.exec(localPath);
  return match ? { runId: match[1], step: match[2] } : null;
}

function readOnly(what: string): Promise<never> {
  return Promise.reject(
    new Error(`Executed step notebooks are a run's record and read-only: cannot ${what}.`)
  );
}

export class StepNotebookDrive implements Contents.IDrive {
  readonly name = DRIVE_NAME;

  constructor(
    private readonly _client: MLPlatClient,
    serverSettings?: ServerConnection.ISettings
  ) {
    this.serverSettings = serverSettings ?? ServerConnection.makeSettings();
  }

  readonly serverSettings: ServerConnection.ISettings;

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (!this._isDisposed) {
      this._isDisposed = true;
      Signal.clearData(this);
    }
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const ref = parseStepNotebookPath(localPath);
    if (!ref) {
      throw new Error(
        `${DRIVE_NAME}:${localPath} is not an executed step notebook; expected <run id>/<step>.ipynb`
      );
    }
    const includeContent = options?.content !== false;
    const content = includeContent ? await this._client.stepNotebook(ref.runId, ref.step) : null;
    const now = new Date().toISOString();
    return {
      name: `${ref.step}.ipynb`,
      path: localPath.replace(/^\//, ''),
      type: 'notebook',
      format: includeContent ? 'json' : null,
      mimetype: 'application/x-ipynb+json',
      content,
      writable: false,
      created: now,
      last_modified: now,
      size: undefined
    } as Contents.IModel;
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const ref = parseStepNotebookPath(localPath);
    if (!ref) {
      throw new Error(`${DRIVE_NAME}:${localPath} is not an executed step notebook`);
    }
    const run = encodeURIComponent(ref.runId);
    const step = encodeURIComponent(ref.step);
    return `${this.serverSettings.baseUrl}mlplat/api/runs/${run}/steps/${step}/notebook`;
  }

  newUntitled(): Promise<Contents.IModel> {
    return readOnly('create files');
  }

  delete(): Promise<void> {
    return readOnly('delete');
  }

  rename(): Promise<Contents.IModel> {
    return readOnly('rename');
  }

  save(): Promise<Contents.IModel> {
    return readOnly('save (use "Save As" to keep a copy in your folders)');
  }

  copy(): Promise<Contents.IModel> {
    return readOnly('copy');
  }

  async createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return { id: 'executed', last_modified: new Date().toISOString() };
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(): Promise<void> {
    return readOnly('restore a checkpoint');
  }

  async deleteCheckpoint(): Promise<void> {
    return;
  }

  private _isDisposed = false;
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
}
