/**
 * A Vega-Lite chart drawn by JupyterLab's own renderer (the one that shows Altair output), so
 * the charting library is JupyterLab's and not bundled again here.
 */
import { MimeModel } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { DEFAULT_THEME, IChartTheme, VEGALITE_MIME, VegaLiteSpec } from '../charts';
import { useMLPlat } from './context';

/** The chart colours from the JupyterLab theme's CSS variables (defaults outside a page). */
export function themeFromCss(element: Element | null, width: number): IChartTheme {
  if (!element || typeof getComputedStyle === 'undefined') {
    return { ...DEFAULT_THEME, width };
  }
  const style = getComputedStyle(element);
  const read = (name: string, fallback: string): string =>
    style.getPropertyValue(name).trim() || fallback;
  return {
    width,
    foreground: read('--jp-ui-font-color1', DEFAULT_THEME.foreground),
    grid: read('--jp-border-color2', DEFAULT_THEME.grid),
    font: read('--jp-ui-font-family', DEFAULT_THEME.font),
    pass: read('--jp-success-color1', DEFAULT_THEME.pass),
    fail: read('--jp-error-color1', DEFAULT_THEME.fail),
    floor: read('--jp-warn-color1', DEFAULT_THEME.floor)
  };
}

/**
 * Render `spec` (built by a function of `charts.ts` from the theme) with the `IRenderMimeRegistry`
 * of the context.
 */
export function VegaChart(props: {
  build: (theme: IChartTheme) => VegaLiteSpec | null;
  /** Shown when `build` returns null (nothing to draw). */
  empty?: string;
  label: string;
}): JSX.Element {
  const { rendermime } = useMLPlat();
  const figure = React.useRef<HTMLElement>(null);
  const host = React.useRef<HTMLDivElement>(null);
  const [problem, setProblem] = React.useState<string | null>(null);
  const [width, setWidth] = React.useState<number | null>(null);

  // The plot is sized to the sidebar: measured once drawn, and again when it is resized.
  React.useLayoutEffect(() => {
    const node = figure.current;
    if (!node) {
      return;
    }
    const measure = (): void => setWidth(node.clientWidth || null);
    measure();
    const observer = typeof ResizeObserver !== 'undefined' ? new ResizeObserver(measure) : null;
    observer?.observe(node);
    return () => observer?.disconnect();
  }, []);

  // Room for the axis labels and the legend beside the plot itself.
  const plotWidth = Math.max(120, (width ?? 260) - 110);
  const spec = props.build(themeFromCss(figure.current, plotWidth));
  const key = spec ? JSON.stringify(spec) : '';

  // A layout effect: its cleanup runs while the host is still in the page, so the renderer
  // (a Lumino widget) is detached before React removes the host node.
  React.useLayoutEffect(() => {
    const node = host.current;
    if (!node || !spec || !rendermime) {
      return;
    }
    if (rendermime.preferredMimeType({ [VEGALITE_MIME]: spec as any }, 'any') !== VEGALITE_MIME) {
      setProblem('JupyterLab has no Vega-Lite renderer enabled, so charts are not drawn.');
      return;
    }
    let renderer: IRenderMime.IRenderer | null = rendermime.createRenderer(VEGALITE_MIME);
    const model = new MimeModel({ data: { [VEGALITE_MIME]: spec as any } });
    Widget.attach(renderer, node);
    renderer.renderModel(model).then(
      () => setProblem(null),
      error => setProblem(`The chart could not be drawn: ${(error as Error).message}`)
    );
    return () => {
      if (renderer) {
        if (renderer.isAttached && renderer.node.isConnected) {
          Widget.detach(renderer);
        }
        renderer.dispose();
        renderer = null;
      }
    };
  }, [key, rendermime]);

  return (
    <figure ref={figure} className="jp-mlplat-chart" aria-label={props.label}>
      {spec ? (
        <div ref={host} className="jp-mlplat-chart-host" />
      ) : (
        props.empty && <div className="jp-mlplat-muted">{props.empty}</div>
      )}
      {problem && <div className="jp-mlplat-muted">{problem}</div>}
    </figure>
  );
}
