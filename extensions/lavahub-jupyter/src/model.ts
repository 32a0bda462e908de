/**
 * The frontend's logic that needs no JupyterLab: what the panel shows, what the
 * dialog allows, what a run sends to the kernel, which changes are notified.
 * Kept free of imports (but types) so `node --test` runs it as it is built.
 */
import type { components } from './jobs-api';

export type Job = components['schemas']['Job'];
export type Explanation = components['schemas']['Explanation'];
export type Options = components['schemas']['Options'];
export type TemplateChoice = components['schemas']['TemplateChoice'];
export type ProjectChoice = components['schemas']['ProjectChoice'];
export type State = Job['state'];

export const STATES: State[] = [
  'pending',
  'running',
  'succeeded',
  'failed',
  'cancelled'
];
export const ENDED: ReadonlySet<State> = new Set<State>([
  'succeeded',
  'failed',
  'cancelled'
]);

/** "12s", "4m", "3h", "2d": how long ago `iso` was, as the panel's age column says it. */
export function age(iso: string, now: number = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) {
    return `${seconds}s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)}h`;
  }
  return `${Math.floor(seconds / 86400)}d`;
}

export interface IFilter {
  state: State | '';
  project: string;
}

export function filterJobs(jobs: Job[], filter: IFilter): Job[] {
  return jobs.filter(
    job =>
      (!filter.state || job.state === filter.state) &&
      (!filter.project || job.project === filter.project)
  );
}

/** The projects the jobs belong to, for the panel's filter (sorted, each once). */
export function projectsOf(jobs: Job[]): string[] {
  return [...new Set(jobs.map(job => job.project))].sort();
}

export interface ITransition {
  job: Job;
  ended: boolean;
}

/**
 * Jobs that ended since the last listing (`before`), to notify: a job seen
 * unfinished before and ended now, or one that started and ended between two
 * listings (a fast cell). At the first listing (`before` null) nothing is news:
 * jobs that ended before the page loaded.
 */
export function endedSince(before: Map<string, State> | null, now: Job[]): Job[] {
  if (before === null) {
    return [];
  }
  return now.filter(job => {
    const was = before.get(job.id);
    return ENDED.has(job.state) && (was === undefined || !ENDED.has(was));
  });
}

export interface IRunChoice {
  workers: number;
  gpus: number;
  framework: string;
  project: string;
  template: string;
}

export interface ILimits {
  maxWorkers: number;
  maxGpus: number;
  frameworks: string[];
  projects: string[];
  templates: string[];
  /** Frameworks whose jobs run exactly one worker (a driver that fans out itself). */
  single: string[];
}

/** The templates a project may use. */
export function templatesFor(
  options: Options,
  project: string
): TemplateChoice[] {
  return options.templates.filter(
    t => t.projects.length === 0 || t.projects.includes(project)
  );
}

/**
 * What the dialog lets one choose for `project` and `template`: at most the
 * service's workers, at most the template's GPUs per worker (none where the
 * backend runs no GPU jobs), within the project's GPU quota for the workers.
 */
export function limitsFor(
  options: Options,
  project: string,
  template: string,
  workers: number
): ILimits {
  const usable = templatesFor(options, project);
  const chosen = usable.find(t => t.slug === template) ?? usable[0];
  const quota = options.projects.find(p => p.name === project)?.quota;
  let maxGpus = options.gpus && chosen ? chosen.max_gpus : 0;
  if (quota?.gpus !== undefined && quota.gpus !== null) {
    maxGpus = Math.min(maxGpus, Math.floor(quota.gpus / Math.max(workers, 1)));
  }
  return {
    maxWorkers: options.max_workers,
    maxGpus: Math.max(maxGpus, 0),
    frameworks: [...options.frameworks],
    projects: options.projects.map(p => p.name),
    templates: usable.map(t => t.slug),
    single: [...options.driver_frameworks]
  };
}

