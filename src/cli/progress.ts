import cliProgress from 'cli-progress';
import { formatSize } from '../util/size.js';

/**
 * A progress bar on the terminal (stderr), silent when output is not a terminal or in quiet and
 * JSON modes: bytes against a total, the rate, the time left, and a counter of finished items.
 */
export class Progress {
  private bar?: cliProgress.SingleBar;
  private items = 0;
  private start = Date.now();

  constructor(
    label: string,
    enabled: boolean,
  ) {
    if (!enabled || !process.stderr.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
        format: `${label} {bar} {done} / {limit} | {rate}/s | {left} | {items}`,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatSize(v) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
  }

  /** Starts the bar: `total` bytes expected and, if known, how many `items` (files) should complete. */
  begin(total: number, itemsLabel: string, items?: number): void {
    this.itemsLabel = itemsLabel;
    this.itemsTotal = items;
    this.start = Date.now();
    this.bar?.start(Math.max(total, 1), 0, this.payload(0, total));
  }

  private itemsLabel = '';
  private itemsTotal?: number;
  private total = 0;
  private value = 0;

  private payload(value: number, total: number) {
    this.total = total;
    const secs = Math.max((Date.now() - this.start) / 1000, 0.001);
    const rate = value / secs;
    const remaining = Math.max(total - value, 0);
    const left = remaining === 0 ? 'finishing' : rate > 0 ? `${Math.ceil(remaining / rate)} s left` : '…';
    return {
      left, done: formatSize(value), limit: formatSize(total), rate: formatSize(Math.round(rate)), items: this.itemsTotal === undefined ? `${this.items} ${this.itemsLabel}` : `${this.itemsLabel} ${this.items}/${this.itemsTotal}` };
  }

  update(value: number): void {
    this.value = value;
    this.bar?.update(Math.min(value, this.total), this.payload(value, this.total));
  }

  item(): void {
    this.items++;
    this.update(this.value);
  }

  stop(): void {
    this.bar?.stop();
  }
}
