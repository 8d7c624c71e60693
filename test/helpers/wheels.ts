/**
 * Builds real wheels (and sdists) in a test, with no build tools: a zip with deflated members,
 * a correct RECORD, METADATA and WHEEL, as pip expects them.
 *
 *   const path = writeWheel(dir, { name: 'alpha', version: '1.0', requires: ['beta>=1.0'],
 *                                  modules: { 'alpha/__init__.py': 'VERSION = "1.0"\n' } });
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';

export interface WheelSpec {
  name: string;
  version: string;
  /** Requires-Dist lines. */
  requires?: string[];
  requiresPython?: string;
  /** path inside the wheel → content. */
  modules: Record<string, string | Uint8Array>;
  /** Default py3-none-any. */
  tag?: string;
  /** DOS timestamp of every member; builds at different times differ here. Default 2024-01-01. */
  date?: Date;
}

export const wheelFileName = (s: WheelSpec) => `${s.name.replace(/[-.]+/g, '_')}-${s.version}-${s.tag ?? 'py3-none-any'}.whl`;

export function metadataText(s: Pick<WheelSpec, 'name' | 'version' | 'requires' | 'requiresPython'>, version = '2.1'): string {
  return [
    `Metadata-Version: ${version}`,
    `Name: ${s.name}`,
    `Version: ${s.version}`,
    `Summary: ${s.name}, a test package`,
    ...(s.requiresPython ? [`Requires-Python: ${s.requiresPython}`] : []),
    ...(s.requires ?? []).map((r) => `Requires-Dist: ${r}`),
    '',
    `The ${s.name} package.`,
    '',
  ].join('\n');
}

/** The wheel's bytes. */
export function buildWheel(s: WheelSpec): Buffer {
  const distInfo = `${s.name.replace(/[-.]+/g, '_')}-${s.version}.dist-info`;
  const files: [string, Buffer][] = Object.entries(s.modules).map(([p, c]) => [p, Buffer.from(c)]);
  files.push([`${distInfo}/METADATA`, Buffer.from(metadataText(s))]);
  files.push([`${distInfo}/WHEEL`, Buffer.from(`Wheel-Version: 1.0\nGenerator: paquete-test\nRoot-Is-Purelib: true\nTag: ${s.tag ?? 'py3-none-any'}\n\n`)]);
  const record = files.map(([p, c]) => `${p},sha256=${createHash('sha256').update(c).digest('base64url')},${c.length}`);
  record.push(`${distInfo}/RECORD,,`);
  files.push([`${distInfo}/RECORD`, Buffer.from(record.join('\n') + '\n')]);
  return zip(files, s.date ?? new Date(Date.UTC(2024, 0, 1)));
}

export function writeWheel(dir: string, s: WheelSpec): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, wheelFileName(s));
  writeFileSync(path, buildWheel(s));
  return path;
}

/**
 * A minimal zip: every member deflated (with Node's zlib unless `packers` names another deflate,
 * or 'store' for a stored member), no data descriptors, no comment.
 */
export function zip(files: [string, Buffer][], date: Date, packers: Record<string, ((b: Buffer) => Uint8Array) | 'store'> = {}): Buffer {
  const dosTime = (date.getUTCHours() << 11) | (date.getUTCMinutes() << 5) | (date.getUTCSeconds() >> 1);
  const dosDate = ((date.getUTCFullYear() - 1980) << 9) | ((date.getUTCMonth() + 1) << 5) | date.getUTCDate();
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = Buffer.from(name);
    const packer = packers[name] ?? deflateRawSync;
    const method = packer === 'store' ? 0 : 8;
    const packed = packer === 'store' ? data : Buffer.from(packer(data));
    const crc = crc32(data) >>> 0;
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(0x0800, 6); // UTF-8 names
    h.writeUInt16LE(method, 8);
    h.writeUInt16LE(dosTime, 10);
    h.writeUInt16LE(dosDate, 12);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(packed.length, 18);
    h.writeUInt32LE(data.length, 22);
    h.writeUInt16LE(nameBytes.length, 26);
    locals.push(h, nameBytes, packed);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(0x0314, 4); // made by: unix, 2.0
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt16LE(dosTime, 12);
    c.writeUInt16LE(dosDate, 14);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(packed.length, 20);
    c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(nameBytes.length, 28);
    c.writeUInt32LE((0o100644 << 16) >>> 0, 38);
    c.writeUInt32LE(offset, 42);
    centrals.push(c, nameBytes);
    offset += 30 + nameBytes.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A .tar.gz sdist holding NAME-VERSION/PKG-INFO and NAME-VERSION/setup.py (ustar). */
export function writeSdist(dir: string, s: Pick<WheelSpec, 'name' | 'version' | 'requires' | 'requiresPython'>): string {
  mkdirSync(dir, { recursive: true });
  const top = `${s.name}-${s.version}`;
  const entries: [string, Buffer][] = [
    [`${top}/PKG-INFO`, Buffer.from(metadataText(s, '2.2'))],
    [`${top}/setup.py`, Buffer.from('from setuptools import setup\nsetup()\n')],
  ];
  const blocks: Buffer[] = [];
  for (const [name, data] of entries) {
    const h = Buffer.alloc(512);
    h.write(name, 0, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const path = join(dir, `${top}.tar.gz`);
  writeFileSync(path, gzipSync(Buffer.concat(blocks)));
  return path;
}
