import { Remote } from '../remote/remote.js';
import { Snapshot } from '../snapshot/snapshot.js';
import { ManifestSnapshot, UpdateRef } from '../snapshot/manifest.js';
import { UpdateHead } from '../delta/update.js';
import { WorkDir } from '../workdir/workdir.js';
import { Latest } from './catalog.js';
import { keptPrefixes, LoadedUpdate } from './frames.js';
import { deltaChoices, hasCachedHead, HeadsOffline, headPath, loadUpdateHead, retiredStream, solidUpdate, uncachedHead } from './updates.js';

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
  /** Chunks of `base` the store holds now (default: those the new snapshot shares): its frames that bring none of the others are not fetched. */
  held?: Set<bigint>;
}

/**
 * B's stream from nothing: named by its manifest entry, or no more named but its head cached
 * here (src/sync/updates.ts retiredStream).
 */
function baseStreamRef(work: WorkDir, baseEntry: ManifestSnapshot): { solid?: UpdateRef; retired?: { ref: UpdateRef; head: UpdateHead } } {
  const named = solidUpdate(baseEntry);
  // The publisher may name it no more (its files stay for the prune grace period): the head cached by the card.
  const retired = named ? undefined : retiredStream(work, baseEntry);
  return { solid: named ?? retired?.ref, retired };
}

/** Whether the stream of the newest base whose index is here has its head here: a card of it ran, so finishing it may pay. */
export function cachedBaseStream(work: WorkDir, latest: Latest): boolean {
  const choice = deltaChoices(work, latest.manifest.body, latest.entry)[0];
  const { solid } = choice ? baseStreamRef(work, choice.baseEntry) : {};
  return solid !== undefined && hasCachedHead(work, solid);
}

/**
 * The base stream worth pricing, heads fetched: the newest base whose index is here, with an
 * update from nothing of which a frame prefix is kept: named by its manifest entry, or no more
 * named but cached here (src/sync/updates.ts retiredStream; its frames may be pruned by now, and
 * then the session goes on without it). `loaded` is the delta head that came with
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
  if (!choice) return undefined;
  const { solid, retired } = baseStreamRef(work, choice.baseEntry);
  if (!solid) return undefined;
  const wasCached = hasCachedHead(work, solid);
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
    const head = retired?.head ?? (await loadUpdateHead(work, remote, solid, choice.baseEntry, null, opts));
    // A card of it ran (its head is here) or was cut inside a frame of it: a segmented stream is
    // often cut between segments, keeping no prefix, and the segments not yet fetched are then
    // what finishes it.
    if (keptPrefixes(work.tmpDir, head).size === 0 && !wasCached) return undefined;
    const delta = haveDelta ? loaded : { head: await loadUpdateHead(work, remote, choice.ref, latest.entry, choice.base, opts), base: choice.base };
    // Old versions of changed files count as held: a segment the card completed is not fetched again.
    const held = await work.store.hasMany(choice.base.chunks.ids());
    return { base: choice.base, stream: { head, base: null }, delta, held };
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    opts.note?.(`the stream of snapshot ${choice.baseEntry.name.slice(0, 12)}: ${(e as Error).message}; not resumed`);
    return undefined;
  }
}
