import type { Argv } from 'yargs';
import { cachedLatest, hasCachedIndex, Latest, trustedManifest } from '../sync/catalog.js';
import { expiryOf, latestSnapshot, Manifest, ManifestSnapshot } from '../snapshot/manifest.js';
import { assessCompleteness, Completeness, completeAsSynced, SourceCompleteness } from '../sync/completeness.js';
import type { WorkDir } from '../workdir/workdir.js';
import { formatSize } from '../util/size.js';
import { describeToFetch, keepToFetch, toFetchOf } from '../sync/forecast.js';
import { toFetchNow } from '../sync/session.js';
import { notIndexed, PartialIndex } from '../sync/shard-cache.js';
import { GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';
import { printNotPlaced } from './tree-report.js';

/** A source's last column: complete only when every file is in place. Sizes are the files' (the wire figure is the total's). */
function state(r: SourceCompleteness): string {
  const parts = [];
  if (r.missingSize) parts.push(`${formatSize(r.missingSize)} missing`);
  if (r.notPlaced) parts.push(`${r.notPlaced} not placed`);
  return parts.join(', ') || (r.complete === r.files ? 'complete' : 'incomplete');
}

/**
 * The latest snapshot as last synced, and what of it is here: without reading the index when
 * the tree is still complete as the last sync of everything left it (src/sync/completeness.ts).
 */
async function reckon(work: WorkDir): Promise<{ manifest: Manifest; entry: ManifestSnapshot; completeness: Completeness; partial?: PartialIndex; latest?: Latest } | undefined> {
  const manifest = trustedManifest(work);
  const entry = manifest && latestSnapshot(manifest.body);
  const quick = manifest && entry && hasCachedIndex(work, entry.name) ? completeAsSynced(work, entry) : undefined;
  if (manifest && entry && quick) return { manifest, entry, completeness: quick };
  const latest = cachedLatest(work);
  return latest && { manifest: latest.manifest, entry: latest.entry, completeness: await assessCompleteness(work, latest.snapshot), partial: latest.partial, latest };
}

export const statusCommand = {
  command: 'status',
  describe: 'Show what the snapshot holds, what is complete and what is missing (no network)',
  builder: (y: Argv) => y.example('$0 status -C mirror', 'files complete and bytes still missing, per source'),
  handler: async (argv: GlobalArgs) => {
    await withWorkDir(argv, 'status', async (work) => {
      const latest = await reckon(work);
      const storeSize = await work.store.count();
      const remote = work.config.remotes[0].location;
      const remotes = work.config.remotes.map((r) => r.location);
      if (!latest) {
        out.answer(`${work.root}: nothing synced yet from ${remote}; run paquete sync`);
        out.emitJson({ root: work.root, remote, remotes, synced: false, store: storeSize });
        return;
      }
      const { entry, manifest } = latest;
      const { sources: all, total, notPlaced } = latest.completeness;
      // The sync's own plan, made here with no network: what it would spend now (src/sync/forecast.ts).
      const toFetch = (total.missingSize > 0 ? await toFetchNow(work, latest.latest) : null) ?? toFetchOf(undefined, 0, null);
      if (total.missingSize === 0) keepToFetch(work, entry.name, toFetch);
      out.answer(`snapshot ${entry.name.slice(0, 12)} (serial ${manifest.body.serial}, ${entry.created}) from ${remote}`);
      const expires = expiryOf(manifest.body);
      if (expires && expires.getTime() <= Date.now()) out.warn(`the manifest expired on ${manifest.body.expires}: sync to see whether the publisher signed a newer one`);
      // A partial index (sync --want) describes only the shards it holds: the rest is said so.
      const left = latest.partial ? notIndexed(latest.partial) : new Map<string, { files: number; bytes: number }>();
      for (const r of all) {
        const n = left.get(r.name);
        const beyond = n ? `${r.files ? '; ' : ''}not indexed here: ${n.files} files, ${formatSize(n.bytes)} (sync --want ${r.source} to bring them)` : '';
        const shown = r.files || !n ? state(r) : '';
        out.answer(`  ${r.source.padEnd(24)} ${`${r.complete}/${r.files} files`.padStart(16)}  ${formatSize(r.completeBytes).padStart(9)} of ${formatSize(r.bytes).padEnd(9)}  ${shown}${beyond}`);
      }
      out.answer(
        `total: ${total.complete}/${total.files} files complete; to fetch: ${describeToFetch(toFetch)}` +
          `${total.notPlaced ? `; ${total.notPlaced} not placed (below)` : ''}; store holds ${storeSize.chunks} chunks, ${formatSize(storeSize.bytes)}`,
      );
      if (toFetch.estimate) out.line(`  (an estimate: ${toFetch.estimate})`);
      printNotPlaced(notPlaced, [], false);
      out.emitJson({ root: work.root, remote, remotes, synced: true, snapshot: entry.name, serial: manifest.body.serial, created: entry.created, expires: manifest.body.expires ?? null, sources: all.map((r) => (left.has(r.name) ? { ...r, notIndexed: left.get(r.name) } : r)), total, toFetch, notPlaced, store: storeSize });
    }, { readOnlyFallback: true, shared: true });
  },
};
