import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeOfferHead, OFFER_VERSION } from '../delta/offer.js';
import { decodeUpdateHead } from '../delta/update.js';
import { ManifestBody, ManifestSnapshot } from '../snapshot/manifest.js';
import { writeFileAtomic } from '../util/fsx.js';
import { rootDeltaPath } from '../snapshot/shards.js';

/**
 * What a remote keeps of old updates (docs/DESIGN-REMOTE-V3.md decision 5). Clients use the
 * newest snapshot's updates and offer, and the previous snapshot's stream from nothing (a card
 * cut inside it resumes it, src/sync/base-stream.ts); every other update is dead weight: each
 * publish used to keep a whole compressed copy (vite, eight releases: 6.3 MB of remote for 3.7 MB
 * of trees). Files no entry names any more are deleted once they have gone unnamed for a grace
 * period, so a client that read an older manifest and is mid-download still finds them.
 */

/** Clients mid-download of a superseded manifest's updates: a week to finish. */
export const DEFAULT_PRUNE_AFTER_MS = 7 * 24 * 3600 * 1000;

/** When each unnamed update or frames file was first seen unnamed (remote root, publisher's own). */
export const PRUNE_RECORD = '.paquete-prune.json';

/**
 * The entries before the new one as the next manifest lists them: the previous newest keeps its
 * update from nothing when `keepStream` (see streamKept), older ones no updates (their indexes
 * stay: the offer reads them).
 */
export function retainedEntries(earlier: ManifestSnapshot[], keepStream = true): ManifestSnapshot[] {
  return earlier.map((e, k) => {
    const { updates, offer: _offer, layers: _layers, ...rest } = e;
    // A root delta serves a client syncing to that snapshot: only the newest one's is read.
    if (rest.root?.delta) {
      const { delta: _delta, ...root } = rest.root;
      rest.root = root;
    }
    const solid = keepStream && k === earlier.length - 1 ? updates?.filter((u) => u.from === '') : undefined;
    return solid?.length ? { ...rest, updates: solid } : rest;
  });
}

/** The frames files a head names: its one frames file, or a segmented stream's segments. */
function framesFilesOf(remoteDir: string, head: string): string[] {
  const bytes = readFileSync(join(remoteDir, 'updates', `${head}.upd`));
  if (bytes[4] === OFFER_VERSION) return [decodeOfferHead(bytes).framesFile];
  const h = decodeUpdateHead(bytes);
  return h.segments ? h.segments.map((s) => s.name) : [h.framesFile];
}

/**
 * Whether the previous snapshot's stream from nothing stays named beside the new snapshot's
 * updates. A card cut inside it resumes it after the release (src/sync/base-stream.ts), but each
 * publish used to keep it whole: updates were 2.9x one compressed copy of vite 8.4.0. Its
 * segments that the new stream keeps by name cost nothing more; the rest is kept only when it
 * fits in what the new snapshot's updates leave of twice its stream (`stream`: the new stream's
 * head; `room`: its bytes less the offer's and the deltas'), so updates on disk stay within 2x (issue 14 item 4). A
 * segment the new stream keeps resumes in it anyway (its `.part` is named by its file).
 */
export function streamKept(remoteDir: string, previous: ManifestSnapshot | undefined, stream: string | undefined, room: number): boolean {
  const ref = previous?.updates?.find((u) => u.from === '');
  if (!ref) return false;
  try {
    const shared = new Set(stream ? framesFilesOf(remoteDir, stream) : []);
    const extra = framesFilesOf(remoteDir, ref.name)
      .filter((f) => !shared.has(f))
      .reduce((n, f) => n + statSync(join(remoteDir, 'frames', `${f}.frames`)).size, ref.size);
    return extra <= room;
  } catch {
    return false;
  }
}

/** Heads, frames files and root deltas the manifest names (a head names its frames files). */
function namedFiles(remoteDir: string, body: ManifestBody): Set<string> {
  const named = new Set<string>();
  for (const s of body.snapshots) {
    if (s.root?.delta) named.add(rootDeltaPath(s.root.delta.name));
    const heads = [...(s.updates ?? []).map((u) => u.name), ...(s.offer ? [s.offer.name] : [])];
    for (const name of heads) {
      named.add(`updates/${name}.upd`);
      try {
        for (const f of framesFilesOf(remoteDir, name)) named.add(`frames/${f}.frames`);
      } catch {
        // A head that cannot be read names nothing more; it is kept, being named.
      }
    }
  }
  return named;
}

/**
 * Deletes update heads, frames files and root deltas that `body` (the manifest just written) does not name
 * and that have gone unnamed for `afterMs`; returns how many. Runs under the publish lock.
 */
export function pruneUpdates(remoteDir: string, body: ManifestBody, opts: { afterMs?: number; now?: Date } = {}): number {
  const afterMs = opts.afterMs ?? DEFAULT_PRUNE_AFTER_MS;
  const now = (opts.now ?? new Date()).getTime();
  const named = namedFiles(remoteDir, body);
  const recordPath = join(remoteDir, PRUNE_RECORD);
  let since: Record<string, string> = {};
  try {
    if (existsSync(recordPath)) since = (JSON.parse(readFileSync(recordPath, 'utf8')) as { unnamed: Record<string, string> }).unnamed ?? {};
  } catch {
    since = {};
  }
  const next: Record<string, string> = {};
  let pruned = 0;
  for (const [dir, ext] of [['updates', '.upd'], ['frames', '.frames'], ['roots', '.rd']]) {
    let names: string[];
    try {
      names = readdirSync(join(remoteDir, dir));
    } catch {
      continue;
    }
    for (const n of names) {
      // .tmp- files are a crashed publisher's: nothing names them, and they are not ours to judge here.
      if (!n.endsWith(ext) || n.startsWith('.tmp-')) continue;
      const path = `${dir}/${n}`;
      if (named.has(path)) continue;
      const first = since[path] ?? new Date(now).toISOString();
      if (now - Date.parse(first) >= afterMs) {
        rmSync(join(remoteDir, path), { force: true });
        pruned++;
      } else next[path] = first;
    }
  }
  if (Object.keys(next).length || existsSync(recordPath)) writeFileAtomic(recordPath, Buffer.from(JSON.stringify({ version: 1, unnamed: next }) + '\n'));
  return pruned;
}
