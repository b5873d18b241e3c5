/**
 * How a cell is marked as a pipeline step, read and written exactly as the server's parser
 * (`jupyter_mlplat/pipeline/notebook.py`) accepts it: `metadata.mlplat` (`step`, `after`,
 * `role` and the step options) or Kale-style tags (`step:<name>`, `block:<name>`,
 * `prev:<name>`, `imports`, `functions`, `parameters`, `pipeline-parameters`,
 * `pipeline-metrics`, `skip`, `cache:enabled|disabled`, `limit:nvidia.com/gpu:<n>`).
 *
 * Pure functions on plain JSON, so they are tested without a notebook.
 */

/** A step name the parser accepts. */
export const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export type CellRole = 'imports' | 'functions' | 'parameters' | 'metrics' | 'skip';

const ROLES: ReadonlyArray<CellRole> = ['imports', 'functions', 'parameters', 'metrics', 'skip'];

const ROLE_TAGS: Readonly<Record<string, CellRole>> = {
  imports: 'imports',
  functions: 'functions',
  parameters: 'parameters',
  'pipeline-parameters': 'parameters',
  'pipeline-metrics': 'metrics',
  skip: 'skip'
};

/** `metadata.mlplat` keys that only a step cell may carry (`spec.STEP_OPTIONS` + edges and io). */
const STEP_KEYS = [
  'step',
  'after',
  'inputs',
  'outputs',
  'gpu',
  'cache',
  'retries',
  'timeout',
  'kernel',
  'env',
  'threads'
];

/** Tags that mark a step or carry step options (replaced when the metadata takes over). */
function isStepTag(tag: string): boolean {
  return /^(step|block|prev|cache|limit)(:|$)/.test(tag);
}

/** What a cell's marks say, read leniently (the server reports what is wrong with them). */
export interface ICellMark {
  step: string | null;
  role: CellRole | null;
  after: string[];
  gpu: number | null;
  cache: boolean | null;
}

type Json = Record<string, unknown>;

function asObject(value: unknown): Json {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {};
}

function asTags(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
}

/**
 * Read a cell's marks from its `metadata.mlplat` and `metadata.tags`.
 *
 * @param mlplat - the cell's `metadata.mlplat` (anything)
 * @param tags - the cell's `metadata.tags` (anything)
 */
export function readMark(mlplat: unknown, tags: unknown): ICellMark {
  const meta = asObject(mlplat);
  const mark: ICellMark = { step: null, role: null, after: [], gpu: null, cache: null };
  for (const tag of asTags(tags)) {
    if (tag in ROLE_TAGS) {
      mark.role = mark.role ?? ROLE_TAGS[tag];
      continue;
    }
    const [head, ...rest] = tag.split(':');
    const value = rest.join(':');
    if ((head === 'step' || head === 'block') && value) {
      mark.step = mark.step ?? value;
    } else if (head === 'prev' && value) {
      mark.after.push(value);
    } else if (head === 'cache' && (value === 'enabled' || value === 'disabled')) {
      mark.cache = value === 'enabled';
    } else if (head === 'limit' && value.startsWith('nvidia.com/gpu:')) {
      const n = Number(value.slice('nvidia.com/gpu:'.length));
      mark.gpu = Number.isInteger(n) && n >= 0 ? n : mark.gpu;
    }
  }
  if (typeof meta.step === 'string' && meta.step) {
    mark.step = meta.step;
  }
  if (typeof meta.role === 'string' && (ROLES as string[]).includes(meta.role)) {
    mark.role = meta.role as CellRole;
  }
  if (Array.isArray(meta.after)) {
    for (const name of meta.after) {
      if (typeof name === 'string' && !mark.after.includes(name)) {
        mark.after.push(name);
      }
    }
  }
  if (typeof meta.gpu === 'number' && Number.isInteger(meta.gpu) && meta.gpu >= 0) {
    mark.gpu = meta.gpu;
  }
  if (typeof meta.cache === 'boolean') {
    mark.cache = meta.cache;
  }
  return mark;
}

/** What the "Promote to pipeline step" dialog asks for. */
export interface IStepOptions {
  name: string;
  after: string[];
  gpu: number;
  cache: boolean;
}

/**
 * What is wrong with the dialog's values, one message a problem (empty when they are fine).
 *
 * @param values - the dialog's values
 * @param otherSteps - the names of the notebook's other steps (what `after` may name)
 */
