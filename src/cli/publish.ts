import type { Argv } from 'yargs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { DEFAULT_PARAMS, validateParams } from '../chunk/params.js';
import { publish } from '../publish/publisher.js';
import { fingerprint, generateKeys, parseSecretKey } from '../snapshot/keys.js';
import { parseSourceSpec } from '../sources/spec.js';
import { formatSize } from '../util/size.js';
import { parseDuration } from '../util/duration.js';
import { baseDir, GlobalArgs, sizeOption } from './common.js';
import { out } from './output.js';
import { Progress } from './progress.js';

interface Args extends GlobalArgs {
  sources?: string[];
  to: string;
  key?: string;
  'avg-chunk'?: number;
  level: number;
  'updates-from': number;
  threads?: number;
  solid: boolean;
  expires: string;
  'prune-after': string;
  'offer-share': number;
  wait?: boolean;
  'rotate-from'?: string;
}

export const publishCommand = {
  command: 'publish [sources..]',
  describe: 'Add a snapshot of the sources to a remote directory (static files)',
  builder: (y: Argv) =>
    y
      .positional('sources', { type: 'string', array: true, describe: '[KIND:][NAME=]PATH, KIND one of tree (default), pypi, git, docs; none: sign the same snapshots again with a fresh expiry' })
      .option('to', { type: 'string', demandOption: true, describe: 'remote directory to publish into' })
      .option('key', { type: 'string', describe: 'secret key from paquete keygen (default: ~/.config/paquete/publisher.key, created on first use)' })
      .option('avg-chunk', { type: 'string', coerce: sizeOption('--avg-chunk', 1), describe: `average chunk size for a new remote (default ${DEFAULT_PARAMS.avgSize}); min is avg/4, max avg*8` })
      .option('level', { type: 'number', default: 19, describe: 'zstd level (1-22) of the updates; lower publishes faster, clients download more' })
      .option('threads', { type: 'number', describe: 'worker threads compressing (default: one per core); the remote is the same bytes whatever the number' })
      .option('updates-from', { type: 'number', default: 3, describe: 'write delta updates from this many of the newest earlier snapshots (frames from the newest, index deltas from the others; 0: no deltas and no offer)' })
      .option('offer-share', { type: 'number', default: 1, describe: 'disk the offer (deltas keyed by content) may take, as a share of one compressed copy of the snapshot' })
      .option('prune-after', { type: 'string', default: '7d', describe: 'delete old update files this long after no manifest entry names them (12h, 7d; 0: at once)' })
      .option('expires', { type: 'string', default: '30d', describe: 'how long clients may sync to this manifest (12h, 30d, 2w); publish again, with or without sources, before then' })
      .option('rotate-from', { type: 'string', describe: 'the secret key the remote is published with now: move it to --key, with a statement signed by this old key that clients verify' })
      .option('wait', { type: 'boolean', describe: 'if another publish is writing to the same remote, wait for it to finish (default: fail at once, naming it)' })
      .option('solid', { type: 'boolean', default: true, describe: 'write the update from nothing (first downloads as a few large zstd frames); --no-solid skips it' })
      .example('$0 publish ./site docs:py312=./html --to /srv/mirror --key publisher.key', 'publish two sources as one snapshot')
      .example('$0 publish --to /srv/mirror --key new.key --rotate-from publisher.key', 'move the remote to a new key; clients that trust the old one follow')
      .example('$0 publish --to /srv/mirror --key publisher.key --expires 30d', 'nothing new: sign the same snapshots again, valid for 30 more days'),
  handler: async (argv: Args) => {
    const base = baseDir(argv);
    const keyPath = argv.key ? resolve(base, argv.key) : defaultKey();
    const { key, publicKey } = readSecretKey(keyPath);
    const rotateFrom = argv['rotate-from'] ? readSecretKey(resolve(base, argv['rotate-from'])) : undefined;
    const rotated = rotateFrom ? { secret: rotateFrom.key, publicKey: rotateFrom.publicKey } : undefined;
    const expiresInMs = parseDuration(argv.expires);
    const pruneAfterMs = argv['prune-after'].trim() === '0' ? 0 : parseDuration(argv['prune-after']);
    const sources = (argv.sources ?? []).map((s) => {
      const spec = parseSourceSpec(s);
      return { ...spec, path: resolve(base, spec.path) };
    });
    let params;
    if (argv['avg-chunk']) {
      const avg = argv['avg-chunk'];
      params = { minSize: avg / 4, avgSize: avg, maxSize: avg * 8 };
      try {
        validateParams(params);
      } catch (e) {
        throw new PaqueteError('USAGE', (e as Error).message);
      }
    }
    // --level and --updates-from are checked by publish(), which refuses them before any work.
    const remoteDir = resolve(base, argv.to);
    const progress = new Progress('publish', !argv.quiet && !argv.json);
    let phase = '';
    let r;
    try {
      r = await publish({
        sources, remoteDir, secret: key, publicKey, params, level: argv.level, threads: argv.threads, updatesFrom: argv['updates-from'], solid: argv.solid, expiresInMs, pruneAfterMs, offerShare: argv['offer-share'],
        rotateFrom: rotated, waitForLock: argv.wait, onLockWait: (holder) => out.warn(`waiting: ${holder}`),
        onProgress: (p) => {
          // Each phase is a bar of its own: chunking the sources, then each update's compression.
          const name = p.phase === 'chunking' ? 'chunking' : p.from === 'offer' ? 'offer' : p.from ? `update from ${p.from.slice(0, 8)}…` : 'update from nothing';
          if (name !== phase) {
            phase = name;
            progress.restart(p.bytesTotal, p.phase === 'chunking' ? 'files' : undefined, p.phase === 'chunking' ? p.filesTotal : undefined);
            progress.status(name);
          }
          progress.update(p.bytesDone);
          if (p.phase === 'chunking') progress.items(p.files);
        },
      });
    } finally {
      progress.stop();
    }
    for (const s of r.skipped) out.warn(`skipped ${s}`);
    if (r.nameWarnings.length) {
      out.warn(`${r.nameWarnings.length} names cannot be placed on a FAT/exFAT stick, macOS or Windows as they are (clients there will refuse them; Linux disks hold them):`);
      for (const p of r.nameWarnings.slice(0, 20)) out.warn(`  ${JSON.stringify(p.path)}: ${p.reason.replace(/on this disk/g, 'there')}`);
      if (r.nameWarnings.length > 20) out.warn(`  … and ${r.nameWarnings.length - 20} more (--json lists them all)`);
    }
    if (r.followed.length) out.line(`published ${r.followed.length} symbolic link${r.followed.length === 1 ? '' : 's'} as the files they name: ${r.followed.slice(0, 3).join(', ')}${r.followed.length > 3 ? ', …' : ''}`);
    if (!sources.length) {
      out.result(`signed snapshot ${r.snapshot.slice(0, 12)} again (serial ${r.serial}), valid until ${r.expires}`);
      out.line(`signed by ${fingerprint(publicKey)}`);
      if (rotateFrom) out.line(`rotated from ${fingerprint(rotateFrom.publicKey)}: clients trusting it move to ${fingerprint(publicKey)} at their next sync`);
      out.emitJson(r);
      return;
    }
    out.result(
      `published snapshot ${r.snapshot.slice(0, 12)} (serial ${r.serial}): ${r.files} files, ${formatSize(r.bytes)}; ` +
        `${r.newChunks} new of ${r.chunks} chunks, ${formatSize(r.newStoredBytes)} written` +
        (r.unchanged ? `; ${r.unchanged} files unchanged since the last publish, not read` : ''),
    );
    if (r.rebuilt.files || r.rebuilt.kept) {
      const { files, deflated, reproduced, opaque, kept } = r.rebuilt;
      out.line(
        `rebuilt files: ${files} zip/gzip files as contents + recipe, ${reproduced} of ${deflated} deflated members reproduced` +
          (opaque ? `, ${opaque} kept compressed (no deflate parameters reproduce them)` : '') +
          (kept ? `; ${kept} published as they are (unreadable, or too few members reproduced)` : ''),
      );
    }
    if (r.updates.length) {
      const each = r.updates.map((u) => `from ${u.from ? `${u.from.slice(0, 8)}…` : 'nothing'} ${formatSize(u.size + u.framesBytes)}`);
      if (r.offer) each.push(`offer ${formatSize(r.offer.size + r.offer.framesBytes)} (${r.offer.frames} frames from ${r.offer.contents} old contents, ${r.offer.reused} reused)`);
      out.line(`updates: ${each.join(', ')} (${(r.updatesMs / 1000).toFixed(r.updatesMs < 10_000 ? 1 : 0)} s)`);
    }
    if (r.pruned) out.line(`pruned ${r.pruned} update file${r.pruned === 1 ? '' : 's'} no manifest names any more`);
    out.line(`signed by ${fingerprint(publicKey)}; clients sync to it until ${r.expires}`);
    if (rotateFrom) out.line(`rotated from ${fingerprint(rotateFrom.publicKey)}: clients trusting it move to ${fingerprint(publicKey)} at their next sync`);
    out.emitJson(r);
  },
};

function readSecretKey(path: string): ReturnType<typeof parseSecretKey> {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch {
    throw new PaqueteError('USAGE', `cannot read the key ${path}`, 'create one with paquete keygen --out FILE');
  }
  return parseSecretKey(pem, path);
}

/** A publisher who never made a key gets one, once, and is told where it is. */
function defaultKey(): string {
  const path = join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'paquete', 'publisher.key');
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    const { secretPem, publicLine } = generateKeys();
    writeFileSync(path, secretPem, { mode: 0o600 });
    writeFileSync(`${path}.pub`, publicLine);
    out.warn(`created a publisher key at ${path}; give ${path}.pub to your users`);
  }
  return path;
}
