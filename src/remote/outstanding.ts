/**
 * How many body bytes one request may leave outstanding: a module of its own, so that a sync
 * that never speaks HTTP (a directory, a stick) does not load got and http2-wrapper to read the
 * piece rules (src/sync/kill-risk.ts did: 0.24 s of CPU on every command that syncs).
 */

/**
 * How many body bytes one ranged request may ask for: what a kill -9 can lose to the network.
 * A kill loses what the server sent for the request under way that the process never landed,
 * and the server cannot send what was not asked for, however long a loaded machine takes to
 * tear the process (and its sockets) down. Measured (docs/RELIABILITY.md): at the instant of a
 * kill the process has landed everything the relay counted (its socket's unread queue and the
 * relay's unsent queue are empty); the whole loss is what the relay goes on sending in the
 * 46-130 ms the dying process keeps its sockets open at load ~14 (49-115 kB at 700 kB/s with
 * 4 MiB requests). Node gives no way to cap a TCP socket's receive window (SO_RCVBUF), and a
 * relay that counts what it writes (a hotspot's meter) would count its own send buffer anyway:
 * the request size is the lever that bounds every meter.
 *
 * A piece is `floor` bytes until the remote has handed `floor * share` bytes of ranges to its
 * sinks in this process, then `share`-th of what it has (so a kill loses at most `floor` or
 * 1/`share` of what the sync received, whichever is more), up to OUTSTANDING_MAX. The price is
 * one request head per piece (493 B on nginx), which the growth keeps to a few hundred heads a
 * session however big: a request head in proportion to what a kill could cost.
 */
export interface PieceRule {
  /** Body bytes of a piece while little has come. */
  floor: number;
  /** A piece is at most 1/share of the body bytes received so far (Infinity: always `floor`). */
  share: number;
}

/** The largest piece: one request head per 4 MiB is 0.01%. */
export const OUTSTANDING_MAX = 4 << 20;

/** A sync after one that ended in order: 32 KiB, growing to 1/64 of what came (a kill then costs at most 1.6% + 32 KiB). */
export const PIECES_CLEAN: PieceRule = { floor: 32 << 10, share: 64 };

/**
 * A sync whose predecessor on the working directory died (src/sync/kill-risk.ts): 16 KiB, and
 * 1/256 of what came past 4 MiB. Measured in the kill loop of park.test (16 KiB pieces): a kill
 * lost 0-17 kB, mostly nothing.
 */
export const PIECES_AFTER_KILL: PieceRule = { floor: 16 << 10, share: 256 };

/** The body bytes of the next piece of a rule, after `received` bytes of ranges came. */
export function pieceSize(rule: PieceRule, received: number): number {
  const grown = rule.share === Infinity ? 0 : Math.floor(received / rule.share);
  return Math.max(1, Math.min(Math.max(rule.floor, grown), Math.max(rule.floor, OUTSTANDING_MAX)));
}

/**
 * Requests `body` bytes of ranges take under `rule` after `received` came, and the body of the
 * largest of them: an upper bound, as pieces only grow with what comes meanwhile.
 */
export function piecesFor(rule: PieceRule, received: number, body: number): { count: number; largest: number } {
  let count = 0;
  let largest = 0;
  let at = received;
  let left = body;
  while (left > 0) {
    const p = pieceSize(rule, at);
    largest = Math.max(largest, Math.min(p, left));
    // The size holds while the floor or the cap does: count those pieces at once.
    const steady = rule.share === Infinity || p >= OUTSTANDING_MAX || at + p <= rule.floor * rule.share;
    const span = steady ? Math.min(left, rule.share === Infinity || p >= OUTSTANDING_MAX ? left : rule.floor * rule.share - at) : Math.min(left, p);
    const k = Math.max(1, Math.ceil(span / p));
    count += k;
    at += Math.min(left, k * p);
    left -= Math.min(left, k * p);
  }
  return { count: Math.max(1, count), largest: body === 0 ? pieceSize(rule, at) : largest };
}
