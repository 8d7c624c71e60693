import type cliProgress from 'cli-progress';
import { createRequire } from 'node:module';

/** cli-progress (and string-width under it) is loaded only when a bar is drawn: never with -q, --json or no terminal. */
const loadCliProgress = () => createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
import { formatSize } from '../util/size.js';

/**
 * The progress line on the terminal (stderr), drawn by cli-progress, silent when stderr is not a
 * terminal and in quiet and JSON modes. What it shows must be true on a park link:
 *
 * - bytes against the budget (or against the plan, with no budget);
 * - a rate measured over the last seconds of the link (`RateMeter`), never over less than a second:
 *   a rate taken since the start of the bar showed 27.4 MB/s on a 300 kB/s link, because bytes
 *   spent before the bar began (the index) were divided by the bar's few milliseconds;
 * - an ETA from that rate, "finishing" once the planned bytes are in;
 * - files done out of files planned (the plan's count is an estimate for stream prefixes: the
 *   line never shows more done than planned, it raises "planned" instead);
 * - what is happening ("contacting …" before the first byte, then the last file placed);
 * - all of it fitted to the terminal's width, dropping the least useful parts first, so it never
 *   wraps (a wrapped line redrawn each tick fills the screen).
 */
export interface ProgressView {
  label: string;
  done: number;
  /** Bytes the line counts towards: the budget, else the planned total; undefined before the plan. */
  limit?: number;
  limitIsBudget?: boolean;
  /** Bytes per second, when measured. */
  rate?: number;
  /** Bytes the plan still expects (for the ETA); undefined: unknown. */
  remaining?: number;
  items?: { label: string; done: number; planned?: number };
  /** What is happening: "contacting …", the last file placed. */
  status?: string;
}

/** Bytes per second over a sliding window of samples. Pure but for the clock it is given. */
export class RateMeter {
  private samples: Array<{ t: number; v: number }> = [];
  constructor(
    /** How far back the rate looks, ms: long enough to smooth a bursty link, short enough to follow it. */
    private readonly windowMs = 8000,
    /** No rate is shown over less than this: a burst of buffered bytes is not a link speed. */
    private readonly minSpanMs = 1000,
  ) {}

  add(t: number, v: number): void {
    this.samples.push({ t, v });
    // Keep one sample older than the window, so the span is always at least the window once full.
    while (this.samples.length > 2 && this.samples[1].t <= t - this.windowMs) this.samples.shift();
  }

  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || last.t - first.t < this.minSpanMs) return undefined;
    return Math.max(0, (last.v - first.v) / ((last.t - first.t) / 1000));
  }

  reset(): void {
    this.samples = [];
  }
}

