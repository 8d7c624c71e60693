/**
 * What cutting wheels at zip member boundaries saves: `node dist/bench/wheel-cuts.js [--max-mb 40] [--dir DIR…]`
 * (after `npx tsc -p tsconfig.json`).
 *
 * Corpus: real wheels from this machine's pip configuration (find-links and file:// index URLs
 * from `pip config list` and PIP_FIND_LINKS; PyPI itself is not reachable here), or the folders
 * given with --dir. Pairs: consecutive versions (PEP 440 order) of one project with the same kind
 * of build (pure Python, or the same Python tag).
 *
 * For each pair, the bytes an update from OLD to NEW costs with three cutting rules:
 *   cdc      plain FastCDC over the whole file (the default for any file)
 *   headers  FastCDC restarted at every member's local header (and the central directory)
 *   members  restarted at every local header AND every member's data start (paquete's rule)
 * cost = records of the distinct chunks of NEW that OLD lacks (each encoded as the publisher
 * does: deflated alone when that helps, + 17 B record header) + 12 B of index per chunk of NEW.
 */
import { readFileSync, statSync } from 'node:fs';
import { listWheels, wheelhouses } from './corpus.js';
import { chunkId, cutAll, DEFAULT_PARAMS, initHash } from '../src/chunk/index.js';
import { cutAllWithCuts } from '../src/chunk/forced.js';
import { encodeRecord } from '../src/store/pack.js';
import { compareVersions, parseVersion } from '../src/sources/pep440.js';
import { parseDistFileName } from '../src/sources/pypi.js';
import { dataOffset, readZipDirectory, zipFromBytes } from '../src/sources/wheel.js';

const INDEX_PER_CHUNK = 12;
const args = process.argv.slice(2);
const maxMb = Number(args[args.indexOf('--max-mb') + 1] ?? 0) || 40;
const dirsGiven = args.flatMap((a, i) => (a === '--dir' && args[i + 1] ? [args[i + 1]] : []));

type Rule = 'cdc' | 'headers' | 'members';

function chunksOf(data: Uint8Array, rule: Rule): Uint8Array[] {
  let ends: number[];
  if (rule === 'cdc') ends = cutAll(data, DEFAULT_PARAMS);
  else {
    const zip = zipFromBytes(data);
    const dir = readZipDirectory(zip);
    const cuts = [dir.directoryOffset];
    for (const e of dir.entries) {
      cuts.push(e.headerOffset);
      if (rule === 'members') cuts.push(dataOffset(zip, e));
    }
    ends = cutAllWithCuts(data, DEFAULT_PARAMS, cuts);
  }
  const out: Uint8Array[] = [];
  let start = 0;
  for (const end of ends) {
    out.push(data.subarray(start, end));
    start = end;
  }
  return out;
}

function updateCost(oldData: Uint8Array, newData: Uint8Array, rule: Rule): { cost: number; chunks: number; reusedRaw: number } {
  const have = new Set(chunksOf(oldData, rule).map(chunkId));
  const seen = new Set<bigint>();
  let cost = 0;
  let reusedRaw = 0;
  const chunks = chunksOf(newData, rule);
  for (const c of chunks) {
    const id = chunkId(c);
    if (have.has(id)) {
      reusedRaw += c.length;
      continue;
    }
    if (seen.has(id)) continue;
    seen.add(id);
    cost += encodeRecord(id, c).length;
  }
  return { cost: cost + INDEX_PER_CHUNK * chunks.length, chunks: chunks.length, reusedRaw };
}

const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);

async function main(): Promise<void> {
  await initHash();
  const houses = wheelhouses(dirsGiven);
  if (houses.length === 0) {
    console.log('no wheelhouse found (pip config list has no find-links or file:// index; give --dir DIR)');
    return;
  }
  const groups = new Map<string, { path: string; version: ReturnType<typeof parseVersion> & object; name: string }[]>();
  for (const path of houses.flatMap((h) => listWheels(h))) {
    if (statSync(path).size > maxMb * 1e6) continue;
    const d = parseDistFileName(path.slice(path.lastIndexOf('/') + 1));
    const v = d && parseVersion(d.version);
    if (!d || !v || !d.tags) continue;
    const build = d.tags.platform.includes('any') ? 'pure' : d.tags.python.join('.');
    const key = `${d.normalized} ${build}`;
    const list = groups.get(key) ?? [];
    if (!list.some((x) => compareVersions(x.version, v) === 0)) list.push({ path, version: v, name: d.normalized });
    groups.set(key, list);
  }
  const rows: string[][] = [];
  const totals = { pure: { new: 0, cdc: 0, headers: 0, members: 0 }, compiled: { new: 0, cdc: 0, headers: 0, members: 0 } };
  for (const [key, list] of [...groups].sort()) {
    if (list.length < 2) continue;
    list.sort((a, b) => compareVersions(a.version, b.version));
    for (let i = 1; i < list.length; i++) {
      const a = readFileSync(list[i - 1].path);
      const b = readFileSync(list[i].path);
      let r: Record<Rule, ReturnType<typeof updateCost>>;
      try {
        r = { cdc: updateCost(a, b, 'cdc'), headers: updateCost(a, b, 'headers'), members: updateCost(a, b, 'members') };
      } catch (e) {
        rows.push([`${list[i].name} ${list[i - 1].version.text} → ${list[i].version.text}`, fmt(b.length), `error: ${(e as Error).message}`]);
        continue;
      }
      const t = key.endsWith(' pure') ? totals.pure : totals.compiled;
      t.new += b.length;
      t.cdc += r.cdc.cost;
      t.headers += r.headers.cost;
      t.members += r.members.cost;
      rows.push([
        `${list[i].name} ${list[i - 1].version.text} → ${list[i].version.text}${key.endsWith(' pure') ? '' : ' (compiled)'}`,
        fmt(b.length),
        `${fmt(r.cdc.cost)} (${((100 * r.cdc.reusedRaw) / b.length).toFixed(0)}%)`,
        `${fmt(r.headers.cost)} (${((100 * r.headers.reusedRaw) / b.length).toFixed(0)}%)`,
        `${fmt(r.members.cost)} (${((100 * r.members.reusedRaw) / b.length).toFixed(0)}%)`,
        fmt(r.cdc.cost - r.members.cost),
        `${r.cdc.chunks} / ${r.members.chunks}`,
      ]);
    }
  }
  const head = ['update (real wheels)', 'size of new', 'cdc (reused)', 'headers (reused)', 'members (reused)', 'saved by members', 'chunks cdc / members'];
  const all = [head, ...rows];
  const widths = head.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => '| ' + head.map((_, c) => (r[c] ?? '').padEnd(widths[c])).join(' | ') + ' |';
  console.log(`wheelhouses: ${houses.join(', ')}; files up to ${maxMb} MB; cost = new chunk records + ${INDEX_PER_CHUNK} B index per chunk\n`);
  console.log(line(head));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(r));
  for (const [kind, t] of Object.entries(totals)) {
    if (!t.new) continue;
    console.log(
      `\n${kind}: new wheels ${fmt(t.new)}; update cost cdc ${fmt(t.cdc)}, headers ${fmt(t.headers)}, members ${fmt(t.members)} ` +
        `(members saves ${fmt(t.cdc - t.members)}, ${((100 * (t.cdc - t.members)) / t.cdc).toFixed(1)}% of cdc)`,
    );
  }
}

await main();
