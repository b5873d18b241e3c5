/**
 * api.ts mirrors jupyter_mlplat/schemas.py: every I-interface there must have the fields of the
 * pydantic model of the same name (without the I), no more and no fewer. The Python side is
 * read from the project's venv, the TypeScript side with the TypeScript compiler's parser.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const python =
  process.env.MLPLAT_PYTHON ?? path.resolve(__dirname, '..', '..', '..', '.venv', 'bin', 'python');

/** Interface name -> its property names, from the source of api.ts. */
function interfaces(): Map<string, string[]> {
  const file = path.resolve(__dirname, '..', 'api.ts');
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf-8'), ts.ScriptTarget.Latest);
  const found = new Map<string, string[]>();
  for (const statement of source.statements) {
    if (ts.isInterfaceDeclaration(statement)) {
      const names = statement.members
        .filter(ts.isPropertySignature)
        .map(member => (member.name as ts.Identifier | ts.StringLiteral).text);
      found.set(statement.name.text, names);
    }
  }
  return found;
}

/** Model name -> its JSON field names (aliases where set), from schemas.py. */
function models(): Record<string, string[]> {
  const script = [
    'import json',
    'from pydantic import BaseModel',
    'import jupyter_mlplat.schemas as schemas',
    'out = {}',
    'for name, obj in vars(schemas).items():',
    '    if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == schemas.__name__:',
    '        out[name] = [f.alias or n for n, f in obj.model_fields.items()]',
    'print(json.dumps(out))'
  ].join('\n');
  const result = spawnSync(python, ['-c', script], { encoding: 'utf-8', timeout: 60_000 });
  if (result.status !== 0) {
    throw new Error(`reading schemas.py failed: ${result.error ?? result.stderr}`);
  }
  return JSON.parse(result.stdout);
}

describe('api.ts mirrors schemas.py', () => {
  const ours = interfaces();
  const theirs = models();

  it('names a pydantic model for every interface', () => {
    const missing = [...ours.keys()].filter(name => !(name.replace(/^I/, '') in theirs));
    expect(missing).toEqual([]);
  });

  it.each([...ours.keys()])('%s has the same fields', name => {
    const expected = theirs[name.replace(/^I/, '')] ?? [];
    expect([...(ours.get(name) ?? [])].sort()).toEqual([...expected].sort());
  });
});
