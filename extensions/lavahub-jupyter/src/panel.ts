/**
 * The left sidebar's Jobs panel: the user's jobs with state, framework,
 * workers, project and age; filters by state and project; for the selected
 * job, its logs, cancel, and why it is waiting (with its place in the queue).
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { LavahubApi } from './api';
import { jobsIcon } from './icons';
import { JobsModel } from './jobs';
import {
  age,
  ENDED,
  Explanation,
  filterJobs,
  IFilter,
  Job,
  projectsOf,
  STATES
} from './model';

export class JobsPanel extends Widget {
  constructor(
    readonly model: JobsModel,
    readonly api: LavahubApi,
    readonly openLogs: (job: Job) => void
  ) {
    super();
    this.id = 'lavahub-jobs';
    this.addClass('lavahub-JobsPanel');
    this.title.icon = jobsIcon;
    this.title.caption = 'Jobs';
    this.node.innerHTML = `
      <header class="lavahub-JobsPanel-header">
        <h2>Jobs</h2>
        <button type="button" class="jp-mod-styled lavahub-refresh" title="List again">Refresh</button>
      </header>
      <div class="lavahub-JobsPanel-filters">
        <label>State <select class="jp-mod-styled lavahub-filter-state"></select></label>
        <label>Project <select class="jp-mod-styled lavahub-filter-project"></select></label>
      </div>
      <p class="lavahub-JobsPanel-error" hidden></p>
      <table class="lavahub-JobsTable">
        <thead><tr><th>Job</th><th>State</th><th title="Framework">Kind</th><th title="Workers">W</th><th>Project</th><th>Age</th></tr></thead>
        <tbody></tbody>
      </table>
      <p class="lavahub-JobsPanel-empty" hidden>No jobs yet. Run a cell as a distributed job to start one.</p>
      <section class="lavahub-JobDetail" hidden>
        <div class="lavahub-JobDetail-actions">
          <button type="button" class="jp-mod-styled jp-mod-accept lavahub-logs">Logs</button>
          <button type="button" class="jp-mod-styled lavahub-why">Why is it waiting?</button>
          <button type="button" class="jp-mod-styled jp-mod-warn lavahub-cancel">Cancel</button>
        </div>
        <div class="lavahub-Explanation" hidden></div>
      </section>`;
    const stateSelect = this.select('.lavahub-filter-state');
    stateSelect.append(new Option('all', ''));
    for (const state of STATES) {
      stateSelect.append(new Option(state, state));
    }
    stateSelect.onchange = () => {
      this.filter.state = stateSelect.value as IFilter['state'];
      this.render();
    };
    const projectSelect = this.select('.lavahub-filter-project');
    projectSelect.onchange = () => {
      this.filter.project = projectSelect.value;
      this.render();
    };
    this.button('.lavahub-refresh').onclick = () => void model.refresh();
    this.button('.lavahub-logs').onclick = () => {
      const job = this.selectedJob();
      if (job) {
        openLogs(job);
      }
    };
    this.button('.lavahub-cancel').onclick = () => void this.cancelSelected();
    this.button('.lavahub-why').onclick = () => void this.explainSelected();
    model.changed.connect(() => this.render());
    this.render();
  }

  private filter: IFilter = { state: '', project: '' };
  private selected: string | null = null;
  private explained: string | null = null;

  private select(css: string): HTMLSelectElement {
    return this.node.querySelector(css) as HTMLSelectElement;
  }

  private button(css: string): HTMLButtonElement {
    return this.node.querySelector(css) as HTMLButtonElement;
  }

  private selectedJob(): Job | undefined {
    return this.model.jobs.find(job => job.id === this.selected);
  }

  render(): void {
    const error = this.node.querySelector(
      '.lavahub-JobsPanel-error'
    ) as HTMLElement;
    error.hidden = this.model.error === null;
    error.textContent = this.model.error ?? '';

    const projects = this.select('.lavahub-filter-project');
    const known = ['', ...projectsOf(this.model.jobs)];
    if ([...projects.options].map(o => o.value).join('\n') !== known.join('\n')) {
      projects.replaceChildren(
        ...known.map(name => new Option(name || 'all', name))
      );
      projects.value = known.includes(this.filter.project)
        ? this.filter.project
        : '';
    }

    const body = this.node.querySelector('tbody') as HTMLElement;
    const jobs = filterJobs(this.model.jobs, this.filter);
    body.replaceChildren(...jobs.map(job => this.row(job)));
    (this.node.querySelector('.lavahub-JobsPanel-empty') as HTMLElement).hidden =
      jobs.length > 0 || this.model.error !== null;

    const job = this.selectedJob();
    const detail = this.node.querySelector('.lavahub-JobDetail') as HTMLElement;
    detail.hidden = !job;
    if (job) {
      this.button('.lavahub-cancel').disabled = ENDED.has(job.state);
      this.button('.lavahub-why').textContent =
        job.state === 'failed'
          ? 'Why did it fail?'
          : job.state === 'pending'
            ? 'Why is it waiting?'
            : 'Explain';
      if (this.explained !== job.id) {
        (this.node.querySelector('.lavahub-Explanation') as HTMLElement).hidden = true;
      }
    }
  }

  private row(job: Job): HTMLTableRowElement {
    const row = document.createElement('tr');
    row.dataset.jobId = job.id;
    row.className = 'lavahub-JobRow';
    if (job.id === this.selected) {
      row.classList.add('lavahub-mod-selected');
    }
    const cells: [string, string][] = [
      [job.name === 'cell' ? job.id.slice(0, 6) : job.name, job.id],
      [job.state, job.reason ?? job.state],
      [job.framework, ''],
      [String(job.workers), ''],
      [job.project, ''],
      [age(job.created), new Date(job.created).toLocaleString()]
    ];
    for (const [text, title] of cells) {
      const cell = document.createElement('td');
      cell.textContent = text;
      if (title) {
        cell.title = title;
      }
      row.append(cell);
    }
    row.children[1].className = `lavahub-state lavahub-state-${job.state}`;
    row.onclick = () => {
      this.selected = job.id;
      this.render();
    };
    row.ondblclick = () => this.openLogs(job);
    return row;
  }

  private async cancelSelected(): Promise<void> {
    const job = this.selectedJob();
    if (!job) {
      return;
    }
    try {
      await this.api.cancel(job.id);
      Notification.info(`Job ${job.id} cancelled.`, { autoClose: 4000 });
    } catch (error) {
      Notification.error(`Could not cancel job ${job.id}: ${(error as Error).message}`);
    }
    await this.model.refresh();
  }

  private async explainSelected(): Promise<void> {
    const job = this.selectedJob();
    if (!job) {
      return;
    }
    const box = this.node.querySelector('.lavahub-Explanation') as HTMLElement;
    try {
      const told = await this.api.explain(job.id);
      this.explained = job.id;
      showExplanation(box, told);
    } catch (error) {
      Notification.error(`Could not explain job ${job.id}: ${(error as Error).message}`);
    }
  }
}

function showExplanation(box: HTMLElement, told: Explanation): void {
  const summary = document.createElement('p');
  summary.className = 'lavahub-Explanation-summary';
  summary.textContent = told.summary;
  const parts: HTMLElement[] = [summary];
  if (told.position) {
    const place = document.createElement('p');
    place.className = 'lavahub-Explanation-position';
    place.textContent = `Place in the queue: ${told.position}`;
    parts.push(place);
  }
  for (const [lines, css] of [
    [told.details, 'lavahub-Explanation-details'],
    [told.suggestions, 'lavahub-Explanation-suggestions']
  ] as const) {
    if (lines.length) {
      const list = document.createElement('ul');
      list.className = css;
      list.replaceChildren(
        ...lines.map(line => {
          const item = document.createElement('li');
          item.textContent = line;
          return item;
        })
      );
      parts.push(list);
    }
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}
