import { PaqueteError } from '../errors.js';
import { FrameDecoder } from './zstd.js';
import { BackgroundWorker } from '../util/background-worker.js';

/**
 * A frame being decoded as its compressed bytes arrive: `push` what came, `take` its chunks as
 * they are decoded, `settle` to wait for what was pushed, `end` once the input is all there.
 * Two kinds: in this thread, for small frames, and on the decode worker for big ones (the update
 * from nothing is frames of up to 128 MiB), where zstd, the largest CPU cost of a first
 * download (60-90 ms of a 23.6 MB typescript sync here), runs beside the main thread's checking,
 * storing and placing instead of before it.
 */
export interface StreamingFrame {
  /** Feeds compressed bytes; the caller may reuse its buffer afterwards. */
  push(input: Uint8Array): void;
  /**
   * The next `length` decoded bytes, or undefined until that many are decoded. Throws
   * DAMAGED_PACK once the frame is known to be corrupt.
   */
  take(length: number): Uint8Array | undefined;
  /** Resolves once everything pushed is decoded, calling `onOutput` whenever output came meanwhile. */
  settle(onOutput: () => Promise<void>): Promise<void>;
  /** After the last push: `settle`, then checks the frame ended with exactly its promised content. */
  end(onOutput: () => Promise<void>): Promise<void>;
  /** Drops a frame that will not be finished. */
  close(): void;
}

/** Frames at least this big go to the worker: below, handing them over costs more than it saves. */
export const THREAD_MIN_CONTENT = 2 << 20;
/** Compressed bytes per message to the worker. */
const PUSH_PIECE = 64 << 10;

export function decodeFrame(expected: number, dictionary?: Uint8Array): StreamingFrame {
  return expected >= THREAD_MIN_CONTENT ? DecodeThread.get().start(expected, dictionary) : new InlineFrame(expected, dictionary);
}

class InlineFrame implements StreamingFrame {
  private readonly decoder: FrameDecoder;
  private taken = 0;
  constructor(expected: number, dictionary?: Uint8Array) {
    this.decoder = new FrameDecoder(expected, dictionary);
  }
  push(input: Uint8Array): void {
    this.decoder.push(input);
  }
  take(length: number): Uint8Array | undefined {
    const out = this.decoder.output;
    if (out.length - this.taken < length) return undefined;
    this.taken += length;
    return out.subarray(this.taken - length, this.taken);
  }
  async settle(): Promise<void> {}
  async end(): Promise<void> {
    this.decoder.end();
  }
  close(): void {}
}

export type ToDecoder =
  | { t: 'start'; id: number; expected: number; dictionary?: Uint8Array }
  | { t: 'push'; id: number; seq: number; bytes: Uint8Array }
  | { t: 'end'; id: number }
  | { t: 'drop'; id: number };

export type FromDecoder =
  /** What the push numbered `seq` decoded to (maybe nothing). */
  | { t: 'out'; id: number; seq: number; bytes: Uint8Array }
  | { t: 'ended'; id: number }
  | { t: 'failed'; id: number; message: string };

class ThreadFrame implements StreamingFrame {
  /** Decoded pieces not yet all taken; the first is taken up to `offset`. */
  private pieces: Uint8Array[] = [];
  private offset = 0;
  private available = 0;
  private pushed = 0;
  private answered = 0;
  /** Pieces of output received so far. */
  private outputs = 0;
  failure: PaqueteError | undefined;
  ended = false;
  /** Called on every message about this frame. */
  wake: (() => void) | undefined;

  constructor(
    private readonly thread: DecodeThread,
    readonly id: number,
  ) {}

  push(input: Uint8Array): void {
    this.check();
    // In small pieces, so output comes back steadily for the main thread to work on meanwhile
    // (a local remote hands over 1 MiB at a time: ~10 MB of text to decode at once).
    for (let at = 0; at < input.length; at += PUSH_PIECE) {
      this.thread.post({ t: 'push', id: this.id, seq: ++this.pushed, bytes: input.subarray(at, at + PUSH_PIECE) });
    }
  }

