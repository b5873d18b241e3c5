/**
 * jupyter-mlplat's JupyterLab plugins: the shared model, the "ML Platform" sidebar, and the
 * notebook tools (promote a cell, run the pipeline, deploy a model, step badges, parse errors).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Cell } from '@jupyterlab/cells';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { runIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { MLPlatClient } from './api';
import { shortId } from './components/common';
import { MLPlatSidebar } from './components/sidebar';
import { StepNotebookDrive, stepNotebookPath } from './drive';
import { MLPlatEvents } from './events';
import { formatDuration } from './graph';
import { deployIcon, pipelineIcon, promoteIcon } from './icons';
import { DEFAULT_SETTINGS, IMLPlatSettings, MLPlatModel, SIDEBAR_TABS, SidebarTab } from './model';
import { CellDecorator } from './notebook/decorations';
import { deployModel, isServerNotebook, promoteCell, runPipeline } from './notebook/tools';
import { showError } from './notify';
import { IMLPlatModel } from './tokens';

/** Command ids (also used by `schema/notebook.json`'s toolbars and context menu). */
export namespace CommandIDs {
  export const openSidebar = 'mlplat:open-sidebar';
  export const showTab = 'mlplat:show-tab';
  export const refresh = 'mlplat:refresh';
  export const openStepNotebook = 'mlplat:open-step-notebook';
  export const promoteCell = 'mlplat:promote-cell';
  export const runPipeline = 'mlplat:run-pipeline';
  export const deployModel = 'mlplat:deploy-model';
  export const checkPipeline = 'mlplat:check-pipeline';
}

const CATEGORY = 'ML Platform';
const SIDEBAR_ID = 'jp-mlplat-sidebar';

/**
 * The shared model: the REST client, the event stream, live runs and endpoints. Checks that the
 * server extension answers and announces finished runs.
 */
const corePlugin: JupyterFrontEndPlugin<MLPlatModel> = {
  id: 'jupyter-mlplat:plugin',
  description: 'Notebook cells as pipeline steps, run by papermill on Dask.',
  autoStart: true,
  provides: IMLPlatModel,
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, settingRegistry: ISettingRegistry | null) => {
    console.log('jupyter-mlplat is activated');
    const serverSettings = app.serviceManager.serverSettings;
    const client = new MLPlatClient(serverSettings);
    const model = new MLPlatModel(client, new MLPlatEvents({ serverSettings }));
    model.serverRoot = PageConfig.getOption('serverRoot');

    client
      .version()
      .then(info => {
        console.log(`jupyter-mlplat server extension ${info.version} (owner: ${info.owner})`);
        model.start();
      })
      .catch(reason => {
        console.error(`jupyter-mlplat: the server extension did not answer.\n${reason}`);
      });

    if (settingRegistry) {
      settingRegistry
        .load(corePlugin.id)
        .then(settings => {
          const apply = (): void => {
            model.settings = {
              ...DEFAULT_SETTINGS,
              ...(settings.composite as object)
            } as IMLPlatSettings;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.warn('jupyter-mlplat: settings not loaded', reason));
    }

    model.runFinished.connect((_, run) => {
      if (!model.settings.notifyOnRunEnd) {
        return;
      }
      const actions = [
        { label: 'Show', callback: () => model.show({ tab: 'runs', runId: run.id }) }
      ];
      const name = `Run ${shortId(run.id)} of ${run.pipeline}`;
      if (run.status === 'succeeded') {
        const cached = run.steps.filter(s => s.status === 'cached').length;
        Notification.success(
          `${name} succeeded in ${formatDuration(run.duration)}` +
            (cached ? ` (${cached} step${cached === 1 ? '' : 's'} from cache)` : '') +
            '.',
          { autoClose: 5000, actions }
        );
      } else {
        const failed = run.steps.find(s => s.status === 'failed');
        const why =
          run.error ??
          (failed
            ? `${failed.name}: ${failed.ename ?? 'error'} ${failed.evalue ?? ''}`.trim()
            : '');
        Notification.error(`${name} ${run.status}${why ? `: ${why}` : '.'}`, {
          autoClose: 10_000,
          actions
        });
      }
    });
    return model;
  }
};

/**
 * The "ML Platform" sidebar (Pipeline, Runs, Models, Compare, Endpoints, Schedules) and the
 * read-only drive that opens executed step notebooks.
 */
const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlplat:sidebar',
  description:
    'The ML Platform sidebar: pipeline, runs, models, comparisons, endpoints, schedules.',
  autoStart: true,
  requires: [IMLPlatModel],
  optional: [IRenderMimeRegistry, IDocumentManager, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    model: MLPlatModel,
    rendermime: IRenderMimeRegistry | null,
    docManager: IDocumentManager | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;
    app.serviceManager.contents.addDrive(
      new StepNotebookDrive(model.client, app.serviceManager.serverSettings)
    );

    const openStepNotebook = (runId: string, step: string): void => {
      void commands.execute(CommandIDs.openStepNotebook, { runId, step });
    };
    const sidebar = new MLPlatSidebar({
      model,
      rendermime,
      openStepNotebook,
      openPath: path => void commands.execute('docmanager:open', { path }),
      execute: (command, args) => void commands.execute(command, args ?? {})
    });
    sidebar.title.icon = pipelineIcon;
    sidebar.title.caption = 'ML Platform';
    shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, 'jupyter-mlplat-sidebar');

    model.showRequested.connect(() => shell.activateById(SIDEBAR_ID));

    commands.addCommand(CommandIDs.openSidebar, {
      label: 'Show the ML Platform sidebar',
      icon: pipelineIcon,
      execute: () => shell.activateById(SIDEBAR_ID)
    });
    commands.addCommand(CommandIDs.showTab, {
      label: args => `Show ML Platform ${String(args.tab ?? 'runs')}`,
      execute: args =>
        model.show({
          tab: (args.tab as SidebarTab) ?? 'runs',
          runId: args.runId as string | undefined,
          model: args.model as string | undefined,
          endpoint: args.endpoint as string | undefined
        })
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh runs and endpoints',
      execute: async () => {
        await model.refreshRuns();
        await model.refreshEndpoints().catch(error => showError('Load the endpoints', error));
        if (model.loadError) {
          showError('Load the runs', new Error(model.loadError));
        }
      }
    });
    commands.addCommand(CommandIDs.openStepNotebook, {
      label: args =>
        args.step
          ? `Open the executed notebook of ${String(args.step)}`
          : 'Open an executed step notebook',
      execute: async args => {
        const runId = String(args.runId ?? '');
        const step = String(args.step ?? '');
        if (!runId || !step) {
          showError('Open the executed notebook', new Error('a run id and a step name are needed'));
          return;
        }
        const path = stepNotebookPath(runId, step);
        try {
          // Fetch first, so a missing notebook is a notification, not an empty tab.
          await model.client.stepNotebook(runId, step);
        } catch (error) {
          showError(`Open the executed notebook of ${step}`, error);
          return;
        }
        if (docManager) {
          docManager.openOrReveal(
            path,
            'Notebook',
            undefined,
            { mode: 'split-right' },
            {
              shouldStart: false,
              canStart: true
            }
          );
        } else {
          await commands.execute('docmanager:open', { path });
        }
      }
    });
    for (const command of [CommandIDs.openSidebar, CommandIDs.refresh]) {
      palette?.addItem({ command, category: CATEGORY });
    }
    for (const { id: tab } of SIDEBAR_TABS) {
      palette?.addItem({ command: CommandIDs.showTab, args: { tab }, category: CATEGORY });
    }
  }
};

