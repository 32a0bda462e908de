/**
 * The user's jobs, listed again every few seconds: one source for the panel
 * and for the notifications, so both see the same changes.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { JobsApiError, LavahubApi } from './api';
import { endedSince, Job, State } from './model';

const EVERY_MS = 3000;
const AT_MOST_MS = 60000; // after errors the interval doubles up to this

export class JobsModel {
  constructor(readonly api: LavahubApi) {}

  get jobs(): Job[] {
    return this._jobs;
  }

  /** The last listing's error in words, or null when it worked. */
  get error(): string | null {
    return this._error;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Jobs that ended since the last listing. */
  get ended(): ISignal<this, Job[]> {
    return this._ended;
  }

  start(): void {
    if (!this._timer && !this._stopped) {
      void this.refresh();
    }
  }

  stop(): void {
    this._stopped = true;
    window.clearTimeout(this._timer);
  }

  /** Lists now (and then every few seconds). */
  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    let wait = EVERY_MS;
    try {
      const { jobs } = await this.api.listJobs();
      const ended = endedSince(this._states, jobs);
      this._states = new Map(jobs.map(job => [job.id, job.state]));
      this._jobs = jobs;
      this._error = null;
      this._failures = 0;
      this._changed.emit();
      if (ended.length) {
        this._ended.emit(ended);
      }
    } catch (error) {
      this._failures += 1;
      this._error =
        error instanceof JobsApiError ? error.message : String(error);
      this._changed.emit();
      if (error instanceof JobsApiError && error.status === 503) {
        return; // jobs are off here: nothing to poll for
      }
      wait = Math.min(EVERY_MS * 2 ** this._failures, AT_MOST_MS);
    }
    if (!this._stopped) {
      this._timer = window.setTimeout(() => void this.refresh(), wait);
    }
  }

  private _jobs: Job[] = [];
  private _states: Map<string, State> | null = null; // null until the first listing
  private _error: string | null = null;
  private _failures = 0;
  private _timer = 0;
  private _stopped = false;
  private _changed = new Signal<this, void>(this);
  private _ended = new Signal<this, Job[]>(this);
}