  receive(m: FromDecoder): void {
    if (m.t === 'out') {
      this.answered = m.seq;
      if (m.bytes.length) {
        this.pieces.push(m.bytes);
        this.available += m.bytes.length;
        this.outputs++;
      }
    } else if (m.t === 'ended') this.ended = true;
    else this.failure = new PaqueteError('DAMAGED_PACK', m.message);
    this.wake?.();
  }

  take(length: number): Uint8Array | undefined {
    this.check();
    if (this.available < length) return undefined;
    if (length === 0) return new Uint8Array(0);
    this.available -= length;
    const head = this.pieces[0];
    if (head.length - this.offset >= length) {
      const view = head.subarray(this.offset, this.offset + length);
      this.offset += length;
      if (this.offset === head.length) this.dropHead();
      return view;
    }
    // A chunk across pieces: the only bytes copied on this side.
    const out = Buffer.allocUnsafe(length);
    for (let at = 0; at < length; ) {
      const piece = this.pieces[0];
      const n = Math.min(length - at, piece.length - this.offset);
      out.set(piece.subarray(this.offset, this.offset + n), at);
      at += n;
      this.offset += n;
      if (this.offset === piece.length) this.dropHead();
    }
    return out;
  }

  private dropHead(): void {
    this.pieces.shift();
    this.offset = 0;
  }

  async settle(onOutput: () => Promise<void>): Promise<void> {
    await this.until(() => this.answered === this.pushed, onOutput);
  }

  async end(onOutput: () => Promise<void>): Promise<void> {
    this.check();
    this.thread.post({ t: 'end', id: this.id });
    await this.until(() => this.ended, onOutput);
  }

  /** Waits for `done`, handing output to `onOutput` as it comes. */
  private async until(done: () => boolean, onOutput: () => Promise<void>): Promise<void> {
    let seen = -1;
    for (;;) {
      // Checked again after every await: messages (output, the end, a failure) arrive during
      // onOutput too, and one that came then must not be waited for a second time.
      this.check();
      if (this.outputs > seen) {
        seen = this.outputs;
        await onOutput();
        continue;
      }
      if (done()) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  close(): void {
    if (!this.ended && !this.failure) this.thread.post({ t: 'drop', id: this.id });
    this.thread.forget(this.id);
  }
}

/** The process's decode worker, started on first use and not keeping the process alive while idle. */
class DecodeThread {
  private static shared: DecodeThread | undefined;
  private readonly worker: BackgroundWorker<ToDecoder, FromDecoder>;
  private readonly frames = new Map<number, ThreadFrame>();
  private nextId = 1;

  static get(): DecodeThread {
    if (!DecodeThread.shared || DecodeThread.shared.worker.broken) DecodeThread.shared = new DecodeThread();
    return DecodeThread.shared;
  }

  private constructor() {
    const receive = (m: FromDecoder) => {
      this.frames.get(m.id)?.receive(m);
      // Ended or failed: the worker is done with it, and so is the process unless told otherwise.
      if (m.t !== 'out') this.forget(m.id);
    };
    this.worker = new BackgroundWorker(new URL('./decode-worker.js', import.meta.url), receive, (e) => this.fail(e));
  }

  start(expected: number, dictionary?: Uint8Array): ThreadFrame {
    if (this.worker.broken) throw this.worker.broken;
    const id = this.nextId++;
    const frame = new ThreadFrame(this, id);
    if (this.frames.size === 0) this.worker.busy(true);
    this.frames.set(id, frame);
    // The dictionary copied: a view would take its whole buffer along.
    this.post({ t: 'start', id, expected, dictionary: dictionary && Uint8Array.from(dictionary) });
    return frame;
  }

  post(m: ToDecoder): void {
    if (m.t === 'push') {
      // A copy of its own, moved rather than cloned: a view would take its whole buffer along.
      const bytes = Buffer.allocUnsafeSlow(m.bytes.length);
      bytes.set(m.bytes);
      this.worker.post({ ...m, bytes }, [bytes.buffer]);
    } else this.worker.post(m);
  }

  forget(id: number): void {
    this.frames.delete(id);
    if (this.frames.size === 0) this.worker.busy(false);
  }

  private fail(e: Error): void {
    for (const frame of this.frames.values()) {
      frame.failure ??= new PaqueteError('IO', `decoding stopped: ${e.message}`);
      frame.wake?.();
    }
    this.frames.clear();
  }
}
