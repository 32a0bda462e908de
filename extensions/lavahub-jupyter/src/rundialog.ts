/**
 * "Run Cell as Distributed Job…": a dialog for workers, GPUs per worker,
 * framework, project and template, with the workspace's defaults and the
 * service's limits; the cell then runs through the `%%job` magic in its own
 * kernel, so its output streams into the cell like any other output.
 */
import { Dialog, ISessionContext, Notification, showDialog } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { OutputArea } from '@jupyterlab/outputarea';
import { Widget } from '@lumino/widgets';

import { IWorkspace } from './api';
import {
  checkChoice,
  defaultsFor,
  IRunChoice,
  jobCell,
  limitsFor,
  Options,
  templatesFor
} from './model';

// loads the magic where the kernel has not (quietly: nothing shows in the cell)
const LOAD_MAGIC =
  "get_ipython().extension_manager.load_extension('lavahub_jupyter')";

class RunForm extends Widget {
  constructor(
    readonly options: Options,
    initial: IRunChoice
  ) {
    super();
    this.addClass('lavahub-RunForm');
    this.node.innerHTML = `
      <label>Workers <input class="jp-mod-styled" name="workers" type="number" min="1" step="1"></label>
      <label>GPUs per worker <input class="jp-mod-styled" name="gpus" type="number" min="0" step="1"></label>
      <label>Framework <select class="jp-mod-styled" name="framework"></select></label>
      <label>Project <select class="jp-mod-styled" name="project"></select></label>
      <label>Template <select class="jp-mod-styled" name="template"></select></label>
      <p class="lavahub-RunForm-limits"></p>
      <p class="lavahub-RunForm-problem" role="alert"></p>`;
    this.fill('framework', options.frameworks, initial.framework);
    this.fill('project', options.projects.map(p => p.name), initial.project);
    this.fill(
      'template',
      templatesFor(options, initial.project).map(t => t.slug),
      initial.template
    );
    this.field('workers').value = String(initial.workers);
    this.field('gpus').value = String(initial.gpus);
    this.node.addEventListener('input', () => this.refreshForm(), true);
    this.node.addEventListener('change', () => this.refreshForm(), true);
    this.refreshForm();
  }

  field(name: string): HTMLInputElement & HTMLSelectElement {
    return this.node.querySelector(`[name="${name}"]`) as HTMLInputElement &
      HTMLSelectElement;
  }

  private fill(name: string, values: string[], chosen: string): void {
    const select = this.field(name);
    select.replaceChildren(...values.map(v => new Option(v, v)));
    select.value = values.includes(chosen) ? chosen : (values[0] ?? '');
  }

  /** The choice as the form holds it. */
  value(): IRunChoice {
    return {
      workers: Number(this.field('workers').value),
      gpus: Number(this.field('gpus').value || '0'),
      framework: this.field('framework').value,
      project: this.field('project').value,
      template: this.field('template').value
    };
  }

  /** The limits for what is chosen now; says the first problem, if any. */
  problem(): string | null {
    const choice = this.value();
    return checkChoice(
      choice,
      limitsFor(this.options, choice.project, choice.template, choice.workers)
    );
  }

  private refreshForm(): void {
    const chosen = this.value();
    const limits = limitsFor(this.options, chosen.project, chosen.template, chosen.workers);
    this.fill('template', limits.templates, chosen.template); // the project's, keeping the choice
    this.field('workers').max = String(limits.maxWorkers);
    this.field('gpus').max = String(limits.maxGpus);
    (this.node.querySelector('.lavahub-RunForm-limits') as HTMLElement).textContent =
      `At most ${limits.maxWorkers} workers and ${limits.maxGpus} GPUs per worker here.`;
    (this.node.querySelector('.lavahub-RunForm-problem') as HTMLElement).textContent =
      this.problem() ?? '';
  }
}

/** Asks how to run the cell; null if the user cancels. Asks again while the choice is refused. */
export async function askRun(
  options: Options,
  workspace: IWorkspace
): Promise<IRunChoice | null> {
  let initial = defaultsFor(options, workspace);
  for (;;) {
    const form = new RunForm(options, initial);
    const answer = await showDialog({
      title: 'Run Cell as Distributed Job',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: 'input[name="workers"]'
    });
    if (!answer.button.accept) {
      return null;
    }
    const problem = form.problem();
    initial = form.value();
    if (!problem) {
      return initial;
    }
    Notification.warning(problem, { autoClose: 5000 });
  }
}

/** Runs `cell` through `%%job` with `choice`, its output streaming into the cell. */
export async function runAsJob(
  cell: CodeCell,
  sessionContext: ISessionContext,
  choice: IRunChoice
): Promise<void> {
  const kernel = sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('The notebook has no kernel: start one first.');
  }
  const code = jobCell(cell.model.sharedModel.getSource(), choice);
  await kernel.requestExecute({ code: LOAD_MAGIC, silent: true, store_history: false }).done;
  cell.outputArea.model.clear();
  cell.model.executionCount = null;
  cell.setPrompt('*');
  try {
    const reply = await OutputArea.execute(code, cell.outputArea, sessionContext);
    const count = reply?.content.execution_count ?? null;
    cell.model.executionCount = count;
    cell.setPrompt(count === null ? '' : String(count));
  } catch (error) {
    cell.setPrompt('');
    throw error;
  }
}
