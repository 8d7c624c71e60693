/**
 * The session's wire budget: the one owner of `--budget`. Built once per sync and handed to every
 * remote; the remote layer reserves from it before each exchange it starts (every request, every
 * retry, every redirect hop) the most that exchange may put on the wire, request head + response
 * head + the body it asked for, and settles the reservation afterwards with the socket's own
 * count. Nothing reaches the network without a reservation, so the paid total cannot pass the
 * limit whatever the link does: a cut, a retry, a server sending more than asked (hung up on at
 * the reservation, see PUSH_ALLOWANCE).
 *
 * Two sums are kept: `spent`, the bytes that crossed our sockets (what nginx's access log counts
 * for an honest server, to the byte), and `committed`, what the limit is checked against: spent,
 * plus what open reservations may still take, plus an allowance for every answer we hung up on
 * while the server still had bytes to send (it counts what it pushed into the connection before
 * our hang-up reached it; we never read those bytes).
 */
import { PaqueteError } from '../errors.js';

/**
 * What a server may push past the byte where we hang up: a receive window (Linux starts sockets
 * at 128 KiB, tcp_rmem) plus the sender's own buffer. Reserved on top of the body for a request
 * whose answer we expect to cut short (a server that ignores Range), and charged for every answer
 * we hang up on with more announced. On a real park link the bytes in flight are one
 * bandwidth-delay product, far less; on loopback a sender's kernel takes megabytes at once.
 */
export const PUSH_ALLOWANCE = 256 << 10;

export const BUDGET_HINT = 'everything fetched is kept; run paquete sync again with more budget to go on';

/** One exchange's claim on the budget, from before its request is written until it is over. */
export class Hold {
  private done = false;
  /** Bytes this exchange has put on the wire so far (the socket's count); set by the remote. */
  live: () => number = () => 0;

  constructor(
    private readonly budget: WireBudget,
    /** The most this exchange may put on the wire. */
    readonly amount: number,
  ) {}

  /** Bytes of the reservation not yet on the wire: where the remote hangs up. */
  get room(): number {
    return this.amount - this.live();
  }

  /**
   * The exchange is over: `actual` bytes crossed our socket, and the server may have pushed up
   * to `pushed` more that we never read (we hung up). Idempotent.
   */
  settle(actual: number, pushed = 0): void {
    if (this.done) return;
    this.done = true;
    this.budget.settled(this, actual, pushed);
  }
}

export class WireBudget {
  private spentBytes = 0;
  private allowances = 0;
  private readonly open = new Set<Hold>();

  /** Wire bytes this budget allows; Infinity for none. */
  constructor(readonly limit = Infinity) {
    if (!(limit >= 0)) throw new PaqueteError('USAGE', `a budget must be a number of bytes, not ${limit}`);
  }

  get limited(): boolean {
    return this.limit !== Infinity;
  }

  /** Bytes on our sockets so far, finished and running exchanges both. */
  get spent(): number {
    let n = this.spentBytes;
    for (const h of this.open) n += h.live();
    return n;
  }

  /** What the limit is checked against: spent, what open holds may still take, allowances. */
  get committed(): number {
    let n = this.spentBytes + this.allowances;
    for (const h of this.open) n += Math.max(h.amount, h.live());
    return n;
  }

  /** Bytes a new reservation may take. */
  get left(): number {
    return Math.max(0, this.limit - this.committed);
  }

  /** Fails with BUDGET, before a byte is spent, when `bytes` more cannot be covered. */
  ensure(bytes: number, what: string): void {
    if (bytes > this.left) throw this.refusal(bytes, what);
  }

  /** Claim `bytes` for one exchange (BUDGET when they do not fit). */
  reserve(bytes: number, what: string): Hold {
    const amount = Math.max(0, Math.ceil(bytes));
    this.ensure(amount, what);
    const h = new Hold(this, amount);
    this.open.add(h);
    return h;
  }

  refusal(bytes: number, what: string): PaqueteError {
    const spent = this.spent;
    return new PaqueteError(
      'BUDGET',
      `the budget (${this.limit} bytes, ${spent} spent) does not cover ${what}: ${Math.ceil(bytes)} bytes on the wire, ${this.left} left`,
      BUDGET_HINT,
    );
  }

  /** @internal Hold.settle's other half. */
  settled(h: Hold, actual: number, pushed: number): void {
    if (!this.open.delete(h)) return;
    this.spentBytes += Math.max(0, actual);
    this.allowances += Math.max(0, pushed);
  }
}
