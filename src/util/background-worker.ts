import { Transferable, Worker } from 'node:worker_threads';

/**
 * A worker thread that keeps the process alive only while it has work (`busy`), and reports
 * its failure once: an uncaught error in it, or its exit, fails whatever was under way.
 */
export class BackgroundWorker<In, Out> {
  private readonly worker: Worker;
  broken: Error | undefined;

  constructor(script: URL, onMessage: (m: Out) => void, onFail: (e: Error) => void) {
    this.worker = new Worker(script);
    this.worker.unref();
    this.worker.on('message', onMessage);
    const fail = (e: Error) => {
      if (this.broken) return;
      this.broken = e;
      onFail(e);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the ${script.pathname.split('/').pop()} thread stopped (exit code ${code})`)));
  }

  post(m: In, transfer?: Transferable[]): void {
    this.worker.postMessage(m, transfer);
  }

  /** Stops the thread (its exit then counts as the failure of anything still under way). */
  terminate(): Promise<number> {
    this.broken ??= new Error('the thread was stopped');
    return this.worker.terminate();
  }

  /** Whether work is under way: only then does the worker keep the process alive. */
  busy(yes: boolean): void {
    if (yes) this.worker.ref();
    else this.worker.unref();
  }
}
