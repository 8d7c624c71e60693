/**
 * A set of 8-byte chunk ids in one typed array: open addressing on the id's low 32 bits (ids are
 * xxh64, so those bits are already uniform), linear probing, at most 2/3 full: about 12 bytes a
 * held id where a Set<bigint> takes ~60 and a BigInt per lookup. What the store answers "which
 * of these 10M chunks do you hold" with, as a bitmap over a list of ids.
 *
 * An id is two 32-bit words (high, low), as a snapshot's chunk table keeps them (idWords). The all-zero id cannot mark an
 * empty slot and is kept aside.
 */
export class IdSet {
  private slots: Uint32Array;
  private mask: number;
  private count = 0;
  private zero = false;

  constructor(expected = 1024) {
    let capacity = 1024;
    while (capacity * 2 < expected * 3) capacity *= 2;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count + (this.zero ? 1 : 0);
  }

  /** Its state, as src/store/held-file.ts writes it: the slot array itself, not a copy. */
  state(): { slots: Uint32Array; count: number; zero: boolean } {
    return { slots: this.slots, count: this.count, zero: this.zero };
  }

  /** A set of that state (slots a power of two of pairs, as state() gave them). */
  static ofState(slots: Uint32Array, count: number, zero: boolean): IdSet {
    const set = new IdSet(1);
    set.slots = slots;
    set.mask = slots.length / 2 - 1;
    set.count = count;
    set.zero = zero;
    return set;
  }

  add(hi: number, lo: number): void {
    if (hi === 0 && lo === 0) {
      this.zero = true;
      return;
    }
    if ((this.count + 1) * 3 > (this.mask + 1) * 2) this.grow();
    if (this.insert(this.slots, this.mask, hi, lo)) this.count++;
  }

  addId(id: bigint): void {
    this.add(Number(id >> 32n), Number(id & 0xffffffffn));
  }

  has(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) return this.zero;
    const slots = this.slots;
    for (let at = lo & this.mask; ; at = (at + 1) & this.mask) {
      const h = slots[2 * at];
      const l = slots[2 * at + 1];
      if (h === hi && l === lo) return true;
      if (h === 0 && l === 0) return false;
    }
  }

  hasId(id: bigint): boolean {
    return this.has(Number(id >> 32n), Number(id & 0xffffffffn));
  }

  /** Which of the ids (word pairs, high then low) are in the set: 1 at each such index. */
  heldIn(idWords: Uint32Array, into: Uint8Array = new Uint8Array(idWords.length / 2)): Uint8Array {
    if (this.size === 0) return into;
    for (let i = 0; i < into.length; i++) if (this.has(idWords[2 * i], idWords[2 * i + 1])) into[i] = 1;
    return into;
  }

  /** Places an id; false when it was there already. */
  private insert(slots: Uint32Array, mask: number, hi: number, lo: number): boolean {
    for (let at = lo & mask; ; at = (at + 1) & mask) {
      const h = slots[2 * at];
      const l = slots[2 * at + 1];
      if (h === hi && l === lo) return false;
      if (h === 0 && l === 0) {
        slots[2 * at] = hi;
        slots[2 * at + 1] = lo;
        return true;
      }
    }
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    const slots = new Uint32Array(capacity * 2);
    const mask = capacity - 1;
    for (let at = 0; at < old.length; at += 2) if (old[at] !== 0 || old[at + 1] !== 0) this.insert(slots, mask, old[at], old[at + 1]);
    this.slots = slots;
    this.mask = mask;
  }
}
