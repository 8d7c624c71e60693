/**
 * Typed errors with stable codes. The CLI maps each to one line and one exit code, so no stack
 * trace reaches a user. Exit codes are the contract in DESIGN.md.
 */
export const EXIT = { ok: 0, error: 1, usage: 2, budget: 3, network: 4, interrupted: 130 } as const;
/** 130 is SIGINT's (128 + 2), the shell's convention; SIGTERM gives 143 (exitForSignal). */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT] | 143;

export type ErrorCode =
  | 'USAGE'
  | 'BAD_SOURCE'
  | 'NOT_A_REMOTE'
  | 'BAD_SIGNATURE'
  | 'UNTRUSTED_KEY'
  | 'ROLLBACK'
  /** The newest manifest reachable is past its expiry (a frozen mirror, or a publisher who stopped signing). */
  | 'EXPIRED'
  | 'BAD_FORMAT'
  | 'UNSAFE_PATH'
  | 'DAMAGED_PACK'
  | 'DAMAGED_STORE'
  | 'NOT_A_WORKDIR'
  | 'ALREADY_INITIALIZED'
  /** init into a directory that already has files, without --keep-existing. */
  | 'NOT_EMPTY'
  | 'LOCKED'
  | 'NETWORK'
  | 'CAPTIVE_PORTAL'
  | 'REMOTE_CHANGED'
  | 'BUDGET'
  | 'DISK_FULL'
  | 'INTERRUPTED'
  | 'IO'
  /** A failure paquete did not foresee (a bug): reported in one line, the stack with PAQUETE_DEBUG=1. */
  | 'INTERNAL'
  /** A command that needs a snapshot (seed, export) in a directory that has none yet. */
  | 'NO_SNAPSHOT';

const exitFor: Record<ErrorCode, ExitCode> = {
  USAGE: EXIT.usage,
  BAD_SOURCE: EXIT.usage,
  NOT_A_REMOTE: EXIT.usage,
  BAD_SIGNATURE: EXIT.error,
  UNTRUSTED_KEY: EXIT.error,
  ROLLBACK: EXIT.error,
  EXPIRED: EXIT.error,
  BAD_FORMAT: EXIT.usage,
  UNSAFE_PATH: EXIT.usage,
  DAMAGED_PACK: EXIT.error,
  DAMAGED_STORE: EXIT.error,
  NOT_A_WORKDIR: EXIT.usage,
  ALREADY_INITIALIZED: EXIT.usage,
  NOT_EMPTY: EXIT.usage,
  LOCKED: EXIT.error,
  NETWORK: EXIT.network,
  CAPTIVE_PORTAL: EXIT.network,
  REMOTE_CHANGED: EXIT.network,
  BUDGET: EXIT.budget,
  DISK_FULL: EXIT.error,
  INTERRUPTED: EXIT.interrupted,
  IO: EXIT.error,
  INTERNAL: EXIT.error,
  NO_SNAPSHOT: EXIT.error,
};

export class PaqueteError extends Error {
  readonly code: ErrorCode;
  /** What the user can do next, printed on a second line when present. */
  readonly hint?: string;
  constructor(code: ErrorCode, message: string, hint?: string) {
    super(message);
    this.name = 'PaqueteError';
    this.code = code;
    this.hint = hint;
  }
  get exitCode(): ExitCode {
    return exitFor[this.code];
  }
}

export const isPaqueteError = (e: unknown): e is PaqueteError => e instanceof PaqueteError;
