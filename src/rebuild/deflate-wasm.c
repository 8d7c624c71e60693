/*
 * paquete's faithful deflate (src/rebuild/deflate.ts): zlib 1.3.1's own deflate
 * (vendor/zlib-1.3.1), compiled to WebAssembly by scripts/build-deflate-wasm.sh into
 * src/rebuild/deflate-wasm-bytes.ts. Raw deflate only (no zlib or gzip wrapper).
 *
 * Why zlib itself: the zip members and gzip streams we rebuild were made by zlib (CPython's
 * zipfile and gzip, setuptools, the wheel builders), and deflate's output is a function of its
 * implementation, not only of its parameters. pako (a JS port of zlib) gives the same bytes at
 * half the speed; Node's bundled zlib is a fork whose output differs.
 */
#include <stdlib.h>
#include "zlib.h"

#define PIECE 65536

/* One stream: zlib's state, then the buffers JS fills (in) and reads (out). */
typedef struct {
  z_stream z;
  unsigned char in[PIECE];
  unsigned char out[PIECE];
} stream;

/* zlib built with Z_SOLO (no stdio, no gz* functions) asks the caller for its allocator. */
static voidpf alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  return calloc(items, size);
}
static void release(voidpf opaque, voidpf p) {
  (void)opaque;
  free(p);
}

/* A new raw deflate stream, or 0 (bad parameters, no memory). */
stream *pq_new(int level, int windowBits, int memLevel, int strategy) {
  stream *s = calloc(1, sizeof(stream));
  if (!s) return 0;
  s->z.zalloc = alloc;
  s->z.zfree = release;
  if (deflateInit2(&s->z, level, Z_DEFLATED, -windowBits, memLevel, strategy) != Z_OK) {
    free(s);
    return 0;
  }
  return s;
}

unsigned char *pq_in(stream *s) { return s->in; }
unsigned char *pq_out(stream *s) { return s->out; }

/*
 * One deflate call: `len` > 0 hands it the first len bytes of s->in (only once zlib holds no
 * input: pq_pending_in is 0). Returns the bytes written to s->out (0..PIECE), or -1. While the
 * result is PIECE or input is pending, call again with len 0. With `finish`, the stream is done
 * when the result is below PIECE.
 */
int pq_deflate(stream *s, unsigned len, int finish) {
  if (len) {
    s->z.next_in = s->in;
    s->z.avail_in = len;
  }
  s->z.next_out = s->out;
  s->z.avail_out = PIECE;
  int r = deflate(&s->z, finish ? Z_FINISH : Z_NO_FLUSH);
  if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) return -1;
  return (int)(PIECE - s->z.avail_out);
}

unsigned pq_pending_in(stream *s) { return s->z.avail_in; }

void pq_free(stream *s) {
  deflateEnd(&s->z);
  free(s);
}

/* A raw stream never computes a check value: zlib's crc32.c (600 KB of tables) is left out. */
uLong crc32(uLong crc, const Bytef *buf, uInt len) {
  (void)crc, (void)buf, (void)len;
  __builtin_trap();
}