const clock = (secs: number): string => {
  if (secs < 60) return `${Math.ceil(secs)} s`;
  const m = Math.ceil(secs / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
};

/** One line, at most `width - 1` characters (the last column would wrap on some terminals). */
export function progressLine(v: ProgressView, width: number): string {
  const max = Math.max(20, width) - 1;
  const bytes =
    v.limit === undefined ? formatSize(v.done) : `${formatSize(v.done)} / ${formatSize(v.limit)}${v.limitIsBudget ? ' budget' : ''}`;
  const rate = v.rate === undefined ? undefined : `${formatSize(Math.round(v.rate))}/s`;
  const eta =
    v.remaining === undefined ? undefined : v.remaining <= 0 ? 'finishing' : v.rate ? `${clock(v.remaining / v.rate)} left` : undefined;
  const items = v.items
    ? v.items.planned === undefined
      ? `${v.items.done} ${v.items.label}`
      : `${v.items.label} ${v.items.done}/${Math.max(v.items.planned, v.items.done)}`
    : undefined;
  const SEP = ' · ';
  // What must be there, then what is given up first when the line is too narrow: ETA, rate, files.
  let parts = [v.label, bytes];
  for (const p of [items, rate, eta]) {
    if (p && [...parts, p].join(SEP).length <= max) parts = [...parts, p];
  }
  let line = parts.join(SEP).slice(0, max);
  // Then what is happening, cut from the left (a path's end names it), then a bar in what is left.
  const status = v.status?.replace(/[\x00-\x1f\x7f]/g, '?');
  const roomForStatus = max - line.length - SEP.length;
  if (status && roomForStatus >= 8) line += SEP + (status.length <= roomForStatus ? status : '…' + status.slice(status.length - roomForStatus + 1));
  const roomForBar = max - line.length - 1;
  if (v.limit !== undefined && roomForBar >= 10) {
    const size = Math.min(30, roomForBar);
    const filled = Math.max(0, Math.min(size, Math.round((size * v.done) / Math.max(v.limit, 1))));
    line = v.label + ' ' + '█'.repeat(filled) + '░'.repeat(size - filled) + line.slice(v.label.length);
  }
  return line;
}

export class Progress {
  private bar?: cliProgress.SingleBar;
  private readonly meter = new RateMeter();
  private view: ProgressView;
  private plannedTotal?: number;

  constructor(
    label: string,
    enabled: boolean,
    private readonly now: () => number = Date.now,
  ) {
    this.view = { label, done: 0 };
    if (!enabled || !process.stderr.isTTY) return;
    this.bar = new (loadCliProgress().SingleBar)({
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      linewrap: false,
      fps: 5,
      format: () => progressLine(this.view, process.stderr.columns || 80),
    });
  }

  /** The budget, known before the plan: shown from the first line on. */
  budget(bytes: number | undefined): void {
    if (bytes === undefined) return;
    this.view.limit = bytes;
    this.view.limitIsBudget = true;
    this.redraw();
  }

  /** Something is happening before any byte is counted (shown at once). */
  status(text: string): void {
    this.view.status = text;
    this.redraw(true);
  }

  /**
   * The plan is known: `total` bytes expected in all (what was spent before counts too), of a
   * budget if one was given, and how many `items` (files) should complete.
   */
  begin(total: number, itemsLabel: string | undefined, items?: number, budget?: number): void {
    this.plannedTotal = total;
    this.view.limit = budget ?? total;
    this.view.limitIsBudget = budget !== undefined;
    this.view.items = itemsLabel === undefined ? undefined : { label: itemsLabel, done: this.view.items?.done ?? 0, planned: items };
    this.redraw();
  }

  /** A new phase with totals of its own: the rate starts again from its first bytes. */
  restart(total: number, itemsLabel: string | undefined, items?: number): void {
    this.meter.reset();
    this.view.items = undefined;
    this.view.done = 0;
    this.view.rate = undefined;
    this.view.remaining = undefined;
    this.begin(total, itemsLabel, items);
  }

  /** How many items are done, when the caller counts them. */
  items(done: number): void {
    if (this.view.items) this.view.items.done = done;
    this.redraw();
  }

  update(value: number): void {
    this.view.done = value;
    this.meter.add(this.now(), value);
    this.view.rate = this.meter.rate();
    if (this.plannedTotal !== undefined) this.view.remaining = this.plannedTotal - value;
    this.redraw();
  }

  /** One more item (file, volume) finished; `name` is shown as what happened last. */
  item(name?: string): void {
    const items = (this.view.items ??= { label: 'items', done: 0 });
    items.done++;
    if (name) this.view.status = name;
    this.redraw();
  }

  private started = false;

  /**
   * Draws; the bar starts with the first thing worth showing. cli-progress skips a redraw within
   * its throttle time; `now` forces one, for changes that must show even when the event loop is
   * about to be blocked (a publish compresses an update synchronously for tens of seconds).
   */
  private redraw(now = false): void {
    if (!this.bar) return;
    if (!this.started) {
      this.started = true;
      this.bar.start(1, 0);
    } else if (now) this.bar.render();
    else this.bar.update(0);
  }

  stop(): void {
    if (this.started) this.bar?.stop();
    this.bar = undefined;
  }
}