/** The dialog's first values: the workspace's project and template, and the template's GPUs. */
export function defaultsFor(
  options: Options,
  workspace: { project?: string | null; template?: string | null }
): IRunChoice {
  const projects = options.projects.map(p => p.name);
  const project =
    workspace.project && projects.includes(workspace.project)
      ? workspace.project
      : (projects[0] ?? '');
  const usable = templatesFor(options, project);
  const template =
    usable.find(t => t.slug === workspace.template) ?? usable[0];
  const workers = Math.min(2, options.max_workers);
  const limits = limitsFor(options, project, template?.slug ?? '', workers);
  return {
    workers,
    gpus: Math.min(template?.gpus ?? 0, limits.maxGpus),
    framework: options.frameworks.includes('python')
      ? 'python'
      : (options.frameworks[0] ?? 'python'),
    project,
    template: template?.slug ?? ''
  };
}

/** A problem with a choice, in words, or null: the dialog says it before anything is sent. */
export function checkChoice(choice: IRunChoice, limits: ILimits): string | null {
  const whole = (n: number) => Number.isInteger(n);
  if (!whole(choice.workers) || choice.workers < 1 || choice.workers > limits.maxWorkers) {
    return `Workers must be a whole number from 1 to ${limits.maxWorkers}.`;
  }
  if (limits.single.includes(choice.framework) && choice.workers !== 1) {
    return `A ${choice.framework} job runs one driver: workers must be 1.`;
  }
  if (!whole(choice.gpus) || choice.gpus < 0 || choice.gpus > limits.maxGpus) {
    return limits.maxGpus === 0
      ? 'This template and project give jobs no GPUs.'
      : `GPUs per worker must be a whole number from 0 to ${limits.maxGpus}.`;
  }
  if (!limits.frameworks.includes(choice.framework)) {
    return `Framework must be one of ${limits.frameworks.join(', ')}.`;
  }
  if (!limits.projects.includes(choice.project)) {
    return 'Choose one of your projects.';
  }
  if (!limits.templates.includes(choice.template)) {
    return `Template ${choice.template} is not available in project ${choice.project}.`;
  }
  return null;
}

const SAFE_ARG = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The cell as the `%%job` magic runs it: the magic's line, then the cell
 * unchanged. Names come from the service's own lists; anything else is refused
 * rather than quoted into the line.
 */
export function jobCell(source: string, choice: IRunChoice): string {
  for (const name of [choice.framework, choice.project, choice.template]) {
    if (!SAFE_ARG.test(name)) {
      throw new Error(`not a name: ${JSON.stringify(name)}`);
    }
  }
  const line =
    `%%job --workers ${choice.workers} --gpus ${choice.gpus}` +
    ` --framework ${choice.framework} --project ${choice.project}` +
    ` --template ${choice.template}`;
  return `${line}\n${source}`;
}

/**
 * Splits a stream's text into whole lines; keeps the unfinished tail for the
 * next chunk (a chunk may end in the middle of a line, or of a character).
 */
export class LineSplitter {
  private rest = '';

  push(text: string): string[] {
    const joined = this.rest + text;
    const lines = joined.split('\n');
    this.rest = lines.pop() ?? '';
    return lines;
  }

  end(): string[] {
    const rest = this.rest;
    this.rest = '';
    return rest ? [rest] : [];
  }
}

/** A service error, `{"error", "hint"}`, as one readable sentence. */
export function describeError(body: unknown, status: number): string {
  if (body && typeof body === 'object' && 'error' in body) {
    const { error, hint } = body as { error?: unknown; hint?: unknown };
    if (typeof error === 'string' && error) {
      return typeof hint === 'string' && hint ? `${error} (${hint})` : error;
    }
  }
  if (body && typeof body === 'object' && 'message' in body) {
    const { message } = body as { message?: unknown };
    if (typeof message === 'string' && message) {
      return message;
    }
  }
  return `The jobs service answered ${status}.`;
}
