/** The status bar's GPU item: this workspace's GPUs' utilization and memory, hidden without GPUs. */
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { IGpu, LavahubApi } from './api';

const EVERY_MS = 5000;

export function describeGpus(gpus: IGpu[]): string {
  return gpus
    .map(
      gpu =>
        `GPU${gpu.index} ${gpu.utilization}% ` +
        `${(gpu.memory_used_mib / 1024).toFixed(1)}/${(gpu.memory_total_mib / 1024).toFixed(0)} GiB`
    )
    .join('  ');
}

export class GpuStatus extends Widget {
  constructor(readonly api: LavahubApi) {
    super();
    this.addClass('lavahub-GpuStatus');
    void this.refresh();
  }

  /** Whether the workspace has GPUs to show (the item is shown only then). */
  get hasGpus(): boolean {
    return this.gpus.length > 0;
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  /** Emitted when GPUs appear or go (the status bar shows the item only with some). */
  get activeChanged(): ISignal<this, void> {
    return this._activeChanged;
  }

  private async refresh(): Promise<void> {
    const had = this.hasGpus;
    try {
      this.gpus = (await this.api.gpus()).gpus;
    } catch {
      this.gpus = [];
    }
    this.node.textContent = describeGpus(this.gpus);
    this.node.title = this.gpus
      .map(gpu => `${gpu.name} (${gpu.uuid})`)
      .join('\n');
    if (had !== this.hasGpus) {
      this._activeChanged.emit();
    }
    if (!this.isDisposed) {
      this.timer = window.setTimeout(() => void this.refresh(), EVERY_MS);
    }
  }

  private gpus: IGpu[] = [];
  private timer = 0;
  private _activeChanged = new Signal<this, void>(this);
}
