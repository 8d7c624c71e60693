import { createHash } from 'node:crypto';
import { PaqueteError } from '../errors.js';
import { requireFormat } from '../util/format-gate.js';
import { MAX_CHUNK, RECORD_HEADER_SIZE } from '../store/pack.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';

/**
 * The bundle: chunks for a friend, in one or more volume files (each below 4 GiB for FAT32
 * sticks). Every volume describes itself: which bundle it belongs to, that it is volume i of n,
 * what every volume of the bundle holds (so a missing one can be named with its size), and its
 * own table of contents. Every volume also carries the signed manifest and the snapshot indexes,
 * so any single volume can be checked and used alone.
 *
 * A volume file: a 44-byte prelude (magic, version, head length, SHA-256 of the head), the head
 * (the table of contents), then the items back to back in table order. The table comes first so
 * that a volume cut short still says what it should have held. Items are located by the table,
 * not by their own length fields, so one damaged record never hides the ones after it.
 *
 * Nothing in a bundle is a file name: snapshots are named by 32-byte hashes, chunks by 8-byte
 * ids, so there is nothing that could escape a directory. Layout in docs/FORMATS.md §Bundles.
 */
export const BUNDLE_MAGIC = Buffer.from('PQBN', 'ascii');
export const BUNDLE_VERSION = 1;
export const PRELUDE_SIZE = 44;
/** A head larger than this is refused: ~6 million chunk entries, far above a 4 GiB volume's. */
export const MAX_HEAD = 64 << 20;
export const MAX_MANIFEST = 16 << 20;
export const MAX_SNAPSHOT = 1 << 30;
export const MIN_RECORD = RECORD_HEADER_SIZE;
export const MAX_RECORD = RECORD_HEADER_SIZE + MAX_CHUNK + 1024;
/** The largest a FAT32 file may be; the default volume limit. */
export const FAT32_MAX_FILE = 2 ** 32 - 1;
/** The file name extension of volumes. */
export const BUNDLE_EXT = '.pqb';

export const enum ItemKind {
  Manifest = 1,
  Snapshot = 2,
  Chunk = 3,
}

export type BundleItem =
  | { kind: ItemKind.Manifest; length: number }
  | { kind: ItemKind.Snapshot; name: string; length: number }
  | { kind: ItemKind.Chunk; id: bigint; length: number };

/** What one volume of a bundle holds: chunk records, and bytes of items in all. */
export interface VolumeSummary {
  chunks: number;
  bytes: number;
}

export interface VolumeHead {
  /** 32 hex digits (16 random bytes), the same in every volume of a bundle. */
  bundleId: string;
  /** 1-based. */
  volume: number;
  volumes: number;
  /** The publisher's 32-byte Ed25519 key the bundle's manifest is signed with. */
  publisher: Uint8Array;
  /** The manifest's serial (also inside the signed manifest: this copy is for reports). */
  serial: number;
  /** Unix seconds when the bundle was written. */
  created: number;
  /** Hex name of the snapshot the bundle was made for. */
  target: string;
  /** One entry per volume of the bundle, the same in every volume. */
  summary: VolumeSummary[];
  /** This volume's contents, in the order the items follow the head. */
  items: BundleItem[];
}

/** The prelude and head of a volume: the bytes a volume file starts with. */
export function encodeVolumeHead(h: VolumeHead): Uint8Array {
  const w = new ByteWriter(256 + h.items.length * 12);
  w.bytes(Buffer.from(h.bundleId, 'hex'));
  w.varint(h.volume).varint(h.serial).varint(h.created);
  w.bytes(h.publisher);
  w.bytes(Buffer.from(h.target, 'hex'));
  w.varint(h.summary.length);
  for (const s of h.summary) w.varint(s.chunks).varint(s.bytes);
  w.varint(h.items.length);
  const id = Buffer.alloc(8);
  for (const it of h.items) {
    w.u8(it.kind);
    if (it.kind === ItemKind.Snapshot) w.bytes(Buffer.from(it.name, 'hex'));
    else if (it.kind === ItemKind.Chunk) {
      id.writeBigUInt64BE(it.id);
      w.bytes(id);
    }
    w.varint(it.length);
  }
  const head = w.finish();
  const prelude = Buffer.alloc(PRELUDE_SIZE);
  BUNDLE_MAGIC.copy(prelude, 0);
  prelude[4] = BUNDLE_VERSION;
  prelude.writeUInt32LE(head.length, 8);
  createHash('sha256').update(head).digest().copy(prelude, 12);
  return Buffer.concat([prelude, head]);
}

/** Checks a volume's first 44 bytes; returns how long its head is. */
export function decodePrelude(prelude: Uint8Array): number {
  if (prelude.length < 4 || !BUNDLE_MAGIC.equals(prelude.subarray(0, 4))) {
    throw new PaqueteError('BAD_FORMAT', 'not a paquete bundle volume (bad magic)');
  }
  if (prelude.length < PRELUDE_SIZE) throw new PaqueteError('BAD_FORMAT', `damaged bundle volume: cut short after ${prelude.length} bytes`);
  requireFormat('bundle volume', 'bundle', prelude[4], [BUNDLE_VERSION]);
  const headLength = Buffer.from(prelude.buffer, prelude.byteOffset, PRELUDE_SIZE).readUInt32LE(8);
  if (headLength > MAX_HEAD) throw new PaqueteError('BAD_FORMAT', `damaged bundle volume: head length ${headLength} is absurd`);
  return headLength;
}

