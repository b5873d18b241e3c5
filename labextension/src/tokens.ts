import { Token } from '@lumino/coreutils';

import { MLPlatModel } from './model';

/**
 * The shared state of jupyter-mlplat (client, live runs and endpoints, the current notebook's
 * pipeline), provided by `jupyter-mlplat:plugin` for the sidebar, the notebook tools and any
 * other extension.
 */
export const IMLPlatModel = new Token<MLPlatModel>(
  'jupyter-mlplat:IMLPlatModel',
  'The jupyter-mlplat client and its live state (runs, endpoints, the current pipeline).'
);
