/**
 * The place worker: a thread that writes, checks, syncs and renames files into the working
 * tree (TreeWriter), fed by Placer (src/sync/placer.ts), whose comment gives the protocol.
 */
import { parentPort } from 'node:worker_threads';
import { PaqueteError } from '../errors.js';
import type { FromWorker, ToWorker } from './placer.js';
import { TreeWriter } from './tree-writer.js';

const port = parentPort!;
const writer = new TreeWriter();
port.on('message', (m: ToWorker) => {
  if (m.job) writer.begin(m.id, m.job);
  if (m.records.length) writer.write(m.id, m.records);
  if (!m.last) return;
  writer.end(m.id, (outcome) => {
    const reply: FromWorker =
      outcome instanceof Error
        ? { t: 'done', id: m.id, error: { message: outcome.message, code: (outcome as PaqueteError).code, hint: (outcome as PaqueteError).hint, paquete: outcome instanceof PaqueteError } }
        : { t: 'done', id: m.id, outcome };
    port.postMessage(reply);
  });
});
