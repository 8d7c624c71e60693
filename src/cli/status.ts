import type { Argv } from 'yargs';
import { cachedLatest } from '../sync/catalog.js';
import { Assembler } from '../sync/assembler.js';
import { recordLength } from '../snapshot/snapshot.js';
import { formatSize } from '../util/size.js';
import { GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';

export const statusCommand = {
  command: 'status',
  describe: 'Show what the snapshot holds, what is complete and what is missing (no network)',
  builder: (y: Argv) => y.example('$0 status -C mirror', 'files complete and bytes still missing, per source'),
  handler: async (argv: GlobalArgs) => {
    await withWorkDir(argv, 'status', async (work) => {
      const latest = cachedLatest(work);
      const storeSize = await work.store.count();
      if (!latest) {
        out.result(`${work.root}: nothing synced yet from ${work.config.remotes[0].location}; run paquete sync`);
        out.emitJson({ root: work.root, synced: false, store: storeSize });
        return;
      }
      const { snapshot, entry, manifest } = latest;
      const state = work.treeState();
      const assembler = new Assembler(work.root, work.tmpDir, work.store, snapshot, state);
      const present = await work.store.hasMany(snapshot.chunks.map((c) => c.id));
      type Row = { source: string; files: number; complete: number; bytes: number; completeBytes: number; missingBytes: number };
      const rows = new Map<string, Row>();
      for (const src of snapshot.sources) rows.set(src.name, { source: `${src.kind}:${src.name}`, files: 0, complete: 0, bytes: 0, completeBytes: 0, missingBytes: 0 });
      const counted = new Set<number>();
      for (const f of snapshot.files) {
        const name = f.path.split('/')[0];
        const row = rows.get(name) ?? { source: name, files: 0, complete: 0, bytes: 0, completeBytes: 0, missingBytes: 0 };
        rows.set(name, row);
        row.files++;
        row.bytes += f.size;
        if (assembler.isInPlace(f)) {
          row.complete++;
          row.completeBytes += f.size;
          continue;
        }
        for (const i of f.chunks) {
          if (counted.has(i) || present.has(snapshot.chunks[i].id)) continue;
          counted.add(i);
          row.missingBytes += recordLength(snapshot.chunks[i]);
        }
      }
      work.saveTreeState(state);
      const all = [...rows.values()];
      const total = all.reduce((a, r) => ({ ...a, files: a.files + r.files, complete: a.complete + r.complete, bytes: a.bytes + r.bytes, missingBytes: a.missingBytes + r.missingBytes }), { files: 0, complete: 0, bytes: 0, missingBytes: 0 });
      out.result(`snapshot ${entry.name.slice(0, 12)} (serial ${manifest.body.serial}, ${entry.created}) from ${work.config.remotes[0].location}`);
      for (const r of all) {
        out.result(`  ${r.source.padEnd(24)} ${`${r.complete}/${r.files} files`.padStart(16)}  ${formatSize(r.completeBytes).padStart(9)} of ${formatSize(r.bytes).padEnd(9)}  ${r.missingBytes ? `${formatSize(r.missingBytes)} to fetch` : 'complete'}`);
      }
      out.result(`total: ${total.complete}/${total.files} files complete; ${total.missingBytes ? `${formatSize(total.missingBytes)} still to fetch` : 'nothing missing'}; store holds ${storeSize.chunks} chunks, ${formatSize(storeSize.bytes)}`);
      out.emitJson({ root: work.root, synced: true, snapshot: entry.name, serial: manifest.body.serial, sources: all, total, store: storeSize });
    });
  },
};