export function validateStepOptions(values: IStepOptions, otherSteps: string[]): string[] {
  const problems: string[] = [];
  if (!values.name) {
    problems.push('Give the step a name.');
  } else if (!STEP_NAME.test(values.name)) {
    problems.push(
      `"${values.name}" is not a valid step name: use letters, digits, _ and -, ` +
        'starting with a letter or _ (e.g. train, featurize_numeric).'
    );
  }
  for (const name of values.after) {
    if (name === values.name) {
      problems.push(`Step "${name}" cannot run after itself.`);
    } else if (!otherSteps.includes(name)) {
      problems.push(`"Runs after" names "${name}", which is not a step of this notebook.`);
    }
  }
  if (!Number.isInteger(values.gpu) || values.gpu < 0) {
    problems.push(`GPUs must be a whole number of 0 or more, not ${values.gpu}.`);
  }
  return problems;
}

/** A cell's new `metadata.mlplat` and `metadata.tags` (`null`: delete the key). */
export interface IMarkUpdate {
  mlplat: Json | null;
  tags: string[] | null;
}

/**
 * Mark a cell as a step in `metadata.mlplat`, keeping its other step options (retries,
 * timeout, ...) and its tags that are not step marks. Step-mark tags are dropped so that they
 * cannot disagree with the metadata (the parser refuses two step names on one cell).
 *
 * @throws Error when the cell has a role (a parameters, imports, ... cell cannot be a step)
 */
export function applyStepMark(mlplat: unknown, tags: unknown, values: IStepOptions): IMarkUpdate {
  const current = readMark(mlplat, tags);
  if (current.role) {
    throw new Error(
      `This is the notebook's ${current.role} cell; a cell is either a step or a ` +
        `${current.role} cell. Promote the cell below it instead, or remove its ` +
        `"${current.role}" mark first.`
    );
  }
  const meta: Json = { ...asObject(mlplat) };
  delete meta.role;
  delete meta.after;
  delete meta.gpu;
  delete meta.cache;
  const next: Json = { step: values.name };
  if (values.after.length > 0) {
    next.after = [...new Set(values.after)];
  }
  if (values.gpu > 0) {
    next.gpu = values.gpu;
  }
  if (!values.cache) {
    next.cache = false; // on is the parser's default
  }
  const kept = asTags(tags).filter(tag => !isStepTag(tag));
  return {
    mlplat: { ...next, ...withoutKeys(meta, ['step']) },
    tags: kept.length > 0 ? kept : null
  };
}

/** Remove a cell's step mark and every step option (they are errors on a non-step cell). */
export function removeStepMark(mlplat: unknown, tags: unknown): IMarkUpdate {
  const meta = withoutKeys(asObject(mlplat), STEP_KEYS);
  const kept = asTags(tags).filter(tag => !isStepTag(tag));
  return {
    mlplat: Object.keys(meta).length > 0 ? meta : null,
    tags: kept.length > 0 ? kept : null
  };
}

/** The dialog's starting values for a cell: its current marks, or a fresh name. */
export function initialStepOptions(mark: ICellMark, existing: string[]): IStepOptions {
  if (mark.step) {
    return {
      name: mark.step,
      after: [...mark.after],
      gpu: mark.gpu ?? 0,
      cache: mark.cache ?? true
    };
  }
  let n = existing.length + 1;
  while (existing.includes(`step_${n}`)) {
    n += 1;
  }
  return { name: `step_${n}`, after: [], gpu: 0, cache: true };
}

/** Step names marked in a notebook's cells, in order, each once. */
export function stepNames(
  cells: Array<{ mlplat: unknown; tags: unknown; cellType?: string }>
): string[] {
  const names: string[] = [];
  for (const cell of cells) {
    if (cell.cellType && cell.cellType !== 'code') {
      continue;
    }
    const { step } = readMark(cell.mlplat, cell.tags);
    if (step && !names.includes(step)) {
      names.push(step);
    }
  }
  return names;
}

function withoutKeys(meta: Json, keys: string[]): Json {
  const copy: Json = {};
  for (const [key, value] of Object.entries(meta)) {
    if (!keys.includes(key)) {
      copy[key] = value;
    }
  }
  return copy;
}
