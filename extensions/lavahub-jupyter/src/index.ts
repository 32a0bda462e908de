/**
 * lavahub in JupyterLab: the Jobs panel, "Run Cell as Distributed Job…", the
 * log viewer, GPU status and job notifications. Everything goes through the
 * server extension (`api.ts`), so it works the same on every jobs backend.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  Notification,
  WidgetTracker
} from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { IWorkspace, LavahubApi } from './api';
import { GpuStatus } from './gpustatus';
import { jobsIcon } from './icons';
import { JobsModel } from './jobs';
import { LogView, logWidget } from './logviewer';
import { Job, Options } from './model';
import { JobsPanel } from './panel';
import { askRun, runAsJob } from './rundialog';

const PLUGIN = 'lavahub-jupyter:plugin';

export namespace CommandIDs {
  export const runCell = 'lavahub:run-cell-as-job';
  export const showJobs = 'lavahub:show-jobs';
  export const openLogs = 'lavahub:open-logs';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN,
  description: 'Jobs panel, run a cell as a distributed job, live logs, GPU status.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IStatusBar, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null
  ) => {
    const api = new LavahubApi(app.serviceManager.serverSettings);
    const model = new JobsModel(api);
    const logs = new WidgetTracker<MainAreaWidget<LogView>>({ namespace: 'lavahub-logs' });

    const openLogs = (job: Job): void => {
      const open = logs.find(w => w.content.job.id === job.id);
      if (open) {
        app.shell.activateById(open.id);
        return;
      }
      const widget = logWidget(api, job);
      void logs.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    const panel = new JobsPanel(model, api, openLogs);
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'lavahub-jobs');
    model.start();

    model.ended.connect((_, ended) => {
      for (const job of ended) {
        const text =
          job.state === 'succeeded'
            ? `Job ${job.name} (${job.id}) succeeded.`
            : `Job ${job.name} (${job.id}) ${job.state}${job.reason ? ': ' + job.reason : ''}.`;
        const options = {
          autoClose: job.state === 'succeeded' ? 8000 : (false as const),
          actions: [{ label: 'Show logs', callback: () => openLogs(job) }]
        };
        if (job.state === 'succeeded') {
          Notification.success(text, options);
        } else if (job.state === 'failed') {
          Notification.error(text, options);
        } else {
          Notification.info(text, options);
        }
      }
    });

    let choices: Promise<[Options, IWorkspace]> | null = null;
    const loadChoices = (): Promise<[Options, IWorkspace]> => {
      choices ??= Promise.all([api.options(), api.workspace()]);
      choices.catch(() => (choices = null)); // asked again next time
      return choices;
    };

    app.commands.addCommand(CommandIDs.runCell, {
      label: 'Run Cell as Distributed Job…',
      caption: 'Run this cell on several workers at once, as a gang-scheduled job',
      icon: jobsIcon,
      isEnabled: () => notebooks.activeCell instanceof CodeCell,
      execute: async () => {
        const notebook = notebooks.currentWidget;
        const cell = notebooks.activeCell;
        if (!notebook || !(cell instanceof CodeCell)) {
          Notification.warning('Select a code cell to run as a job.', { autoClose: 4000 });
          return;
        }
        try {
          const [options, workspace] = await loadChoices();
          const choice = await askRun(options, workspace);
          if (!choice) {
            return;
          }
          const running = runAsJob(cell, notebook.sessionContext, choice);
          window.setTimeout(() => void model.refresh(), 1000);
          await running;
          void model.refresh();
        } catch (error) {
          Notification.error(`Could not run the cell as a job: ${(error as Error).message}`);
        }
      }
    });
    app.commands.addCommand(CommandIDs.showJobs, {
      label: 'Show Jobs',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIDs.runCell, category: 'lavahub' });
    palette?.addItem({ command: CommandIDs.showJobs, category: 'lavahub' });

    if (statusBar) {
      const gpus = new GpuStatus(api);
      statusBar.registerStatusItem('lavahub:gpus', {
        item: gpus,
        align: 'left',
        rank: 5,
        isActive: () => gpus.hasGpus,
        activeStateChanged: gpus.activeChanged
      });
    }
  }
};

export default plugin;
