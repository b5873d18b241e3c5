/**
 * The extension's icons (LabIcon, so themes recolour them).
 */
import { LabIcon } from '@jupyterlab/ui-components';

/** Three connected nodes: the sidebar and the step badge. */
export const pipelineIcon = new LabIcon({
  name: 'jupyter-mlplat:pipeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M11 7h2v4h5a2 2 0 0 1 2 2v2h-2v-2h-5v2h-2v-2H6v2H4v-2a2 2 0 0 1 2-2h5z"/>' +
    '<rect x="8" y="2" width="8" height="5" rx="1.5"/>' +
    '<rect x="1" y="15" width="8" height="6" rx="1.5"/>' +
    '<rect x="15" y="15" width="8" height="6" rx="1.5"/>' +
    '</g></svg>'
});

/** A cell with an arrow up: "Promote to pipeline step". */
export const promoteIcon = new LabIcon({
  name: 'jupyter-mlplat:promote',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M3 14h18v7H3zm2 2v3h14v-3z"/>' +
    '<path d="M12 2l5 5h-3.5v5h-3V7H7z"/>' +
    '</g></svg>'
});

/** A box leaving on an arrow: "Deploy model". */
export const deployIcon = new LabIcon({
  name: 'jupyter-mlplat:deploy',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M4 13h3v6h10v-6h3v8H4z"/>' +
    '<path d="M12 3l6 6h-4v6h-4V9H6z"/>' +
    '</g></svg>'
});
