import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { isPaqueteError, PaqueteError } from '../errors.js';
import { isHttpUrl, normalizeLocation, openRemote } from '../remote/open.js';
import { decodeManifest, latestSnapshot, MANIFEST_PATH } from '../snapshot/manifest.js';
import { fingerprint, parsePublicKey } from '../snapshot/keys.js';
import { META_DIR, WorkDir } from '../workdir/workdir.js';
import { rotationPath } from '../snapshot/rotation.js';
import { describeNameRules, nameRulesFor } from '../workdir/fs-probe.js';
import { acceptManifest, checkFreshness, rememberLinkFacts, rememberManifestEtag } from '../sync/catalog.js';
import { formatSize } from '../util/size.js';
import { baseDir, GlobalArgs } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  url: string;
  dir?: string;
  trust?: string;
  'keep-existing'?: boolean;
}

export const initCommand = {
  command: 'init <url> [dir]',
  describe: 'Create a working directory that syncs from a remote',
  builder: (y: Argv) =>
    y
      .positional('url', { type: 'string', describe: 'http(s):// URL or local path of the remote' })
      .positional('dir', { type: 'string', describe: 'directory to create (default: the last part of the URL)' })
      .option('trust', { type: 'string', describe: "the publisher's public key file (KEYFILE.pub); without it the key first seen is pinned" })
      .option('keep-existing', { type: 'boolean', describe: 'DIR already has files: allow it; they stay yours (sync never overwrites them; identical ones are adopted)' })
      .example('$0 init https://mirror.example/paquete/ ~/old-mirror --keep-existing', 'a folder that already has files: sync keeps each one that differs and says so')
      .example('$0 init https://mirror.example/paquete/ mirror --trust publisher.key.pub', 'a working directory "mirror", trusting that key'),
  handler: async (argv: Args) => {
    const base = baseDir(argv);
    const location = normalizeLocation(argv.url, base);
    const dirName = argv.dir ?? (basename(location.replace(/\/+$/, '').replace(/^https?:\/\/[^/]*$/, 'mirror')) || 'mirror');
    const root = resolve(base, dirName);
    const trusted = argv.trust ? parsePublicKey(readTrust(resolve(base, argv.trust)), argv.trust) : undefined;

    const keep = { keepExisting: argv['keep-existing'] };
    // Refused before the network is asked anything: the answer would not change it.
    WorkDir.checkCreatable(root, keep);
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(argv.url);
    if (scheme && !isHttpUrl(argv.url)) {
      throw new PaqueteError('USAGE', `paquete cannot read ${scheme[1]}:// remotes: ${argv.url}`, 'give an http:// or https:// URL, or a local path');
    }
    if (isHttpUrl(location)) out.progress(`contacting ${location} …`);
    // One retry, not a sync's five with growing pauses (31 s of silence on a wrong URL): init
    // has nothing to resume, and running it again costs the same.
    const remote = await openRemote(location, {
      retries: 1,
      onRetry: (info) => out.warn(`link trouble (${info.error.message}); trying again in ${(info.delayMs / 1000).toFixed(1)} s`),
    });
    let manifest;
    let etag: string | undefined;
    try {
      manifest = decodeManifest(await remote.get(MANIFEST_PATH, { onEtag: (e) => (etag = e) }), location);
    } catch (e0) {
      const e = initError(e0, location);
      // Never online (a friend's stick is all there is): the trusted key is all a directory
      // needs; the first sync or `paquete import` brings the manifest.
      if (!trusted || !isPaqueteError(e) || !['NETWORK', 'CAPTIVE_PORTAL'].includes(e.code)) throw e;
      WorkDir.create(root, { version: 1, remotes: [{ location }], publisher: Buffer.from(trusted.raw).toString('base64') }, keep);
      out.result(`initialized ${root} for ${location}, which cannot be reached now (${e.message})`);
      out.line(`publisher key ${fingerprint(trusted)} trusted; run paquete import with a friend's bundle, or paquete sync when online`);
      out.emitJson({ root, location, publisher: fingerprint(trusted), pinned: false, offline: true });
      return;
    } finally {
      await remote.close();
    }
    // The key given, or one its rotation statements lead to (a user handed the old key file).
    let rotated = false;
    if (trusted) {
      try {
        rotated = rotationPath(manifest.body, trusted, `the remote ${location}`).length > 0;
      } catch {
        throw new PaqueteError('UNTRUSTED_KEY', `the remote is signed by ${fingerprint(manifest.publisher)}, not by the key you trust (${fingerprint(trusted)})`, 'check you have the right remote and key');
      }
    }
    WorkDir.create(root, { version: 1, remotes: [{ location }], publisher: Buffer.from(manifest.publisher.raw).toString('base64') }, keep);
    // Accepted as the first sync would (same key, nothing older seen), so that sync's manifest
    // request can be a conditional one: unchanged, it costs a 304 instead of the whole file.
    const work = await WorkDir.open(root, 'init');
    try {
      acceptManifest(work, manifest);
      rememberManifestEtag(work, location, etag, manifest.bytes);
      rememberLinkFacts(work, remote);
    } finally {
      await work.close();
    }
    const latest = latestSnapshot(manifest.body);
    out.result(`initialized ${root} from ${location}`);
    const disk = describeNameRules(nameRulesFor(join(root, META_DIR), root));
    if (disk) out.line(disk);
    try {
      checkFreshness(manifest, location, { note: (m) => out.warn(m) });
    } catch (e) {
      // Kept as trusted all the same (it is genuine); sync refuses it unless told.
      if (!isPaqueteError(e)) throw e;
      out.warn(e.message);
    }
    if (!trusted) out.result(`pinned the publisher key ${fingerprint(manifest.publisher)} (first use; compare it with what the publisher tells you)`);
    else if (rotated) out.line(`publisher key ${fingerprint(trusted)} trusted; it moved to ${fingerprint(manifest.publisher)} (a rotation signed by it): only that key is trusted now`);
    else out.line(`publisher key ${fingerprint(trusted)} trusted`);
    if (latest) out.line(`latest snapshot: ${latest.files} files, ${formatSize(latest.bytes)}; run paquete sync -C ${dirName}`);
    out.emitJson({ root, location, publisher: fingerprint(manifest.publisher), pinned: !trusted });
  },
};

/** Init has no progress to keep: a network failure says so, with what to check. */
function initError(e: unknown, location: string): unknown {
  if (!isPaqueteError(e) || e.code !== 'NETWORK') return e;
  return new PaqueteError('NETWORK', e.message, `nothing was created; check the address ${location} and that this machine is online, then run paquete init again`);
}

function readTrust(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new PaqueteError('USAGE', `cannot read the key ${path}`);
  }
}
