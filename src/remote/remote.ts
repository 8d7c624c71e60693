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

/** Counts what crossed the wire, headers included; the budget is checked against it. */
export interface WireMeter {
  /** Bytes sent and received so far: request line + headers + body, status line + headers + body. */
  readonly total: number;
}

export interface FetchOptions {
  /** Stop and fail if the response would put more than this many bytes on the wire. */
  maxWireBytes?: number;
  signal?: AbortSignal;
  /**
   * get() only: the copy we hold and the ETag it came with. An HTTP server that still has it
   * answers 304 with no body, and get() returns `cached`. Remotes without ETags ignore it.
   */
  ifNoneMatch?: { etag: string; cached: Uint8Array };
  /** get() only: told the ETag of the bytes it returns (undefined when the server gave none). */
  onEtag?: (etag: string | undefined) => void;
}

export interface Remote {
  /** For messages: the URL or path the user gave. */
  readonly location: string;
  /** True when reading it costs nothing (local path, LAN peer marked free). */
  readonly free: boolean;
  readonly meter: WireMeter;
  /** A whole small file. Fails with NOT_A_REMOTE / NETWORK / CAPTIVE_PORTAL as fits. */
  get(path: string, opts?: FetchOptions): Promise<Uint8Array>;
  /**
   * Bytes [range.start, range.end) of an immutable file, handed to `sink` in order as they
   * arrive, so a cut connection still leaves what came usable. Resolves when the whole range
   * arrived; rejects (after calling sink with whatever did arrive) otherwise.
   */
  getRange(path: string, range: ByteRange, sink: (bytes: Uint8Array) => void | Promise<void>, opts?: FetchOptions): Promise<void>;
  /** A wire cost estimate for a request of `bodyBytes`, headers included; the planner uses it. */
  requestCost(path: string, bodyBytes: number): number;
  /**
   * HTTP remotes: whether the server honours Range, as last seen ('unknown' before any answer;
   * get() of the manifest already tells). From a 'no' server a range [s, e) costs the first e
   * bytes of the file (plus what the server pushes before we hang up): plan whole files there.
   */
  readonly rangeSupport?: 'unknown' | 'yes' | 'no';
  /** HTTP remotes: ask for one byte of `path` (default manifest.json) to learn rangeSupport. */
  probeRangeSupport?(path?: string, opts?: FetchOptions): Promise<'unknown' | 'yes' | 'no'>;
  close(): Promise<void>;
}
