/**
 * Recently decoded chunks, so a file assembled right after its chunks arrived does not decode
 * them a second time (inflate was half of a sync's CPU). Bounded by bytes; oldest out first.
 */
export class ChunkCache {
  private entries = new Map<bigint, Uint8Array>();
  private bytes = 0;

  constructor(private readonly limit = 64 << 20) {}

  put(id: bigint, raw: Uint8Array): void {
    if (raw.length > this.limit || this.entries.has(id)) return;
    this.entries.set(id, raw);
    this.bytes += raw.length;
    for (const [old, data] of this.entries) {
      if (this.bytes <= this.limit) break;
      this.entries.delete(old);
      this.bytes -= data.length;
    }
  }

  get(id: bigint): Uint8Array | undefined {
    return this.entries.get(id);
  }
}
