import {
  failedReasons,
  buildDeployment,
  deploymentProblems,
  IDeployFormValues,
  orderVersions,
  versionLabel
} from '../notebook/deploy-dialog';
import {
  buildCreateRun,
  coerceParameter,
  initialText,
  isLiteral,
  IRunFormValues
} from '../notebook/run-dialog';
import { PIPELINE, version } from './fixtures';

const param = (name: string) => PIPELINE.parameters.find(p => p.name === name)!;

describe('run dialog', () => {
  it('starts each field from the default', () => {
    expect(PIPELINE.parameters.map(initialText)).toEqual([
      '4000',
      '1',
      true,
      'north',
      '["a","b"]',
      ''
    ]);
    expect(isLiteral(param('grid'))).toBe(false);
    expect(isLiteral({ name: 'x', source: 'None', default: null, type_name: 'NoneType' })).toBe(
      true
    );
  });

  it('types input like the default, and says what does not fit', () => {
    expect(coerceParameter(param('n_rows'), ' 12 ')).toEqual({ value: 12 });
    expect(coerceParameter(param('n_rows'), '1.5').error).toMatch(
      /n_rows is an int: "1.5" is not a whole number/
    );
    expect(coerceParameter(param('C'), '0.5')).toEqual({ value: 0.5 });
    expect(coerceParameter(param('C'), 'abc').error).toMatch(/C is a float/);
    expect(coerceParameter(param('scale'), false)).toEqual({ value: false });
    expect(coerceParameter(param('region'), ' south ')).toEqual({ value: ' south ' });
    expect(coerceParameter(param('cols'), '["x"]')).toEqual({ value: ['x'] });
    expect(coerceParameter(param('cols'), "['x']").error).toMatch(/not valid JSON/);
    expect(coerceParameter(param('grid'), '')).toEqual({});
    expect(coerceParameter(param('C'), '').error).toMatch(/give a value/);
  });

  it('sends only changed parameters, the selection and forced steps', () => {
    const values: IRunFormValues = {
      params: {
        n_rows: '4000',
        C: '0.5',
        scale: true,
        region: 'north',
        cols: '["a","b"]',
        grid: ''
      },
      mode: 'from',
      step: 'split',
      force: ['train', 'ghost']
    };
    expect(buildCreateRun('q.ipynb', PIPELINE, values)).toEqual({
      body: {
        notebook: 'q.ipynb',
        parameters: { C: 0.5 },
        selection: { from: 'split' },
        force: ['train']
      },
      problems: []
    });
  });

  it('refuses a selection without a step', () => {
    const values: IRunFormValues = { params: {}, mode: 'only', step: '', force: [] };
    const { body, problems } = buildCreateRun('q.ipynb', PIPELINE, values);
    expect(body).toBeNull();
    expect(problems).toEqual(['Pick the step to run only.']);
  });
});

describe('deploy dialog', () => {
  const versions = [
    version(1, 'blessed'),
    version(2, 'rejected'),
    version(3, 'unvalidated'),
    version(4, 'blessed', { aliases: ['production'] })
  ];
  const base: IDeployFormValues = {
    model: 'churn',
    version: 4,
    endpoint: 'churn',
    canary: 0,
    shadow: false,
    shadowVersion: null,
    shadowShare: 10,
    public: false,
    force: false,
    reason: ''
  };

  it('lists blessed versions first, newest first', () => {
    expect(orderVersions(versions).map(v => v.version)).toEqual([4, 1, 3, 2]);
    expect(versionLabel(versions[3])).toBe('v4 · blessed · production');
    expect(versionLabel(versions[1])).toBe('v2 · rejected — rejected: slice south 0.61 < 0.7');
  });

  it('accepts a blessed version and builds the body', () => {
    expect(deploymentProblems(base, versions[3])).toEqual([]);
    expect(buildDeployment(base)).toEqual({
      model: 'churn',
      version: 4,
      endpoint: 'churn',
      force: false,
      public: false
    });
    expect(
      buildDeployment({ ...base, canary: 10, shadow: true, shadowVersion: 1, shadowShare: 25 })
    ).toEqual({
      model: 'churn',
      version: 4,
      endpoint: 'churn',
      force: false,
      public: false,
      canary: 10,
      shadow: 'churn@1',
      shadow_share: 0.25
    });
  });

  it("refuses a version that is not blessed with the verdict's reasons, unless forced with a reason", () => {
    const rejected = { ...base, version: 2 };
    const [problem] = deploymentProblems(rejected, versions[1]);
    expect(problem).toMatch(
      /churn@2 is rejected: slice south 0.61 < 0.7\. Only a blessed version deploys/
    );
    expect(deploymentProblems({ ...rejected, force: true }, versions[1])).toEqual([
      'Deploying a version that is not blessed needs a reason (it is recorded).'
    ]);
    expect(deploymentProblems({ ...rejected, force: true, reason: 'hotfix' }, versions[1])).toEqual(
      []
    );
    expect(buildDeployment({ ...rejected, force: true, reason: ' hotfix ' }).reason).toBe('hotfix');
    expect(failedReasons(versions[2])).toBe('it has no verdict (no validation policy)');
  });

  it('checks the endpoint name, canary and shadow', () => {
    const problems = deploymentProblems(
      { ...base, endpoint: '-bad', canary: 100, shadow: true, shadowVersion: 4, shadowShare: 0 },
      versions[3]
    );
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/not a valid endpoint name/);
    expect(problems.join('\n')).toMatch(/Canary is a whole percentage/);
    expect(problems.join('\n')).toMatch(/another version/);
    expect(problems.join('\n')).toMatch(/shadow share/);
  });
});
