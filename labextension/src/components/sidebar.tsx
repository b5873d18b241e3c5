/**
 * The "ML Platform" sidebar: one tab bar, one panel a tab.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IShowRequest, SIDEBAR_TABS, SidebarTab } from '../model';
import { ComparePanel } from './compare-panel';
import { IMLPlatContext, MLPlatContext } from './context';
import { EndpointsPanel } from './endpoints-panel';
import { ModelsPanel } from './models-panel';
import { PipelinePanel } from './pipeline-panel';
import { RunsPanel } from './runs-panel';
import { SchedulesPanel } from './schedules-panel';
import { SharedPanel } from './shared-panel';

export function SidebarView(props: { initialTab?: SidebarTab }): JSX.Element {
  const context = React.useContext(MLPlatContext) as IMLPlatContext;
  const { model } = context;
  const last = model.lastShowRequest;
  const [tab, setTab] = React.useState<SidebarTab>(last?.tab ?? props.initialTab ?? 'pipeline');
  const [run, setRun] = React.useState<string | null>(last?.runId ?? null);
  const [modelName, setModelName] = React.useState<string | null>(last?.model ?? null);
  const [endpoint, setEndpoint] = React.useState<string | null>(last?.endpoint ?? null);

  React.useEffect(() => {
    const onShow = (_: unknown, request: IShowRequest): void => {
      setTab(request.tab);
      if (request.runId) {
        setRun(request.runId);
      }
      if (request.model) {
        setModelName(request.model);
      }
      if (request.endpoint) {
        setEndpoint(request.endpoint);
      }
    };
    model.showRequested.connect(onShow);
    return () => {
      model.showRequested.disconnect(onShow);
    };
  }, [model]);

  return (
    <div className="jp-mlplat-sidebar-body">
      <div className="jp-mlplat-tabs" role="tablist">
        {SIDEBAR_TABS.map(t => (
          <button
            key={t.id}
            type="button"
            role="tab"
            aria-selected={t.id === tab}
            data-tab={t.id}
            className={`jp-mlplat-tab${t.id === tab ? ' jp-mod-current' : ''}`}
            onClick={() => setTab(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div className="jp-mlplat-tabpanel" role="tabpanel" data-tab={tab}>
        {tab === 'pipeline' && <PipelinePanel />}
        {tab === 'runs' && <RunsPanel selected={run} onSelect={setRun} />}
        {tab === 'models' && <ModelsPanel selected={modelName} onSelect={setModelName} />}
        {tab === 'compare' && <ComparePanel />}
        {tab === 'endpoints' && <EndpointsPanel selected={endpoint} onSelect={setEndpoint} />}
        {tab === 'schedules' && <SchedulesPanel />}
        {tab === 'shared' && <SharedPanel />}
      </div>
    </div>
  );
}

/** The sidebar as a Lumino widget for the left area. */
export class MLPlatSidebar extends ReactWidget {
  constructor(private readonly _context: IMLPlatContext) {
    super();
    this.id = 'jp-mlplat-sidebar';
    this.addClass('jp-mlplat-sidebar');
  }

  render(): JSX.Element {
    return (
      <MLPlatContext.Provider value={this._context}>
        <SidebarView />
      </MLPlatContext.Provider>
    );
  }
}
