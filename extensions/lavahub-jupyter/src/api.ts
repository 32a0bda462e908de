/**
 * The server extension's API (lavahub_jupyter/server.py): the jobs service's
 * calls, made as the person using the page, plus this workspace's facts.
 * Every failure is one `JobsApiError` whose message is readable as it is.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  describeError,
  Explanation,
  Job,
  LineSplitter,
  Options
} from './model';

export class JobsApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export interface IWorkspace {
  template: string | null;
  project: string | null;
  jobs: boolean;
  jobs_off: string | null;
}

export interface IGpu {
  index: number;
  uuid: string;
  name: string;
  utilization: number;
  memory_used_mib: number;
  memory_total_mib: number;
}

export class LavahubApi {
  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  listJobs(): Promise<{ jobs: Job[] }> {
    return this.json('api/jobs?limit=200');
  }

  getJob(id: string): Promise<Job> {
    return this.json(`api/jobs/${id}`);
  }

  cancel(id: string): Promise<Job> {
    return this.json(`api/jobs/${id}`, { method: 'DELETE' });
  }

  explain(id: string): Promise<Explanation> {
    return this.json(`api/jobs/${id}/explain`);
  }

  options(): Promise<Options> {
    return this.json('api/options');
  }

  workspace(): Promise<IWorkspace> {
    return this.json('workspace');
  }

  gpus(): Promise<{ gpus: IGpu[] }> {
    return this.json('gpus');
  }

  /**
   * Follows a job's log from line `since`: `onLines` gets whole lines as they
   * arrive. Resolves with the number of lines read once the service ends the
   * stream (the job ended), rejects if it is cut; `signal` stops it.
   */
  async followLogs(
    id: string,
    since: number,
    onLines: (lines: string[]) => void,
    signal: AbortSignal
  ): Promise<number> {
    const response = await this.request(
      `api/jobs/${id}/logs?follow=true&since=${since}`,
      { signal }
    );
    const reader = response.body?.getReader();
    if (!reader) {
      const lines = (await response.text()).split('\n').filter(Boolean);
      onLines(lines);
      return since + lines.length;
    }
    const decoder = new TextDecoder();
    const splitter = new LineSplitter();
    let count = since;
    for (;;) {
      const { done, value } = await reader.read();
      const lines = done
        ? splitter.push(decoder.decode()).concat(splitter.end())
        : splitter.push(decoder.decode(value, { stream: true }));
      if (lines.length) {
        count += lines.length;
        onLines(lines);
      }
      if (done) {
        return count;
      }
    }
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.request(path, init);
    return (await response.json()) as T;
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, 'lavahub', path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      if ((error as Error).name === 'AbortError') {
        throw error;
      }
      throw new JobsApiError(
        'JupyterLab could not reach its server; check your connection.',
        0
      );
    }
    if (!response.ok) {
      let body: unknown = null;
      try {
        body = await response.json();
      } catch {
        // not JSON: describeError says the status
      }
      throw new JobsApiError(describeError(body, response.status), response.status);
    }
    return response;
  }
}
