/**
 * Vega-Lite specifications of the sidebar's charts, rendered by JupyterLab's own Vega renderer
 * (`application/vnd.vegalite.v5+json`, see `components/vega-chart.tsx`). Pure functions.
 */
import { IMetricPoint, ISliceMetricRow } from './api';

export const VEGALITE_MIME = 'application/vnd.vegalite.v5+json';

export type VegaLiteSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/** Sizes and colours that follow the JupyterLab theme (CSS variables are read at render time). */
export interface IChartTheme {
  width: number;
  foreground: string;
  grid: string;
  font: string;
  pass: string;
  fail: string;
  floor: string;
}

export const DEFAULT_THEME: IChartTheme = {
  width: 260,
  foreground: '#616161',
  grid: '#e0e0e0',
  font: 'sans-serif',
  pass: '#388e3c',
  fail: '#d32f2f',
  floor: '#f57c00'
};

function config(theme: IChartTheme): VegaLiteSpec {
  return {
    background: null,
    font: theme.font,
    axis: {
      labelColor: theme.foreground,
      titleColor: theme.foreground,
      gridColor: theme.grid,
      domainColor: theme.grid,
      tickColor: theme.grid
    },
    legend: { labelColor: theme.foreground, titleColor: theme.foreground, orient: 'bottom' },
    header: { labelColor: theme.foreground, titleColor: theme.foreground },
    title: { color: theme.foreground },
    view: { stroke: null }
  };
}

/** Metric points logged with a `step` (the ones that make curves). */
export function curvePoints(points: IMetricPoint[]): IMetricPoint[] {
  return points.filter(p => p.step !== null && p.step !== undefined && Number.isFinite(p.value));
}

/**
 * Metric curves of one run: `log_metric(name, value, step=...)`, one small chart a metric
 * (each with its own y scale), one line a pipeline step that logged it.
 *
 * @returns null when no metric was logged with a step
 */
export function metricCurvesSpec(
  points: IMetricPoint[],
  theme: IChartTheme = DEFAULT_THEME
): VegaLiteSpec | null {
  const values = curvePoints(points).map(p => ({
    metric: p.name,
    step: p.step,
    value: p.value,
    logged_by: p.step_name ?? ''
  }));
  if (values.length === 0) {
    return null;
  }
  return {
    $schema: SCHEMA,
    data: { values },
    facet: { row: { field: 'metric', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: theme.width,
      height: 110,
      mark: { type: 'line', point: { size: 18 }, tooltip: true },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'logged_by', type: 'nominal', title: 'pipeline step' }
      }
    },
    config: config(theme)
  };
}

/** One run's points for a comparison chart. */
export interface IRunSeries {
  run: string;
  points: IMetricPoint[];
}

/**
 * Compared runs on one chart: curves (metrics logged with `step`) one line a run, and final
 * values (metrics logged once) one bar a run, one panel a metric.
 *
 * @returns null when the runs logged no metric at all
 */
export function compareRunsSpec(
  series: IRunSeries[],
  theme: IChartTheme = DEFAULT_THEME
): VegaLiteSpec | null {
  const curves: Array<Record<string, unknown>> = [];
  const finals: Array<Record<string, unknown>> = [];
  for (const { run, points } of series) {
    const curveNames = new Set(curvePoints(points).map(p => p.name));
    for (const p of points) {
      if (!Number.isFinite(p.value)) {
        continue;
      }
      if (p.step !== null && p.step !== undefined) {
        curves.push({ run, metric: p.name, step: p.step, value: p.value });
      } else if (!curveNames.has(p.name)) {
        finals.push({ run, metric: p.name, value: p.value });
      }
    }
  }
  const layers: VegaLiteSpec[] = [];
  if (curves.length > 0) {
    layers.push({
      data: { values: curves },
      facet: { row: { field: 'metric', type: 'nominal', title: null } },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: theme.width,
        height: 110,
        mark: { type: 'line', point: { size: 18 }, tooltip: true },
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
          color: { field: 'run', type: 'nominal', title: 'run' }
        }
      }
    });
  }
  if (finals.length > 0) {
    layers.push({
      data: { values: finals },
      facet: { row: { field: 'metric', type: 'nominal', title: null } },
      resolve: { scale: { x: 'independent' } },
      spec: {
        width: theme.width,
        mark: { type: 'bar', tooltip: true },
        encoding: {
          y: { field: 'run', type: 'nominal', title: null },
          x: { field: 'value', type: 'quantitative', title: null },
          color: { field: 'run', type: 'nominal', title: 'run' }
        }
      }
    });
  }
  if (layers.length === 0) {
    return null;
  }
  return {
    $schema: SCHEMA,
    ...(layers.length === 1 ? layers[0] : { vconcat: layers }),
    config: config(theme)
  };
}

/**
 * Slice metrics as bars against the policy's floor: a bar a slice, coloured by whether it
 * clears the floor, and the floor as a rule. Slices below `minCount` rows are shown faded
 * (the policy ignores them).
 *
 * @param higherIsBetter - false for error metrics (rmse, log_loss): a bar passes below the floor
 * @returns null when there are no slice values
 */
export function sliceBarsSpec(
  rows: ISliceMetricRow[],
  options: {
    floor?: number | null;
    higherIsBetter?: boolean;
    minCount?: number;
    metric?: string;
  } = {},
  theme: IChartTheme = DEFAULT_THEME
): VegaLiteSpec | null {
  const floor = typeof options.floor === 'number' ? options.floor : null;
  const higher = options.higherIsBetter ?? true;
  const minCount = options.minCount ?? 0;
  const metric = options.metric ?? rows[0]?.metric ?? 'value';
  const values = rows
    .filter(r => r.metric === metric && typeof r.value === 'number')
    .map(r => {
      const value = r.value as number;
      const judged = r.count >= minCount;
      let verdict = 'no floor';
      if (!judged) {
        verdict = `ignored (< ${minCount} rows)`;
      } else if (floor !== null) {
        verdict = (higher ? value >= floor : value <= floor) ? 'passes' : 'below floor';
      }
      return { slice: r.by ? `${r.by}=${r.slice}` : r.slice, value, count: r.count, verdict };
    });
  if (values.length === 0) {
    return null;
  }
  const bars: VegaLiteSpec = {
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'slice', type: 'nominal', title: null, sort: null },
      x: { field: 'value', type: 'quantitative', title: metric },
      color: {
        field: 'verdict',
        type: 'nominal',
        title: null,
        scale: {
          domain: ['passes', 'below floor', `ignored (< ${minCount} rows)`, 'no floor'],
          range: [theme.pass, theme.fail, theme.grid, theme.foreground]
        }
      },
      tooltip: [
        { field: 'slice', type: 'nominal' },
        { field: 'value', type: 'quantitative', format: '.4f' },
        { field: 'count', type: 'quantitative', title: 'rows' },
        { field: 'verdict', type: 'nominal' }
      ]
    }
  };
  const layer: VegaLiteSpec[] = [bars];
  if (floor !== null) {
    layer.push({
      data: { values: [{ floor }] },
      mark: { type: 'rule', color: theme.floor, strokeDash: [4, 3], strokeWidth: 2 },
      encoding: { x: { field: 'floor', type: 'quantitative' } }
    });
  }
  return {
    $schema: SCHEMA,
    width: theme.width,
    data: { values },
    layer,
    config: config(theme)
  };
}
