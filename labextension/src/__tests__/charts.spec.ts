import { compareRunsSpec, metricCurvesSpec, sliceBarsSpec } from '../charts';

const points = [
  { name: 'loss', value: 0.9, step: 0, step_name: 'train' },
  { name: 'loss', value: 0.5, step: 1, step_name: 'train' },
  { name: 'accuracy', value: 0.8 }
];

describe('metricCurvesSpec', () => {
  it('draws the metrics logged with a step, one panel a metric', () => {
    const spec: any = metricCurvesSpec(points);
    expect(spec.$schema).toMatch(/vega-lite\/v5/);
    expect(spec.data.values).toEqual([
      { metric: 'loss', step: 0, value: 0.9, logged_by: 'train' },
      { metric: 'loss', step: 1, value: 0.5, logged_by: 'train' }
    ]);
    expect(spec.facet.row.field).toBe('metric');
    expect(spec.resolve.scale.y).toBe('independent');
  });

  it('is null without curves', () => {
    expect(metricCurvesSpec([{ name: 'accuracy', value: 0.8 }])).toBeNull();
  });
});

describe('compareRunsSpec', () => {
  it('puts every run on the same chart: curves as lines and final values as bars', () => {
    const spec: any = compareRunsSpec([
      { run: 'a', points },
      {
        run: 'b',
        points: [
          { name: 'loss', value: 0.7, step: 0 },
          { name: 'accuracy', value: 0.85 }
        ]
      }
    ]);
    expect(spec.vconcat).toHaveLength(2);
    const [curves, finals] = spec.vconcat;
    expect(curves.spec.encoding.color.field).toBe('run');
    expect(curves.data.values.map((v: any) => v.run)).toEqual(['a', 'a', 'b']);
    expect(finals.data.values).toEqual([
      { run: 'a', metric: 'accuracy', value: 0.8 },
      { run: 'b', metric: 'accuracy', value: 0.85 }
    ]);
  });

  it('is null when nothing was logged', () => {
    expect(compareRunsSpec([{ run: 'a', points: [] }])).toBeNull();
  });
});

describe('sliceBarsSpec', () => {
  const rows = [
    { metric: 'roc_auc', by: 'region', slice: 'north', value: 0.82, count: 400 },
    { metric: 'roc_auc', by: 'region', slice: 'south', value: 0.61, count: 350 },
    { metric: 'roc_auc', by: 'region', slice: 'island', value: 0.4, count: 12 },
    { metric: 'accuracy', by: 'region', slice: 'north', value: 0.9, count: 400 }
  ];

  it('colours each slice against the floor and draws the floor', () => {
    const spec: any = sliceBarsSpec(rows, { metric: 'roc_auc', floor: 0.7, minCount: 30 });
    expect(spec.data.values.map((v: any) => [v.slice, v.verdict])).toEqual([
      ['region=north', 'passes'],
      ['region=south', 'below floor'],
      ['region=island', 'ignored (< 30 rows)']
    ]);
    expect(spec.layer).toHaveLength(2);
    expect(spec.layer[1].mark.type).toBe('rule');
    expect(spec.layer[1].data.values).toEqual([{ floor: 0.7 }]);
  });

  it('passes bars under the floor when lower is better', () => {
    const spec: any = sliceBarsSpec(
      [
        { metric: 'rmse', slice: 'a', value: 2, count: 100 },
        { metric: 'rmse', slice: 'b', value: 5, count: 100 }
      ],
      { floor: 3, higherIsBetter: false }
    );
    expect(spec.data.values.map((v: any) => v.verdict)).toEqual(['passes', 'below floor']);
  });

  it('has no rule without a floor, and is null without values', () => {
    const spec: any = sliceBarsSpec(rows, { metric: 'accuracy' });
    expect(spec.layer).toHaveLength(1);
    expect(spec.data.values[0].verdict).toBe('no floor');
    expect(sliceBarsSpec([], {})).toBeNull();
  });
});
