import { Chunker, defaultBufferSize } from './chunker.js';
import { ChunkParams, GEAR, masks, validateParams } from './params.js';
import { FASTCDC_WASM_BASE64 } from './wasm-bytes.js';

/**
 * The WebAssembly chunker: the loop in fastcdc.wat, cut for cut the same as `nextCut`.
 *
 * Memory layout (see fastcdc.wat): a table of GEAR values for every pair of bytes in the first
 * 512 KiB, the end offsets after it, then the chunk ids (u64, little-endian), then the input
 * buffer, 4 KiB aligned. The memory is created with initial == maximum pages and the module never
 * grows it, so `buffer` (a view of it) stays valid for the chunker's life: callers read files
 * straight into it.
 */

interface FastCdcExports {
  init(min: number, avg: number, max: number, tSmall: number, tLarge: number, input: number, out: number, ids: number): void;
  cut(length: number, final: number, withIds: number): number;
}

const PAGE = 65536;
/** For the bytes b0, b1: GEAR[b0], GEAR[b1] at (b0 | b1 << 8) * 8 (see fastcdc.wat for why). */
const PAIR_TABLE_BYTES = 65536 * 8;
const OUT_OFFSET = PAIR_TABLE_BYTES;
/** BigUint64Array reads the ids the wasm wrote little-endian only on a little-endian host. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Largest input buffer accepted: keeps every address well inside 32-bit memory. */
const MAX_BUFFER = 1 << 30;

let compiled: Promise<WebAssembly.Module> | undefined;

/** True where this runtime has WebAssembly (Node always has; a locked-down runtime may not). */
export function wasmAvailable(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly !== null && typeof WebAssembly.instantiate === 'function';
}

function fastCdcModule(): Promise<WebAssembly.Module> {
  compiled ??= WebAssembly.compile(Buffer.from(FASTCDC_WASM_BASE64, 'base64'));
  return compiled;
}

/** 2^32 - mask: for a mask of top bits, (h & mask) === 0 exactly when h < threshold (unsigned). */
function threshold(mask: number): number {
  const t = 0x100000000 - (mask >>> 0);
  if (mask === 0 || (t & (t - 1)) !== 0) throw new Error(`not a top-bits mask: ${mask.toString(16)}`);
  return t | 0; // 2^32 - 0xffffffff = 1; the wasm compares unsigned
}

export async function createWasmChunker(
  params: ChunkParams,
  bufferSize: number = defaultBufferSize(params),
): Promise<Chunker> {
  validateParams(params);
  if (!Number.isInteger(bufferSize) || bufferSize < params.maxSize || bufferSize > MAX_BUFFER) {
    throw new RangeError(`buffer size must be an integer between maxSize (${params.maxSize}) and ${MAX_BUFFER}, got ${bufferSize}`);
  }
  const m = masks(params);
  // At most one chunk per minSize bytes, plus a short last one.
  const capacity = Math.floor(bufferSize / params.minSize) + 2;
  const idsOffset = alignUp(OUT_OFFSET + capacity * 4, 8);
  const inputOffset = alignUp(idsOffset + capacity * 8, 4096);
  const pages = Math.ceil((inputOffset + bufferSize + 64) / PAGE);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = await WebAssembly.instantiate(await fastCdcModule(), { env: { memory } });
  const wasm = instance.exports as unknown as FastCdcExports;

  const table = new DataView(memory.buffer, 0, PAIR_TABLE_BYTES);
  for (let pair = 0; pair < 65536; pair++) {
    table.setUint32(pair * 8, GEAR[pair & 255], true);
    table.setUint32(pair * 8 + 4, GEAR[pair >>> 8], true);
  }
  wasm.init(params.minSize, params.avgSize, params.maxSize, threshold(m.small), threshold(m.large), inputOffset, OUT_OFFSET, idsOffset);

  const buffer = new Uint8Array(memory.buffer, inputOffset, bufferSize);
  const ends = new Uint32Array(memory.buffer, OUT_OFFSET, capacity);
  const idView = new BigUint64Array(memory.buffer, idsOffset, capacity);
  const idData = new DataView(memory.buffer, idsOffset, capacity * 8);
  const run = (length: number, final: boolean, withIds: boolean): number[] => {
    if (!Number.isInteger(length) || length < 0 || length > bufferSize) {
      throw new RangeError(`cut length must be an integer between 0 and ${bufferSize}, got ${length}`);
    }
    const count = wasm.cut(length, final ? 1 : 0, withIds ? 1 : 0);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = ends[i];
    return out;
  };
  return {
    params,
    buffer,
    cut: (length, final) => run(length, final, false),
    cutWithIds(length, final) {
      const out = run(length, final, true);
      let ids: BigUint64Array;
      if (LITTLE_ENDIAN) ids = idView.slice(0, out.length);
      else {
        ids = new BigUint64Array(out.length);
        for (let i = 0; i < out.length; i++) ids[i] = idData.getBigUint64(i * 8, true);
      }
      return { ends: out, ids };
    },
  };
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
