import { availableParallelism } from 'node:os';
import { BackgroundWorker } from '../util/background-worker.js';
import { CompressOptions } from './zstd.js';
import { BrotliParams } from '../util/brotli.js';

/**
 * zstd and brotli compression on worker threads, one compression context per worker (a context reused
 * across frames keeps its workspace: src/delta/zstd.ts FrameCompressor), one worker per core.
 * A publish is mostly level-19 compression of independent frames (the offer's deltas: 20 s of
 * one thread for vite's twelfth release), so they run side by side; results come back in the
 * order asked for, whatever order the workers finish in. The index files (brotli: the .snap,
 * shards, layers) go through the same workers: at 30k files brotli was 9 of a 1% publish's
 * 13 s on the main thread while the workers waited. Either codec's output depends on its input
 * and parameters alone, so the bytes are the same whatever the number of workers.
 */

export type ToCompressor = { id: number; content: Uint8Array } & ({ level: number; dictionary?: Uint8Array } | { brotli: BrotliParams });
export type FromCompressor = { id: number; frame: Uint8Array } | { id: number; message: string };

type JobOptions = { level: number; dictionary?: Uint8Array } | { brotli: BrotliParams };

interface Job {
  id: number;
  content: Uint8Array;
  opts: JobOptions;
  resolve: (frame: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class CompressPool {
  private readonly workers: { worker: BackgroundWorker<ToCompressor, FromCompressor>; job?: Job }[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;

  constructor(readonly size = Math.max(1, availableParallelism())) {
    for (let k = 0; k < size; k++) {
      const slot: { worker: BackgroundWorker<ToCompressor, FromCompressor>; job?: Job } = {
        worker: new BackgroundWorker<ToCompressor, FromCompressor>(
          new URL('./compress-worker.js', import.meta.url),
          (m) => this.answered(slot, m),
          (e) => this.failed(slot, e),
        ),
      };
      this.workers.push(slot);
    }
  }

  /** One zstd frame of `content`, as FrameCompressor.compress gives it, from whichever worker is free first. */
  compress(content: Uint8Array, opts: CompressOptions): Promise<Uint8Array> {
    return this.run(content, { level: opts.level, dictionary: opts.dictionary });
  }

  /** `content` as brotli compresses it with `params` (src/util/brotli.ts), from whichever worker is free first. */
  brotli(content: Uint8Array, params: BrotliParams): Promise<Uint8Array> {
    return this.run(content, { brotli: params });
  }

  private run(content: Uint8Array, opts: JobOptions): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, content, opts, resolve, reject });
      this.dispatch();
    });
  }

  /** Ends the workers; frames not yet compressed fail. */
  async close(): Promise<void> {
    const err = new Error('the compression pool was closed');
    for (const job of this.queue.splice(0)) job.reject(err);
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  private dispatch(): void {
    for (const slot of this.workers) {
      if (slot.job || slot.worker.broken) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      slot.worker.busy(true);
      // Copied, not moved: content and dictionary may be views of Node's shared buffer pool.
      slot.worker.post({ id: job.id, content: job.content, ...job.opts });
    }
    if (this.queue.length && this.workers.every((w) => w.worker.broken)) {
      const e = this.workers[0].worker.broken!;
      for (const job of this.queue.splice(0)) job.reject(e);
    }
  }

  private answered(slot: { worker: BackgroundWorker<ToCompressor, FromCompressor>; job?: Job }, m: FromCompressor): void {
    const job = slot.job;
    slot.job = undefined;
    slot.worker.busy(false);
    if (job && job.id === m.id) {
      if ('frame' in m) job.resolve(new Uint8Array(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength));
      else job.reject(new Error(`${'brotli' in job.opts ? 'brotli' : 'zstd'}: ${m.message}`));
    }
    this.dispatch();
  }

  private failed(slot: { worker: BackgroundWorker<ToCompressor, FromCompressor>; job?: Job }, e: Error): void {
    const job = slot.job;
    slot.job = undefined;
    job?.reject(e);
    this.dispatch();
  }
}
