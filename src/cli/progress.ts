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
    private readonly label: string,
    enabled: boolean,
  ) {
    if (!enabled || !process.stderr.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
        format: `${label} {bar} {done} / {limit} | {rate}/s | ETA {eta_formatted} | {items}`,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatSize(v) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
  }

  begin(total: number, itemsLabel: string): void {
    this.itemsLabel = itemsLabel;
    this.start = Date.now();
    this.bar?.start(Math.max(total, 1), 0, this.payload(0, total));
  }

  private itemsLabel = '';
  private total = 0;

  private payload(value: number, total: number) {
    this.total = total;
    const secs = Math.max((Date.now() - this.start) / 1000, 0.001);
    return { done: formatSize(value), limit: formatSize(total), rate: formatSize(Math.round(value / secs)), items: `${this.items} ${this.itemsLabel}` };
  }

  update(value: number): void {
    this.bar?.update(Math.min(value, this.total), this.payload(value, this.total));
  }

  item(): void {
    this.items++;
  }

  stop(): void {
    this.bar?.stop();
  }
}
