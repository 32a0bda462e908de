/**
 * A main-area view of one job's log, followed live. Lines arriving fast are
 * gathered and added once per frame as one text node, the oldest dropped past
 * MAX_LINES, so the page keeps up with thousands of lines a second. A cut
 * stream is taken up again where it stopped (`since`), as the magic does.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { LavahubApi } from './api';
import { jobsIcon } from './icons';
import { ENDED, Job } from './model';

const MAX_LINES = 100000;
const RECONNECT_MS = 2000;

export class LogView extends Widget {
  constructor(
    readonly api: LavahubApi,
    readonly job: Job
  ) {
    super();
    this.addClass('lavahub-LogView');
    this.status = document.createElement('div');
    this.status.className = 'lavahub-LogView-status';
    this.output = document.createElement('pre');
    this.output.className = 'lavahub-LogView-lines';
    this.node.append(this.status, this.output);
    this.setStatus(`Job ${job.id}: ${job.state}`);
    void this.follow();
  }

  /** How many lines have arrived (dropped ones included). */
  get count(): number {
    return this.lines;
  }

  dispose(): void {
    this.abort.abort();
    super.dispose();
  }

  private async follow(): Promise<void> {
    while (!this.isDisposed) {
      try {
        await this.api.followLogs(
          this.job.id,
          this.lines,
          lines => this.add(lines),
          this.abort.signal
        );
        const job = await this.api.getJob(this.job.id);
        if (ENDED.has(job.state)) {
          this.setStatus(
            `Job ${job.id} ${job.state}${job.reason ? ': ' + job.reason : ''}.`
          );
          return;
        }
      } catch (error) {
        if (this.isDisposed || (error as Error).name === 'AbortError') {
          return;
        }
        this.setStatus(`Reconnecting: ${(error as Error).message}`);
      }
      await new Promise(resolve => setTimeout(resolve, RECONNECT_MS));
    }
  }

  private add(lines: string[]): void {
    this.lines += lines.length;
    this.pending.push(...lines);
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => this.flush());
    }
    if (this.status.dataset.state !== 'running') {
      this.setStatus(`Job ${this.job.id}: following its log`, 'running');
    }
  }

  private flush(): void {
    this.frame = 0;
    const stick =
      this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 4;
    this.output.append(document.createTextNode(this.pending.join('\n') + '\n'));
    this.shown += this.pending.length;
    this.pending = [];
    while (this.shown > MAX_LINES && this.output.firstChild) {
      const first = this.output.firstChild;
      this.shown -= (first.textContent ?? '').split('\n').length - 1;
      first.remove();
    }
    if (stick) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  private setStatus(text: string, state = ''): void {
    this.status.textContent = text;
    this.status.dataset.state = state;
  }

  private status: HTMLElement;
  private output: HTMLElement;
  private pending: string[] = [];
  private lines = 0;
  private shown = 0;
  private frame = 0;
  private abort = new AbortController();
}

export function logWidget(api: LavahubApi, job: Job): MainAreaWidget<LogView> {
  const widget = new MainAreaWidget({ content: new LogView(api, job) });
  widget.id = `lavahub-logs-${job.id}`;
  widget.title.label = `Logs: ${job.name === 'cell' ? job.id.slice(0, 8) : job.name}`;
  widget.title.icon = jobsIcon;
  widget.title.closable = true;
  return widget;
}
