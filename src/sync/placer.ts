import { ErrorCode, PaqueteError } from '../errors.js';
import type { Located } from '../store/pack-reader.js';
import type { PlaceJob, PlaceOutcome } from './tree-writer.js';
import { availableParallelism } from 'node:os';
import { BackgroundWorker } from '../util/background-worker.js';

/**
 * The main thread's side of the place worker (src/sync/place-worker.ts). A file goes as one or
 * more `data` messages, each with the store locations of its next chunks (the first names the
 * file, the last says so): the worker reads them from the packs itself. The promise of `end`
 * settles once the file is synced and in place, or failed its checksum. One worker serves the
 * whole process, started on first use and not keeping the process alive while idle; files that
 * are rebuilt (wheels, sdists: src/rebuild/) are spread over as many workers as the machine has
 * cores (at most REBUILD_THREADS), since their deflate is the client's heaviest CPU work
 * (zlib in WebAssembly: ~7 MB of numpy/scipy wheel per CPU second here, pako half that).
 *
 * Why a thread: writing a file into the tree takes the disk journal (open, write, mkdir and
 * rename wait while another file's fsync commits), and SHA-256 of every byte is the client's
 * largest CPU cost after decompression. On its own thread neither stops the download being
 * decoded, and no byte of the file passes through the main thread (copying 23.6 MB of chunks
 * over to the worker cost the main thread ~27 ms and as much again in garbage collection).
 */
export type FileData = { t: 'data'; id: number; job?: PlaceJob; records: Located[]; last: boolean };

export type FileDone =
  | { t: 'done'; id: number; outcome: PlaceOutcome }
  | { t: 'done'; id: number; error: { message: string; code?: string; hint?: string; paquete: boolean } };

/**
 * What one message carries each way: everything one side had for the other in one turn of its
 * event loop. One message per file each way was 20k messages for a 10k-file first sync, each a
 * copy, a wake-up of the other thread and a system call to signal it.
 */
export type ToWorker = FileData[];
export type FromWorker = FileDone[];

interface File {
  /** Which worker writes it. */
  worker: number;
  /** Bytes it rebuilds (0: not a rebuilt file). */
  rebuilds: number;
  /** Until the first message carries it. */
  job?: PlaceJob;
  lastSent: boolean;
  result: Promise<PlaceOutcome>;
  resolve: (o: PlaceOutcome) => void;
  reject: (e: Error) => void;
}

/** Workers that rebuild files at most: more than the cores only adds switching. */
const REBUILD_THREADS = 4;

export class Placer {
  private static shared: Placer | undefined;
  private readonly workers: BackgroundWorker<ToWorker, FromWorker>[] = [];
  /** Per worker: files under way, and bytes being rebuilt. */
  private readonly load: { files: number; rebuilds: number }[] = [];
  private nextId = 1;
  private readonly files = new Map<number, File>();
  /** Per worker: what goes in its next message, sent once this turn of the event loop is over. */
  private readonly outbox: FileData[][] = [];
  private sending: NodeJS.Immediate | undefined;

  /** The process's placer, started on first use (again after a worker failure). */
  static get(): Placer {
    if (!Placer.shared || Placer.shared.broken) Placer.shared = new Placer();
    return Placer.shared;
  }

  private get broken(): Error | undefined {
    return this.workers.find((w) => w.broken)?.broken;
  }

  private constructor() {
    this.start();
  }

  private start(): number {
    this.workers.push(new BackgroundWorker(new URL('./place-worker.js', import.meta.url), (m) => this.receive(m), (e) => this.fail(e)));
    this.load.push({ files: 0, rebuilds: 0 });
    this.outbox.push([]);
    return this.workers.length - 1;
  }

  /** Plain files go to the first worker; a rebuilt one to the worker rebuilding the fewest bytes. */
  private pick(rebuilds: number): number {
    if (rebuilds === 0) return 0;
    const idle = this.load.findIndex((l) => l.rebuilds === 0);
    if (idle >= 0) return idle;
    if (this.workers.length < Math.min(REBUILD_THREADS, availableParallelism())) return this.start();
    return this.load.reduce((best, l, i) => (l.rebuilds < this.load[best].rebuilds ? i : best), 0);
  }

  /** Starts a file; returns its id for `write` and `end`. */
  begin(job: PlaceJob): number {
    if (this.broken) throw this.broken;
    const id = this.nextId++;
    let resolve!: (o: PlaceOutcome) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<PlaceOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Observed now: a failure before anyone awaits `end` must not count as unhandled.
    result.catch(() => {});
    const rebuilds = job.rebuiltSize ?? 0;
    const worker = this.pick(rebuilds);
    const load = this.load[worker];
    if (load.files++ === 0) this.workers[worker].busy(true);
    load.rebuilds += rebuilds;
    this.files.set(id, { worker, rebuilds, job, lastSent: false, result, resolve, reject });
    return id;
  }

  /** Sends where the next chunks of a file are (written out to their packs: ChunkStore.locateMany). */
  write(id: number, records: Located[], last: boolean): void {
    if (this.broken) throw this.broken;
    const file = this.files.get(id)!;
    this.send(file.worker, { t: 'data', id, job: file.job, records, last });
    file.job = undefined;
    file.lastSent = last;
  }

  /** Ends a file: resolves when it is in place ({ok: true}) or failed its checksum ({ok: false}). */
  end(id: number): Promise<PlaceOutcome> {
    const file = this.files.get(id);
    if (!file) return Promise.reject(this.broken ?? new Error(`no file ${id} under way`));
    if (!file.lastSent) {
      this.send(file.worker, { t: 'data', id, job: file.job, records: [], last: true });
      file.job = undefined;
      file.lastSent = true;
    }
    return file.result;
  }

  private send(worker: number, m: FileData): void {
    this.outbox[worker].push(m);
    this.sending ??= setImmediate(() => {
      this.sending = undefined;
      for (const [i, batch] of this.outbox.entries()) {
        if (!batch.length || this.workers[i].broken) continue;
        this.outbox[i] = [];
        this.workers[i].post(batch);
      }
    });
  }

  private receive(batch: FromWorker): void {
    for (const m of batch) this.settle(m);
  }

  private settle(m: FileDone): void {
    const file = this.files.get(m.id);
    if (!file) return;
    this.files.delete(m.id);
    const load = this.load[file.worker];
    load.rebuilds -= file.rebuilds;
    if (--load.files === 0) this.workers[file.worker].busy(false);
    if ('outcome' in m) file.resolve(m.outcome);
    else file.reject(m.error.paquete ? new PaqueteError(m.error.code as ErrorCode, m.error.message, m.error.hint) : new Error(m.error.message));
  }

  private fail(e: Error): void {
    for (const file of this.files.values()) file.reject(e);
    this.files.clear();
    // The placer is replaced (get()); its other workers must not keep the process alive.
    for (const [i, w] of this.workers.entries()) {
      w.busy(false);
      this.load[i] = { files: 0, rebuilds: 0 };
    }
  }
}
