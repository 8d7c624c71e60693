import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { ChunkStore } from '../store/store.js';
import { currentGeneration, Generation, ReaderRegistration, switchGeneration } from '../workdir/generation.js';
import { acquireLock } from '../workdir/lock.js';
import { openReadOnlyStore, WorkDir } from '../workdir/workdir.js';
import { MirrorView } from './mirror.js';
import { VirtualPacks } from './packs.js';

/** One generation as serve answers from it. */
export interface Served {
  n: number;
  view: MirrorView;
  packs: VirtualPacks;
  store: ChunkStore;
  /** Connections answered from it. */
  connections: number;
}

/**
 * The generations serve answers from (src/workdir/generation.ts). A connection is answered
 * from the generation that was current when its first request came, for as long as it stays
 * open: a pip or git client sees one snapshot, its index pages and the files they name, whatever
 * a sync switches meanwhile; a new connection gets the newest. A generation no connection uses
 * any more is let go (and the registration in .paquete/readers/ says so), except the newest.
 */
export class ServedGenerations {
  private readonly held = new Map<number, Served>();
  private newest = -1;
  private readonly pins = new WeakMap<Socket, Served>();
  private refreshing?: Promise<Served>;

  private constructor(
    private readonly work: WorkDir,
    /** Undefined on a read-only directory: no writer can run there, so nothing to tell one. */
    private readonly registration: ReaderRegistration | undefined,
  ) {}

  static async open(work: WorkDir): Promise<ServedGenerations> {
    const writable = !work.readOnly;
    if (writable && currentGeneration(work.meta) === undefined) {
      // A directory last written by an older paquete: make its first generation if no writer
      // runs (one that does makes it when it opens the directory).
      try {
        const release = acquireLock(join(work.meta, 'lock'), 'serve (first generation)', { identifyDirectory: true });
        try {
          await switchGeneration(work.meta, { pause: false });
        } finally {
          release();
        }
      } catch {
        /* a writer holds it, and has made one */
      }
    }
    const g = new ServedGenerations(work, writable ? new ReaderRegistration(work.meta, 'serve') : undefined);
    await g.refresh();
    return g;
  }

  /** The generation `req` is answered from. */
  async forRequest(req: IncomingMessage): Promise<Served> {
    const socket = req.socket;
    const pinned = this.pins.get(socket);
    if (pinned) return pinned;
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
    const served = await this.refreshing;
    this.pins.set(socket, served);
    served.connections++;
    socket.once('close', () => {
      served.connections--;
      this.letGo();
    });
    return served;
  }

  /** The newest generation, taking the one `current` names when it changed. */
  private async refresh(): Promise<Served> {
    const seen = currentGeneration(this.work.meta) ?? 0;
    if (seen === this.newest) return this.held.get(seen)!;
    const n = (this.registration ? this.registration.take([...this.held.keys()].filter((k) => k > 0)) : currentGeneration(this.work.meta)) ?? 0;
    const existing = this.held.get(n);
    if (existing) return existing;
    const gen = Generation.load(this.work.root, this.work.meta, n || undefined);
    // The first uses the store opened with the directory; later ones a fresh copy of the index,
    // which knows the chunks the sync brought.
    const store = this.held.size === 0 ? this.work.store : await openReadOnlyStore(this.work.store.dir);
    const view = new MirrorView(this.work, gen, store);
    const served: Served = { n, view, packs: new VirtualPacks(this.work, store, gen.manifest), store, connections: 0 };
    await view.current(); // fail early on a damaged snapshot cache, and warm the pages
    this.held.set(n, served);
    this.newest = Math.max(this.newest, n);
    this.letGo();
    return served;
  }

  /** Lets go of the older generations no connection uses. */
  private letGo(): void {
    let changed = false;
    for (const [n, s] of this.held) {
      if (n === this.newest || s.connections > 0) continue;
      this.held.delete(n);
      this.release(s);
      changed = true;
    }
    if (changed) this.registration?.set([...this.held.keys()].filter((k) => k > 0));
  }

  private release(s: Served): void {
    s.packs.close();
    if (s.store !== this.work.store) void s.store.close().catch(() => {});
  }

  async close(): Promise<void> {
    for (const s of this.held.values()) this.release(s);
    this.held.clear();
    this.registration?.release();
  }
}
