import { ByteReader, ByteWriter } from '../util/bytes.js';
import { FRAMES_HEADER_SIZE, packHead, readYields, unpackHead, writeYields } from './update.js';

/**
 * An offer: the update to the newest snapshot N keyed by content, not by snapshot (docs/
 * DESIGN-REMOTE-V3.md decision 3). Its frames are compressed against whole old file contents
 * named by their SHA-256, so any client holding those contents can decode them, whatever
 * snapshot it came from. The head is an update head (`updates/<sha256>.upd`, magic PQUP) of
 * version 3, so a reader of versions 1-2 refuses it by its version ("upgrade paquete") instead of
 * reading content indices as base file indices. Its frames file is an ordinary PQFR file.
 * Layout in docs/FORMATS.md §Offer.
 */
export const OFFER_VERSION = 3;

/** An old file content a frame's dictionary is made of: named by SHA-256, with its size. */
export interface BaseContent {
  sha256: string;
  size: number;
}

/** Bytes [start, start+length) of one base content (an index into OfferHead.contents). */
export interface ContentRange {
  content: number;
  start: number;
  length: number;
}

export interface OfferFrame {
  /**
   * Whose chunks `yields` indexes: 0, N's; w + 1, waypoint w's (an earlier snapshot: the frame
   * rebuilds its version of a file from an older content, the first of two hops).
   */
  target: number;
  /** Byte offset of the zstd frame in the frames file. */
  offset: number;
  length: number;
  /** Indices into N's chunk table: the frame's content is their raw bytes end to end. */
  yields: number[];
  /** The dictionary, in order; empty for a frame against nothing. */
  bases: ContentRange[];
}

export interface OfferHead {
  /** Name of N's .snap. */
  target: string;
  framesFile: string;
  framesSize: number;
  contents: BaseContent[];
  /** Names of the earlier snapshots waypoint frames yield chunks of. */
  waypoints: string[];
  frames: OfferFrame[];
}

export function encodeOfferHead(o: OfferHead): Uint8Array {
  const w = new ByteWriter(1 << 16);
  w.bytes(Buffer.from(o.target, 'hex'));
  w.bytes(Buffer.from(o.framesFile, 'hex')).varint(o.framesSize);
  w.varint(o.contents.length);
  for (const c of o.contents) w.bytes(Buffer.from(c.sha256, 'hex')).varint(c.size);
  w.varint(o.waypoints.length);
  for (const name of o.waypoints) w.bytes(Buffer.from(name, 'hex'));
  w.varint(o.frames.length);
  let expected = FRAMES_HEADER_SIZE;
  for (const f of o.frames) {
    if (f.offset !== expected) throw new Error('frames must lie back to back in table order');
    w.varint(f.target).varint(f.length);
    writeYields(w, f.yields);
    w.varint(f.bases.length);
    for (const b of f.bases) {
      const size = o.contents[b.content].size;
      // Most bases are a whole content: start 0 and length 0 ("to its end") cost two bytes.
      w.varint(b.content).varint(b.start).varint(b.start + b.length === size ? 0 : b.length);
    }
    expected += f.length;
  }
  return packHead(OFFER_VERSION, w.finish());
}

/** Decodes an offer head; every range is checked against its content's size (a head is input). */
export function decodeOfferHead(data: Uint8Array): OfferHead {
  const what = 'offer head';
  const r = new ByteReader(unpackHead(data, what, [OFFER_VERSION]), what);
  const target = Buffer.from(r.bytes(32)).toString('hex');
  const framesFile = Buffer.from(r.bytes(32)).toString('hex');
  const framesSize = r.varint();
  const contents: BaseContent[] = new Array(r.count(33, 'base content'));
  for (let k = 0; k < contents.length; k++) contents[k] = { sha256: Buffer.from(r.bytes(32)).toString('hex'), size: r.varint() };
  const waypoints: string[] = new Array(r.count(32, 'waypoint'));
  for (let k = 0; k < waypoints.length; k++) waypoints[k] = Buffer.from(r.bytes(32)).toString('hex');
  const frames: OfferFrame[] = [];
  let offset = FRAMES_HEADER_SIZE;
  for (let n = r.count(4, 'frame'); n > 0; n--) {
    const into = r.varint();
    if (into > waypoints.length) r.fail(`a frame names waypoint ${into - 1} of ${waypoints.length}`);
    const length = r.varint();
    const yields = readYields(r);
    const bases: ContentRange[] = new Array(r.count(3, 'base range'));
    for (let j = 0; j < bases.length; j++) {
      const content = r.varint();
      const start = r.varint();
      const given = r.varint();
      const c = contents[content];
      if (!c) r.fail(`a frame names base content ${content} of ${contents.length}`);
      const length = given === 0 ? c.size - start : given;
      if (length <= 0 || start + length > c.size) r.fail(`a frame names bytes ${start}+${given} of a ${c.size}-byte content`);
      bases[j] = { content, start, length };
    }
    frames.push({ target: into, offset, length, yields, bases });
    offset += length;
  }
  if (offset > framesSize) r.fail(`frames end at ${offset}, past the frames file's ${framesSize} bytes`);
  r.end();
  return { target, framesFile, framesSize, contents, waypoints, frames };
}
