/**
 * A remote is a tree of static files: a local directory, a USB stick, or anything that serves
 * files over HTTP with Range. Paths are relative, '/'-separated (e.g. "manifest.json",
 * "packs/ab12….pack"). Every file but the manifest is immutable once written, which is what makes
 * resuming and caching safe.
 */
export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive. */
  end: number;
}

/** Counts what crossed the wire, headers included (the budget itself is src/remote/budget.ts). */
/** get() without a limit: no file but a pack is this big (packs are read by range). */
export const MAX_GET_BYTES = 256 << 20;

export interface WireMeter {
  /** Bytes sent and received so far: request line + headers + body, status line + headers + body. */
  readonly total: number;
}

export interface FetchOptions {
  /**
   * get() only: the most bytes the file may have (its signed size, or a documented cap). Only
   * that much is asked for; a longer answer is hung up on and fails. Default MAX_GET_BYTES.
   */
  limit?: number;
  /**
   * get() only: the file's exact size, as signed (an index, an update head). Implies `limit`, and
   * nothing is sent unless the budget covers the whole file: a prefix of an index is worth nothing.
   */
  size?: number;
  /**
   * getRange() only: when the budget cannot pay for the whole range, fetch the longest prefix it
   * can (whole records of it are kept) and then fail with BUDGET, rather than fail at once.
   */
  prefixOk?: boolean;
  signal?: AbortSignal;
  /**
   * get() only: the copy we hold and the ETag it came with. An HTTP server that still has it
   * answers 304 with no body, and get() returns `cached`. Remotes without ETags ignore it.
   */
  ifNoneMatch?: { etag: string; cached: Uint8Array };
  /** get() only: told the ETag of the bytes it returns (undefined when the server gave none). */
  onEtag?: (etag: string | undefined) => void;
  /**
   * get() only, for an immutable file of a signed `size` (an index): the bytes an earlier try
   * landed (`prefix`), which are not asked for again, and where each new piece goes as it is
   * read (`land`, synchronously: see getRange) or is dropped when the file starts over
   * (`restart`). The caller checks the whole against its signed hash.
   */
  resume?: GetLanding;
}

export interface GetLanding {
  readonly prefix: Uint8Array;
  land(bytes: Uint8Array): void;
  restart(): void;
}

export interface Remote {
  /** For messages: the URL or path the user gave. */
  readonly location: string;
  /** True when reading it costs nothing (local path, LAN peer marked free). */
  readonly free: boolean;
  /**
   * A directory on this machine (a USB stick, a share): a read cannot be cut half way, so a sink
   * gains nothing by landing bytes ahead of using them and holds the reading up instead.
   */
  readonly local?: boolean;
  readonly meter: WireMeter;
  /** A whole small file. Fails with NOT_A_REMOTE / NETWORK / CAPTIVE_PORTAL as fits. */
  get(path: string, opts?: FetchOptions): Promise<Uint8Array>;
  /**
   * Bytes [range.start, range.end) of an immutable file, handed to `sink` in order as they
   * arrive, so a cut connection still leaves what came usable. Resolves when the whole range
   * arrived; rejects (after calling sink with whatever did arrive) otherwise. An HTTP remote calls
   * `sink` in the same turn as the socket read that brought the bytes: a sink that puts them on
   * disk there and returns nothing is never waited for (the connection is read on at the link's
   * pace, so a kill -9 can only take the read under way); one that returns a promise holds the
   * reading up until it settles.
   */
  getRange(path: string, range: ByteRange, sink: (bytes: Uint8Array) => void | Promise<void>, opts?: FetchOptions): Promise<void>;
  /**
   * What a request for `bodyBytes` of `path` reserves from the budget: request head, the most
   * the response head may take, the body (from a server that ignores Range, the push allowance
   * on top). The planner prices with it, so what it plans is what the budget lets through. A
   * range longer than an HTTP remote's piece (src/remote/outstanding.ts PieceRule) takes one request
   * per piece: the heads of each are counted. `requestCost(path, 0)` is the heads of one request at their largest.
   */
  requestCost(path: string, bodyBytes: number): number;
  /**
   * HTTP remotes: whether the server honours Range, as last seen ('unknown' before any answer;
   * get() of the manifest already tells). From a 'no' server a range [s, e) costs the first e
   * bytes of the file (plus what the server pushes before we hang up): plan whole files there.
   */
  readonly rangeSupport?: 'unknown' | 'yes' | 'no';
  /** HTTP remotes: ask for one byte of `path` (default manifest.json) to learn rangeSupport. */
  probeRangeSupport?(path?: string, opts?: FetchOptions): Promise<'unknown' | 'yes' | 'no'>;
  /** HTTP remotes: what prices requests to this server, as learned so far (to keep for the next session). */
  linkFacts?(): LinkFacts;
  close(): Promise<void>;
}

/**
 * What an HTTP remote learns of its server that prices its requests: whether it honours Range,
 * the size of its response heads, whether its 206 answers carry a strong ETag. Kept between
 * sessions (.paquete/link.json) so that a plan made before any exchange (status, a dry run's
 * card) prices requests as the sync after it will: unlearned, a head is assumed to take 640
 * bytes, against 288 from nginx.
 */
export interface LinkFacts {
  support?: 'yes' | 'no';
  /** Largest 206 head seen, less the parts that vary with the range. */
  head206?: number;
  /** Largest 200 head seen, as a guess for a 206 until one is seen. */
  head200?: number;
  etagOn206?: boolean;
}
