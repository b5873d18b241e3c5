import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

import { requestAPI } from './request';

/** What `GET /mlplat/api/version` returns. */
interface IVersionInfo {
  version: string;
  owner: string;
}

/**
 * The jupyter-mlplat core plugin: checks that the server extension answers.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlplat:plugin',
  description: 'Notebook cells as pipeline steps, run by papermill on Dask.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    console.log('jupyter-mlplat is activated');
    requestAPI<IVersionInfo>('version')
      .then(info => {
        console.log(`jupyter-mlplat server extension ${info.version} (owner: ${info.owner})`);
      })
      .catch(reason => {
        console.error(`jupyter-mlplat: the server extension did not answer.\n${reason}`);
      });
  }
};

export default plugin;