/**
 * Decodes a volume's prelude and head from the start of its bytes (at least the prelude and the
 * head; the items may follow or not). Checks the head's SHA-256 before reading a field, then
 * every count, length and volume number.
 */
export function decodeVolumeHead(data: Uint8Array): { head: VolumeHead; dataStart: number } {
  const headLength = decodePrelude(data.subarray(0, PRELUDE_SIZE));
  if (data.length < PRELUDE_SIZE + headLength) {
    throw new PaqueteError('BAD_FORMAT', `damaged bundle volume: cut short inside its table of contents (${data.length} of ${PRELUDE_SIZE + headLength} bytes)`);
  }
  const bytes = data.subarray(PRELUDE_SIZE, PRELUDE_SIZE + headLength);
  const sha = createHash('sha256').update(bytes).digest();
  if (!sha.equals(data.subarray(12, 44))) {
    throw new PaqueteError('BAD_FORMAT', 'damaged bundle volume: its table of contents fails its checksum, so nothing in it can be located');
  }
  const r = new ByteReader(bytes, 'bundle volume head');
  const bundleId = Buffer.from(r.bytes(16)).toString('hex');
  const volume = r.varint();
  const serial = r.varint();
  const created = r.varint();
  const publisher = Buffer.from(r.bytes(32));
  const target = Buffer.from(r.bytes(32)).toString('hex');
  const volumes = r.count(2, 'volume');
  if (volumes < 1) r.fail('a bundle of no volumes');
  if (volume < 1 || volume > volumes) r.fail(`volume ${volume} of ${volumes}`);
  const summary: VolumeSummary[] = [];
  for (let i = 0; i < volumes; i++) summary.push({ chunks: r.varint(), bytes: r.varint() });
  const count = r.count(2, 'item');
  const items: BundleItem[] = new Array(count);
  const seen = new Set<string>();
  let chunks = 0;
  let total = 0;
  let manifests = 0;
  for (let i = 0; i < count; i++) {
    const kind = r.u8();
    let item: BundleItem;
    if (kind === ItemKind.Manifest) {
      item = { kind, length: r.varint() };
      if (++manifests > 1) r.fail('two manifests');
      if (item.length > MAX_MANIFEST) r.fail(`a manifest of ${item.length} bytes`);
    } else if (kind === ItemKind.Snapshot) {
      item = { kind, name: Buffer.from(r.bytes(32)).toString('hex'), length: r.varint() };
      if (item.length > MAX_SNAPSHOT) r.fail(`a snapshot index of ${item.length} bytes`);
      if (seen.has(item.name)) r.fail(`snapshot ${item.name.slice(0, 12)} listed twice`);
      seen.add(item.name);
    } else if (kind === ItemKind.Chunk) {
      const id = Buffer.from(r.bytes(8)).readBigUInt64BE(0);
      item = { kind, id, length: r.varint() };
      if (item.length < MIN_RECORD || item.length > MAX_RECORD) r.fail(`a chunk record of ${item.length} bytes`);
      const key = `c${id}`;
      if (seen.has(key)) r.fail(`chunk ${id.toString(16).padStart(16, '0')} listed twice`);
      seen.add(key);
      chunks++;
    } else {
      return r.fail(`unknown item kind ${kind}`);
    }
    total += item.length;
    items[i] = item;
  }
  r.end();
  const mine = summary[volume - 1];
  if (mine.chunks !== chunks || mine.bytes !== total) {
    r.fail(`the volume list says volume ${volume} holds ${mine.chunks} chunks in ${mine.bytes} bytes, its table ${chunks} in ${total}`);
  }
  return { head: { bundleId, volume, volumes, publisher, serial, created, target, summary, items }, dataStart: PRELUDE_SIZE + headLength };
}

/** Byte offsets of each item in the volume file, from where the items start. */
export function itemOffsets(head: VolumeHead, dataStart: number): number[] {
  const out: number[] = new Array(head.items.length);
  let pos = dataStart;
  head.items.forEach((it, i) => {
    out[i] = pos;
    pos += it.length;
  });
  return out;
}

/** Bytes one chunk item adds to a head (kind, id, length varint). */
export function chunkItemHeadSize(length: number): number {
  return 1 + 8 + varintSize(length);
}

export function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Whether two heads describe the same bundle (everything but the volume's own part). */
export function sameBundle(a: VolumeHead, b: VolumeHead): boolean {
  return (
    a.bundleId === b.bundleId &&
    a.volumes === b.volumes &&
    a.serial === b.serial &&
    a.created === b.created &&
    a.target === b.target &&
    Buffer.compare(a.publisher, b.publisher) === 0 &&
    a.summary.every((s, i) => s.chunks === b.summary[i].chunks && s.bytes === b.summary[i].bytes)
  );
}

/** Volume file names: `NAME.pqb` alone, `NAME-2of3.pqb` in a bundle of several. */
export function volumeFileName(base: string, volume: number, volumes: number): string {
  return volumes === 1 ? `${base}${BUNDLE_EXT}` : `${base}-${volume}of${volumes}${BUNDLE_EXT}`;
}
