import { spawnSync } from 'child_process';
import * as path from 'path';

import {
  applyStepMark,
  initialStepOptions,
  readMark,
  removeStepMark,
  stepNames,
  validateStepOptions
} from '../notebook/marks';

describe('readMark', () => {
  it('reads metadata.mlplat', () => {
    expect(readMark({ step: 'train', after: ['prep'], gpu: 1, cache: false }, undefined)).toEqual({
      step: 'train',
      role: null,
      after: ['prep'],
      gpu: 1,
      cache: false
    });
    expect(readMark({ role: 'imports' }, []).role).toBe('imports');
  });

  it("reads Kale's tags", () => {
    expect(
      readMark(undefined, [
        'block:prep',
        'prev:load',
        'limit:nvidia.com/gpu:2',
        'cache:disabled',
        'hide-input'
      ])
    ).toEqual({ step: 'prep', role: null, after: ['load'], gpu: 2, cache: false });
    expect(readMark(undefined, ['pipeline-parameters']).role).toBe('parameters');
    expect(readMark(undefined, ['block:']).step).toBeNull();
  });

  it('tolerates junk', () => {
    expect(readMark('x', 'y')).toEqual({
      step: null,
      role: null,
      after: [],
      gpu: null,
      cache: null
    });
    expect(readMark({ step: 3, gpu: -1, after: 'a' }, [1, 2])).toEqual({
      step: null,
      role: null,
      after: [],
      gpu: null,
      cache: null
    });
  });
});

describe('applyStepMark', () => {
  it('writes step, after, gpu and cache as the parser reads them, keeping other options', () => {
    const update = applyStepMark(
      { step: 'old', retries: 2, timeout: 60 },
      ['step:old', 'prev:x', 'cache:enabled', 'hide-input'],
      { name: 'train', after: ['prep', 'prep'], gpu: 1, cache: false }
    );
    expect(update).toEqual({
      mlplat: { step: 'train', after: ['prep'], gpu: 1, cache: false, retries: 2, timeout: 60 },
      tags: ['hide-input']
    });
  });

  it('writes only the name for a plain cached CPU step, and drops the tags key when empty', () => {
    expect(
      applyStepMark(undefined, ['step:a'], { name: 'a', after: [], gpu: 0, cache: true })
    ).toEqual({
      mlplat: { step: 'a' },
      tags: null
    });
  });

  it('refuses a cell with a role', () => {
    expect(() =>
      applyStepMark(undefined, ['parameters'], { name: 'a', after: [], gpu: 0, cache: true })
    ).toThrow(/parameters cell/);
  });
});

describe('removeStepMark', () => {
  it('removes the step and every step option', () => {
    expect(
      removeStepMark({ step: 'a', gpu: 1, retries: 3, env: { A: '1' }, inputs: ['x'] }, [
        'step:a',
        'limit:nvidia.com/gpu:1',
        'keep'
      ])
    ).toEqual({ mlplat: null, tags: ['keep'] });
  });
});

describe('validateStepOptions', () => {
  it('accepts a good step', () => {
    expect(
      validateStepOptions({ name: 'train-2', after: ['prep'], gpu: 0, cache: true }, ['prep'])
    ).toEqual([]);
  });

  it('says what is wrong', () => {
    const problems = validateStepOptions(
      { name: '2train', after: ['2train', 'ghost'], gpu: 1.5, cache: true },
      []
    );
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/not a valid step name/);
    expect(problems[1]).toMatch(/cannot run after itself/);
    expect(problems[2]).toMatch(/"ghost", which is not a step/);
    expect(problems[3]).toMatch(/GPUs must be a whole number/);
    expect(validateStepOptions({ name: '', after: [], gpu: 0, cache: true }, [])).toEqual([
      'Give the step a name.'
    ]);
  });
});

describe('initialStepOptions and stepNames', () => {
  it('starts from the current marks, or a fresh name', () => {
    expect(initialStepOptions(readMark({ step: 's', gpu: 1 }, []), ['s'])).toEqual({
      name: 's',
      after: [],
      gpu: 1,
      cache: true
    });
    expect(initialStepOptions(readMark(undefined, []), ['step_2'])).toEqual({
      name: 'step_3',
      after: [],
      gpu: 0,
      cache: true
    });
  });

  it('lists the step names of code cells once, in order', () => {
    expect(
      stepNames([
        { mlplat: { step: 'b' }, tags: [] },
        { mlplat: undefined, tags: ['step:a'] },
        { mlplat: { step: 'b' }, tags: [] },
        { mlplat: { step: 'md' }, tags: [], cellType: 'markdown' }
      ])
    ).toEqual(['b', 'a']);
  });
});

/**
 * What the dialog writes must parse with the server's own parser: run it on a notebook whose
 * cells were marked by applyStepMark (the project's venv; `make jest` creates it).
 */
describe('the Python parser accepts what the dialog writes', () => {
  const python =
    process.env.MLPLAT_PYTHON ??
    path.resolve(__dirname, '..', '..', '..', '.venv', 'bin', 'python');

  it('parses steps, edges and options', () => {
    const cell = (source: string, metadata: Record<string, unknown>) => ({
      cell_type: 'code',
      metadata,
      source,
      outputs: [],
      execution_count: null
    });
    const mark = (
      existing: Record<string, unknown> | undefined,
      tags: string[] | undefined,
      values: any
    ) => {
      const update = applyStepMark(existing, tags, values);
      const metadata: Record<string, unknown> = { mlplat: update.mlplat };
      if (update.tags) {
        metadata.tags = update.tags;
      }
      return metadata;
    };
    const nb = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {},
      cells: [
        cell('import math', { tags: ['imports'] }),
        cell(
          'x = 1',
          mark(undefined, ['step:load', 'cache:enabled'], {
            name: 'load',
            after: [],
            gpu: 0,
            cache: false
          })
        ),
        cell(
          'print("side")',
          mark({ retries: 1 }, undefined, { name: 'side', after: [], gpu: 0, cache: true })
        ),
        cell(
          'y = x + 1',
          mark(undefined, ['hide-input'], { name: 'train', after: ['side'], gpu: 1, cache: true })
        )
      ]
    };
    const script = [
      'import json, sys',
      'from jupyter_mlplat.pipeline.notebook import parse_notebook',
      'spec = parse_notebook(json.loads(sys.stdin.read()), path="t.ipynb")',
      'print(json.dumps({s.name: {"after": sorted(s.after), "upstream": sorted(s.upstream), "gpu": s.gpu, "cache": s.cache, "retries": s.retries} for s in spec.steps}))'
    ].join('\n');
    const result = spawnSync(python, ['-c', script], {
      input: JSON.stringify(nb),
      encoding: 'utf-8',
      timeout: 60_000
    });
    expect(result.error).toBeUndefined();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      load: { after: [], upstream: [], gpu: 0, cache: false, retries: 0 },
      side: { after: [], upstream: [], gpu: 0, cache: true, retries: 1 },
      train: { after: ['side'], upstream: ['load', 'side'], gpu: 1, cache: true, retries: 0 }
    });
  });
});
