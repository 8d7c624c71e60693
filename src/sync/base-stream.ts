import { Remote } from '../remote/remote.js';
import { Snapshot } from '../snapshot/snapshot.js';
import { WorkDir } from '../workdir/workdir.js';
import { Latest } from './catalog.js';
import { keptPrefixes, LoadedUpdate } from './frames.js';
import { deltaChoices, hasCachedHead, HeadsOffline, headPath, loadUpdateHead, solidUpdate, uncachedHead } from './updates.js';

/**
 * The stream of an older snapshot that a card was cut inside, when a newer snapshot came out
 * before the next card: finishing that stream (its kept prefix is paid already) and then taking
 * the delta from it can cost far less than the new snapshot's stream from nothing, which would
 * bring again everything the first card bought. typescript 5.8.3 → 5.9.3, a card of 40% of the
 * first download, then the release: the new stream cost 2.10 MB, the rest of the old one and the
 * delta 1.3 MB.
 */
export interface BaseStream {
  /** The older snapshot, whose index this directory holds. */
  base: Snapshot;
  /** Its update from nothing, a prefix of whose frames is kept in `.paquete/tmp/`. */
  stream: LoadedUpdate;
  /** The delta update from `base` to the newest snapshot. */
  delta: LoadedUpdate;
  /** Chunks the stream's dictionaries need that the store holds (none for a stream from nothing). */
  streamHeld?: Set<bigint>;
  /** Chunks held once the stream is in, as the delta is priced (default: every chunk of `base`). */
  afterHeld?: Set<bigint>;
}

/**
 * The base stream worth pricing, heads fetched: the newest base whose index is here, with an
 * update from nothing of which a frame prefix is kept. `loaded` is the delta head that came with
 * the index (not fetched again). Undefined when there is none, or the budget cannot pay the heads.
 */
export async function keptBaseStream(
  work: WorkDir,
  remote: Remote,
  latest: Latest,
  loaded: LoadedUpdate | undefined,
  limit: number,
  opts: { signal?: AbortSignal; note?: (message: string) => void } & HeadsOffline,
): Promise<BaseStream | undefined> {
  const choice = deltaChoices(work, latest.manifest.body, latest.entry)[0];
  const solid = choice && solidUpdate(choice.baseEntry);
  if (!choice || !solid) return undefined;
  const haveDelta = loaded !== undefined && (loaded.head.base ?? '') === choice.ref.from;
  const cost = (ref: typeof solid) => (hasCachedHead(work, ref) ? 0 : remote.requestCost(headPath(ref), ref.size));
  const headsCost = cost(solid) + (haveDelta ? 0 : cost(choice.ref));
  if (headsCost > limit) return undefined;
  if (opts.offline) {
    const missing = [solid, ...(haveDelta ? [] : [choice.ref])].find((r) => !hasCachedHead(work, r));
    if (missing) {
      opts.uncached?.(uncachedHead(missing));
      return undefined;
    }
  }
  try {
    const head = await loadUpdateHead(work, remote, solid, choice.baseEntry, null, opts);
    if (keptPrefixes(work.tmpDir, head).size === 0) return undefined;
    const delta = haveDelta ? loaded : { head: await loadUpdateHead(work, remote, choice.ref, latest.entry, choice.base, opts), base: choice.base };
    return { base: choice.base, stream: { head, base: null }, delta };
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    opts.note?.(`the stream of snapshot ${choice.baseEntry.name.slice(0, 12)}: ${(e as Error).message}; not resumed`);
    return undefined;
  }
}
