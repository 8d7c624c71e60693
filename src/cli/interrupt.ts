import { constants } from 'node:os';

/**
 * Ctrl-C (SIGINT) and SIGTERM for the whole CLI. A command that can stop cleanly (sync: keep
 * every chunk received, place every finished file; serve: close its sockets) takes the signal
 * with `interruptSignal()` and winds down when it aborts; the process then exits 128 + the
 * signal's number (130, 143), the shell's convention, so a script can tell "interrupted" from
 * "failed". A command that did not take it, or a second Ctrl-C while winding down, ends at once
 * through `onForced`: every command's on-disk state is kill-safe (docs/RELIABILITY.md), so this
 * only skips the tidy-up.
 */
const controller = new AbortController();
let received: NodeJS.Signals | undefined;
let claimed = false;

/** The signal a command stops on; taking it means the command winds down by itself. */
export function interruptSignal(): AbortSignal {
  claimed = true;
  return controller.signal;
}

/** The signal that arrived, if one did. */
export const interruptedBy = (): NodeJS.Signals | undefined => received;

export const exitForSignal = (sig: NodeJS.Signals): number => 128 + (constants.signals[sig] ?? 0);

export function installInterrupts(onForced: (sig: NodeJS.Signals) => void): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      const again = received !== undefined;
      received ??= sig;
      if (again || !claimed) {
        onForced(sig);
        process.exit(exitForSignal(sig));
      }
      controller.abort();
    });
  }
}