/** User settings of the notebook tools (`schema/notebook.json`). */
interface INotebookToolSettings {
  showBadges: boolean;
  checkOnSave: boolean;
}

/**
 * The notebook tools: "Promote to pipeline step" (cell toolbar and context menu), "Run pipeline"
 * and "Deploy model" (notebook toolbar), step badges and parse errors on cells.
 */
const notebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlplat:notebook',
  description:
    'Promote cells to pipeline steps, run the pipeline and deploy models from a notebook.',
  autoStart: true,
  requires: [IMLPlatModel, INotebookTracker],
  optional: [ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    model: MLPlatModel,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const { commands } = app;
    const options: INotebookToolSettings = { showBadges: true, checkOnSave: true };
    const decorators = new Map<NotebookPanel, CellDecorator>();

    const current = (): NotebookPanel | null => tracker.currentWidget;

    const check = (panel: NotebookPanel): void => {
      if (isServerNotebook(panel)) {
        void model.parsePipeline(panel.context.path);
      }
    };

    model.pipelineChanged.connect((_, state) => {
      for (const [panel, decorator] of decorators) {
        if (panel.context.path !== state.path) {
          continue;
        }
        if (state.pipeline) {
          decorator.setErrors(state.pipeline.errors ?? []);
        } else if (state.error && /^cell \d+/.test(state.error)) {
          decorator.setErrors([{ message: state.error }]); // refused with a cell-naming 400
        } else {
          decorator.setErrors([]);
        }
      }
    });

    tracker.widgetAdded.connect((_, panel) => {
      const decorator = new CellDecorator(panel, { showBadges: options.showBadges });
      decorators.set(panel, decorator);
      panel.disposed.connect(() => {
        decorator.dispose();
        decorators.delete(panel);
      });
      void panel.context.ready.then(() => {
        decorator.update();
        if (options.checkOnSave) {
          check(panel);
        }
      });
      panel.context.saveState.connect((__, state) => {
        if (state === 'completed' && options.checkOnSave) {
          check(panel);
        }
      });
      panel.context.pathChanged.connect(() => {
        if (tracker.currentWidget === panel) {
          model.currentNotebook = isServerNotebook(panel) ? panel.context.path : null;
        }
      });
    });

    tracker.currentChanged.connect((_, panel) => {
      model.currentNotebook = isServerNotebook(panel) ? panel.context.path : null;
    });
    model.currentNotebook = isServerNotebook(tracker.currentWidget)
      ? tracker.currentWidget.context.path
      : null;

    if (settingRegistry) {
      settingRegistry
        .load(notebookPlugin.id)
        .then(settings => {
          const apply = (): void => {
            options.showBadges = settings.get('showBadges').composite !== false;
            options.checkOnSave = settings.get('checkOnSave').composite !== false;
            for (const decorator of decorators.values()) {
              decorator.showBadges = options.showBadges;
            }
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.warn('jupyter-mlplat: notebook settings not loaded', reason));
    }

    const hasServerNotebook = (): boolean => isServerNotebook(current());

    /** The cell a command is about: the one right-clicked (context menu), else the active one. */
    const targetCell = (args: ReadonlyPartialJSONObject): Cell | null => {
      if (args.fromContextMenu) {
        const node = app.contextMenuHitTest(n => n.classList.contains('jp-Cell'));
        const cell = current()?.content.widgets.find(widget => widget.node === node);
        if (cell) {
          return cell;
        }
      }
      return tracker.activeCell;
    };

    commands.addCommand(CommandIDs.promoteCell, {
      label: 'Promote to pipeline step',
      caption: 'Promote to pipeline step: name, runs after, GPUs, cache',
      icon: args => (args.toolbar ? promoteIcon : undefined),
      isEnabled: args => hasServerNotebook() && targetCell(args)?.model.type === 'code',
      execute: async args => {
        const panel = current();
        const cell = targetCell(args);
        if (!panel || !cell) {
          return;
        }
        panel.content.activeCellIndex = panel.content.widgets.indexOf(cell);
        try {
          await promoteCell(panel, cell);
        } catch (error) {
          showError('Promote to pipeline step', error);
        }
      }
    });

    commands.addCommand(CommandIDs.runPipeline, {
      label: args => (args.toolbar ? 'Run pipeline' : 'Run the notebook as a pipeline'),
      caption: 'Save the notebook and run it as a pipeline (parameters, which steps)',
      icon: args => (args.toolbar ? runIcon : undefined),
      isEnabled: hasServerNotebook,
      execute: async () => {
        const panel = current();
        if (!isServerNotebook(panel)) {
          showError('Run pipeline', new Error('open a notebook of your folders first'));
          return;
        }
        try {
          const runId = await runPipeline(panel, model);
          if (runId && model.settings.openSidebarOnRun) {
            model.show({ tab: 'runs', runId });
          }
        } catch (error) {
          showError('Run pipeline', error);
        }
      }
    });

    commands.addCommand(CommandIDs.deployModel, {
      label: args => (args.toolbar ? 'Deploy model' : 'Deploy a registered model to an endpoint'),
      caption: 'Serve a model version on an endpoint (blessed versions first)',
      icon: args => (args.toolbar ? deployIcon : undefined),
      execute: async () => {
        const panel = current();
        try {
          await deployModel(model, isServerNotebook(panel) ? panel.context.path : null);
        } catch (error) {
          showError('Deploy model', error);
        }
      }
    });

    commands.addCommand(CommandIDs.checkPipeline, {
      label: 'Check the pipeline marks of this notebook',
      isEnabled: hasServerNotebook,
      execute: async () => {
        const panel = current();
        if (!isServerNotebook(panel)) {
          return;
        }
        await panel.context.save();
        const state = await model.parsePipeline(panel.context.path);
        const errors = state.pipeline?.errors ?? [];
        if (state.error) {
          showError('Check the pipeline', new Error(state.error));
        } else if (errors.length > 0) {
          Notification.error(`${errors.length} problem(s): ${errors[0].message}`, {
            autoClose: 8000
          });
        } else {
          Notification.success(`${state.pipeline?.steps.length ?? 0} steps, no problems.`, {
            autoClose: 3000
          });
        }
        model.show({ tab: 'pipeline' });
      }
    });

    for (const command of [
      CommandIDs.promoteCell,
      CommandIDs.runPipeline,
      CommandIDs.deployModel,
      CommandIDs.checkPipeline
    ]) {
      palette?.addItem({ command, category: CATEGORY });
    }
    const refresh = (): void => {
      commands.notifyCommandChanged(CommandIDs.promoteCell);
      commands.notifyCommandChanged(CommandIDs.runPipeline);
    };
    tracker.activeCellChanged.connect(refresh);
    tracker.currentChanged.connect(refresh);
  }
};

export default [corePlugin, sidebarPlugin, notebookPlugin];
export { IMLPlatModel } from './tokens';
export { MLPlatModel } from './model';
