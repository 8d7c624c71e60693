/**
 * The place worker: a thread that writes, checks, syncs and renames files into the working
 * tree (TreeWriter), fed by Placer (src/sync/placer.ts), whose comment gives the protocol.
 */
import { parentPort } from 'node:worker_threads';
import { PaqueteError } from '../errors.js';
import type { FileDone, FromWorker, ToWorker } from './placer.js';
import { TreeWriter } from './tree-writer.js';

const port = parentPort!;
const writer = new TreeWriter();
/** Files settled this turn, sent in one message once it is over (src/sync/placer.ts, ToWorker). */
let replies: FromWorker = [];
const reply = (m: FileDone) => {
  if (replies.length === 0) setImmediate(() => {
    const batch = replies;
    replies = [];
    port.postMessage(batch);
  });
  replies.push(m);
};
port.on('message', (batch: ToWorker) => {
  for (const m of batch) {
    if (m.job) writer.begin(m.id, m.job);
    if (m.records.length) writer.write(m.id, m.records);
    if (!m.last) continue;
    writer.end(m.id, (outcome) => {
      reply(
        outcome instanceof Error
          ? { t: 'done', id: m.id, error: { message: outcome.message, code: (outcome as PaqueteError).code, hint: (outcome as PaqueteError).hint, paquete: outcome instanceof PaqueteError } }
          : { t: 'done', id: m.id, outcome },
      );
    });
  }
});
