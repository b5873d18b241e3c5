/**
 * What a notebook shows of its pipeline: a badge with the step name on each step cell (and the
 * role of imports/parameters/... cells), and the server's parse errors on the offending cell.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

import { IPipelineErrorInfo } from '../api';
import { readMark } from './marks';

export const BADGE_CLASS = 'jp-mlplat-badge';
export const CELL_ERROR_CLASS = 'jp-mlplat-cellError';
export const STEP_CELL_CLASS = 'jp-mlplat-stepCell';
const HAS_BADGE_CLASS = 'jp-mlplat-hasBadge';
const HAS_ERROR_CLASS = 'jp-mlplat-hasError';

/** The cell an error names: by id when the server gave one, else by index ("cell 4 (...)"). */
export function errorCellIndex(
  error: IPipelineErrorInfo,
  cellIds: Array<string | undefined>
): number | null {
  if (error.cell_id) {
    const index = cellIds.indexOf(error.cell_id);
    if (index >= 0) {
      return index;
    }
  }
  if (typeof error.cell_index === 'number') {
    return error.cell_index;
  }
  const match = /^cell (\d+)\b/.exec(error.message);
  return match ? Number(match[1]) : null;
}

/** The badge text of a cell: its step name, or its role; null for other cells. */
export function badgeText(model: ICellModel): { text: string; kind: 'step' | 'role' } | null {
  if (model.type !== 'code') {
    return null;
  }
  const mark = readMark(model.getMetadata('mlplat'), model.getMetadata('tags'));
  if (mark.step) {
    const extras = [
      mark.gpu ? `${mark.gpu} GPU` : '',
      mark.cache === false ? 'no cache' : '',
      mark.after.length ? `after ${mark.after.join(', ')}` : ''
    ].filter(Boolean);
    return { text: [`step: ${mark.step}`, ...extras].join(' · '), kind: 'step' };
  }
  if (mark.role) {
    return { text: mark.role, kind: 'role' };
  }
  return null;
}

/**
 * Keeps one notebook's badges and error notes in step with its cells' metadata.
 */
export class CellDecorator implements IDisposable {
  constructor(
    readonly panel: NotebookPanel,
    private _options: { showBadges: boolean }
  ) {
    const notebook = panel.content;
    notebook.model?.cells.changed.connect(this._onCellsChanged, this);
    this._watchCells();
    notebook.modelChanged.connect(() => {
      notebook.model?.cells.changed.connect(this._onCellsChanged, this);
      this._watchCells();
      this.update();
    }, this);
    this.update();
  }

  set showBadges(value: boolean) {
    this._options.showBadges = value;
    this.update();
  }

  /** The server's parse errors (empty: none); each shows on the cell it names. */
  setErrors(errors: IPipelineErrorInfo[]): void {
    this._errors = errors;
    this.update();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const model of this._watched) {
      model.metadataChanged.disconnect(this._onMetadata, this);
    }
    this._watched.clear();
    for (const cell of this.panel.content.widgets) {
      this._clear(cell);
    }
  }

  /** Redraw every badge and error note. */
  update(): void {
    if (this._isDisposed) {
      return;
    }
    const cells = this.panel.content.widgets;
    const ids = cells.map(cell => cell.model?.id);
    const errorsByCell = new Map<number, string[]>();
    for (const error of this._errors) {
      const index = errorCellIndex(error, ids);
      if (index !== null) {
        errorsByCell.set(index, [...(errorsByCell.get(index) ?? []), error.message]);
      }
    }
    cells.forEach((cell, index) => {
      this._decorate(cell, errorsByCell.get(index) ?? []);
    });
  }

  private _decorate(cell: Cell, errors: string[]): void {
    const badge = this._options.showBadges && cell.model ? badgeText(cell.model) : null;
    // The cell's header and footer widgets are where extensions put things above and below it;
    // a cell not drawn yet (notebook windowing) has none: decorate it once it is drawn.
    const header = cell.node.querySelector<HTMLElement>(':scope > .jp-CellHeader');
    const footer = cell.node.querySelector<HTMLElement>(':scope > .jp-CellFooter');
    if (!header || !footer) {
      if (!this._pending.has(cell)) {
        this._pending.add(cell);
        void cell.ready.then(() => {
          this._pending.delete(cell);
          this.update();
        });
      }
      return;
    }
    let node = cell.node.querySelector<HTMLElement>(`.${BADGE_CLASS}`);
    if (badge) {
      if (!node) {
        node = document.createElement('div');
        node.className = BADGE_CLASS;
        header.insertBefore(node, header.firstChild);
      }
      header.classList.add(HAS_BADGE_CLASS);
      node.textContent = badge.text;
      node.dataset.kind = badge.kind;
      node.title =
        badge.kind === 'step'
          ? 'Pipeline step: this cell and the unmarked cells below it (Promote to pipeline step to change)'
          : `The notebook's ${badge.text} cell`;
      cell.toggleClass(STEP_CELL_CLASS, badge.kind === 'step');
    } else {
      node?.remove();
      header.classList.remove(HAS_BADGE_CLASS);
      cell.removeClass(STEP_CELL_CLASS);
    }
    let note = cell.node.querySelector<HTMLElement>(`.${CELL_ERROR_CLASS}`);
    if (errors.length > 0) {
      if (!note) {
        note = document.createElement('div');
        note.className = CELL_ERROR_CLASS;
        note.setAttribute('role', 'alert');
        footer.appendChild(note);
      }
      footer.classList.add(HAS_ERROR_CLASS);
      note.textContent = errors.join('\n');
    } else {
      note?.remove();
      footer.classList.remove(HAS_ERROR_CLASS);
    }
  }

  private _clear(cell: Cell): void {
    cell.node.querySelector(`.${BADGE_CLASS}`)?.remove();
    cell.node.querySelector(`.${CELL_ERROR_CLASS}`)?.remove();
    cell.removeClass(STEP_CELL_CLASS);
  }

  private _onCellsChanged(): void {
    this._watchCells();
    // New cell widgets are created after the model change: decorate on the next frame.
    requestAnimationFrame(() => this.update());
  }

  private _onMetadata(): void {
    this.update();
  }

  private _watchCells(): void {
    const cells = this.panel.content.model?.cells;
    if (!cells) {
      return;
    }
    const current = new Set<ICellModel>();
    for (let i = 0; i < cells.length; i++) {
      current.add(cells.get(i));
    }
    for (const model of this._watched) {
      if (!current.has(model)) {
        model.metadataChanged.disconnect(this._onMetadata, this);
        this._watched.delete(model);
      }
    }
    for (const model of current) {
      if (!this._watched.has(model)) {
        model.metadataChanged.connect(this._onMetadata, this);
        this._watched.add(model);
      }
    }
  }

  private _errors: IPipelineErrorInfo[] = [];
  private _pending = new Set<Cell>();
  private _watched = new Set<ICellModel>();
  private _isDisposed = false;
}
