;; FastCDC (Gear hash, normalized chunking level 2) and xxh64 chunk ids in hand-written
;; WebAssembly.
;;
;; It must cut exactly where `nextCut` in src/chunk/chunker.ts cuts: cut points are part of the
;; format (a client chunking local files must find the publisher's chunks). test/chunker.test.ts
;; checks this on many inputs and parameters, and the ids against xxhash-wasm's h64Raw.
;;
;; Compiled bytes live in src/chunk/wasm-bytes.ts (base64) so the build needs no WAT compiler;
;; bench/README.md says how to regenerate them after editing this file.
;;
;; Memory (imported; JS creates it with initial == maximum and nothing here grows it, so the
;; Uint8Array that JS hands out as `Chunker.buffer` stays valid):
;;   [0, 524288)             pair table: for the two bytes b0, b1 (in this order), the
;;                           little-endian u32s GEAR[b0], GEAR[b1] at (b0 | b1 << 8) * 8
;;   [$out, $out + 4*cap)    end offsets written by `cut`
;;   [$ids, $ids + 8*cap)    chunk ids (xxh64, seed 0, little-endian u64) written by `cut`
;;   [$in, $in + size)       the input buffer
;;
;; The hash: h = (h << 1) + GEAR[byte] (mod 2^32), started at 0 on the byte at offset minSize of
;; every chunk. JS passes thresholds instead of masks: the masks are top-bit masks, so
;; (h & mask) == 0  <=>  h <u 2^32 - mask.
;;
;; Why it looks like this. One hash chain is latency-bound, so a region to scan is split into
;; streams of fixed length hashed in lockstep: once 32 bytes have been hashed, the hash at
;; position x depends only on bytes x-31..x (older bits are shifted out of the 32-bit word), so
;; stream 0 continues the exact chain and stream 1 is first warmed up on the 32 bytes before it,
;; which gives it the exact hash too (its first position is at least 32 bytes past the chunk's
;; hash start). A hit in stream 0 is the answer at once. After a hit in stream 1, stream 0 may
;; still hit first, so the plain loop takes over from stream 0's position and stops at the first
;; cut. Phase 1 (before the average, where a cut is rare) uses 2 streams of 768 bytes (with the
;; default 1K/4K parameters the 3 KiB between min and average are exactly two blocks); phase 2
;; (after it, where a cut comes within about 2^(bits-2) bytes) 2 streams of 256, so little work is
;; thrown away. What is left after the last whole block goes through the plain unrolled loop.
;; Stream offsets are constants, so one pointer register serves all streams.
;;
;; With two streams the loop is no longer latency-bound but limited by the instructions a byte
;; costs, and by x86 ports 0 and 6, which run both shifts and every compare-and-branch (V8 does
;; not fold `byte << 2` into the address). So the table has an entry per PAIR of bytes: one 16-bit
;; load, one shift and two table loads serve two bytes, which then cost a shift-add (lea) and a
;; compare-and-branch each. Measured on the bench corpus against the alternatives (interleaved
;; runs, ratios of time): one entry per byte with `load8 << 2` 1.00; one entry per byte spread to
;; b*256 so that (load16(p-1) & 0xff00) is the address, with no shift, 1.05; pairs 1.09-1.12 (also
;; on binary tars, whose pairs cover the whole 512 KiB table); 4, 3 or 6 streams instead of 2: no
;; better, 6 worse. The table costs 512 KiB of memory per chunker and is filled once by JS.
;;
;; xxh64 is here too, rather than in JS through xxhash-wasm, because xxhash-wasm must copy every
;; chunk into its own memory and costs one JS-to-WebAssembly call per chunk; here `cut` hashes
;; each chunk in place right after cutting it (its bytes are still in L1) and JS gets the ends and
;; ids of a whole buffer from one call.
(module
  (import "env" "memory" (memory 1))

  (global $min (mut i32) (i32.const 0))
  (global $avg (mut i32) (i32.const 0))
  (global $max (mut i32) (i32.const 0))
  (global $tSmall (mut i32) (i32.const 0)) ;; threshold before the average (harder)
  (global $tLarge (mut i32) (i32.const 0)) ;; threshold after the average (easier)
  (global $in (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 0))
  (global $ids (mut i32) (i32.const 0))
  (global $hash (mut i32) (i32.const 0)) ;; hash at the end of a scan that found no cut

  (func (export "init")
    (param $min i32) (param $avg i32) (param $max i32)
    (param $tSmall i32) (param $tLarge i32) (param $in i32) (param $out i32) (param $ids i32)
    (global.set $min (local.get $min))
    (global.set $avg (local.get $avg))
    (global.set $max (local.get $max))
    (global.set $tSmall (local.get $tSmall))
    (global.set $tLarge (local.get $tLarge))
    (global.set $in (local.get $in))
    (global.set $out (local.get $out))
    (global.set $ids (local.get $ids)))

  ;; PAIR(k) below, (i32.shl (i32.load16_u offset=k (local.get $a)) (i32.const 3)), is the address
  ;; of the table entry for the two bytes at a+k, a+k+1: GEAR of the first at +0, of the second at +4.

  ;; Plain scan of [a, to) continuing hash $h. Returns the address after the first byte whose hash
  ;; is below $t, or 0 (then $hash holds the hash at to-1). (It reads the byte after the last one
  ;; scanned too, and ignores it: memory has room after the input.)
  (func $seq (param $a i32) (param $to i32) (param $t i32) (param $h i32) (result i32)
    (block $ones
      (loop $fours
        (br_if $ones (i32.gt_u (i32.add (local.get $a) (i32.const 4)) (local.get $to)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load16_u offset=0 (local.get $a)) (i32.const 3)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 1)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load16_u offset=1 (local.get $a)) (i32.const 3)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 2)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load16_u offset=2 (local.get $a)) (i32.const 3)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 3)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load16_u offset=3 (local.get $a)) (i32.const 3)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 4)))))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (br $fours)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $a) (local.get $to)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load16_u offset=0 (local.get $a)) (i32.const 3)))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br_if $one (i32.ge_u (local.get $h) (local.get $t)))
        (return (local.get $a))))
    (global.set $hash (local.get $h))
    (i32.const 0))

  ;; Phase 1 (before the average): blocks of 2 streams x 768 bytes, each step hashing a pair of
  ;; bytes of each stream; then $seq. Same contract as $seq.
  (func $scanBefore (param $a i32) (param $to i32) (param $t i32) (param $h0 i32) (result i32)
    (local $x0 i32) (local $h1 i32) (local $x1 i32) (local $end i32)
    (block $rest
      (block $later
        (loop $block
          (br_if $rest (i32.gt_u (i32.add (local.get $a) (i32.const 1536)) (local.get $to)))
          (local.set $h1 (i32.const 0))
          ;; warm stream 1 up on the 32 bytes before it
          (local.set $end (i32.add (local.get $a) (i32.const 32)))
          (loop $warm
            (local.set $x1 (i32.shl (i32.load16_u offset=736 (local.get $a)) (i32.const 3)))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load (local.get $x1))))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load offset=4 (local.get $x1))))
            (local.set $a (i32.add (local.get $a) (i32.const 2)))
            (br_if $warm (i32.lt_u (local.get $a) (local.get $end))))
          (local.set $a (i32.sub (local.get $a) (i32.const 32)))
          (local.set $end (i32.add (local.get $a) (i32.const 768)))
          ;; lockstep: stream j hashes the bytes at a + 768j and a + 768j + 1
          (loop $lockstep
            (local.set $x0 (i32.shl (i32.load16_u (local.get $a)) (i32.const 3)))
            (local.set $h0 (i32.add (i32.shl (local.get $h0) (i32.const 1)) (i32.load (local.get $x0))))
            (if (i32.lt_u (local.get $h0) (local.get $t))
              (then (return (i32.add (local.get $a) (i32.const 1)))))
            (local.set $h0 (i32.add (i32.shl (local.get $h0) (i32.const 1)) (i32.load offset=4 (local.get $x0))))
            (if (i32.lt_u (local.get $h0) (local.get $t))
              (then (return (i32.add (local.get $a) (i32.const 2)))))
            (local.set $x1 (i32.shl (i32.load16_u offset=768 (local.get $a)) (i32.const 3)))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load (local.get $x1))))
            (br_if $later (i32.lt_u (local.get $h1) (local.get $t)))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load offset=4 (local.get $x1))))
            (br_if $later (i32.lt_u (local.get $h1) (local.get $t)))
            (local.set $a (i32.add (local.get $a) (i32.const 2)))
            (br_if $lockstep (i32.lt_u (local.get $a) (local.get $end))))
          ;; no cut in the block: stream 1 ended on its last byte with the exact hash
          (local.set $h0 (local.get $h1))
          (local.set $a (i32.add (local.get $a) (i32.const 768)))
          (br $block)))
      ;; Stream 1 hit, so there is a cut at or before that byte, but stream 0 may still hit first:
      ;; go on after stream 0's pair with the plain loop, which stops at the first cut (this costs
      ;; at most one stream's length, and only when a cut is near).
      (return (call $seq (i32.add (local.get $a) (i32.const 2)) (local.get $to) (local.get $t) (local.get $h0))))
    (call $seq (local.get $a) (local.get $to) (local.get $t) (local.get $h0)))

  ;; Phase 2 (after the average): blocks of 2 streams x 256 bytes, then $seq. Same contract as $seq.
  (func $scanAfter (param $a i32) (param $to i32) (param $t i32) (param $h0 i32) (result i32)
    (local $x0 i32) (local $h1 i32) (local $x1 i32) (local $end i32)
    (block $rest
      (block $later
        (loop $block
          (br_if $rest (i32.gt_u (i32.add (local.get $a) (i32.const 512)) (local.get $to)))
          (local.set $h1 (i32.const 0))
          (local.set $end (i32.add (local.get $a) (i32.const 32)))
          (loop $warm
            (local.set $x1 (i32.shl (i32.load16_u offset=224 (local.get $a)) (i32.const 3)))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load (local.get $x1))))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load offset=4 (local.get $x1))))
            (local.set $a (i32.add (local.get $a) (i32.const 2)))
            (br_if $warm (i32.lt_u (local.get $a) (local.get $end))))
          (local.set $a (i32.sub (local.get $a) (i32.const 32)))
          (local.set $end (i32.add (local.get $a) (i32.const 256)))
          (loop $lockstep
            (local.set $x0 (i32.shl (i32.load16_u (local.get $a)) (i32.const 3)))
            (local.set $h0 (i32.add (i32.shl (local.get $h0) (i32.const 1)) (i32.load (local.get $x0))))
            (if (i32.lt_u (local.get $h0) (local.get $t))
              (then (return (i32.add (local.get $a) (i32.const 1)))))
            (local.set $h0 (i32.add (i32.shl (local.get $h0) (i32.const 1)) (i32.load offset=4 (local.get $x0))))
            (if (i32.lt_u (local.get $h0) (local.get $t))
              (then (return (i32.add (local.get $a) (i32.const 2)))))
            (local.set $x1 (i32.shl (i32.load16_u offset=256 (local.get $a)) (i32.const 3)))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load (local.get $x1))))
            (br_if $later (i32.lt_u (local.get $h1) (local.get $t)))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1)) (i32.load offset=4 (local.get $x1))))
            (br_if $later (i32.lt_u (local.get $h1) (local.get $t)))
            (local.set $a (i32.add (local.get $a) (i32.const 2)))
            (br_if $lockstep (i32.lt_u (local.get $a) (local.get $end))))
          (local.set $h0 (local.get $h1))
          (local.set $a (i32.add (local.get $a) (i32.const 256)))
          (br $block)))
      (return (call $seq (i32.add (local.get $a) (i32.const 2)) (local.get $to) (local.get $t) (local.get $h0))))
    (call $seq (local.get $a) (local.get $to) (local.get $t) (local.get $h0)))

  ;; Length of the first chunk of [p, p+n): nextCut in chunker.ts.
  (func $next (param $p i32) (param $n i32) (result i32)
    (local $normal i32) (local $r i32)
    (if (i32.le_u (local.get $n) (global.get $min)) (then (return (local.get $n))))
    (if (i32.gt_u (local.get $n) (global.get $max)) (then (local.set $n (global.get $max))))
    (local.set $normal
      (select (local.get $n) (global.get $avg) (i32.lt_u (local.get $n) (global.get $avg))))
    (local.set $r (call $scanBefore
      (i32.add (local.get $p) (global.get $min))
      (i32.add (local.get $p) (local.get $normal))
      (global.get $tSmall) (i32.const 0)))
    (if (local.get $r) (then (return (i32.sub (local.get $r) (local.get $p)))))
    (local.set $r (call $scanAfter
      (i32.add (local.get $p) (local.get $normal))
      (i32.add (local.get $p) (local.get $n))
      (global.get $tLarge) (global.get $hash)))
    (if (local.get $r) (then (return (i32.sub (local.get $r) (local.get $p)))))
    (local.get $n))

  ;; xxh64 with seed 0 of [p, p+n): XXH64 as specified in xxHash's doc/xxhash_spec.md.
  ;; Constants: P1 0x9e3779b185ebca87, P2 0xc2b2ae3d27d4eb4f, P3 0x165667b19e3779f9,
  ;; P4 0x85ebca77c2b2ae63, P5 0x27d4eb2f165667c5.
  (func $xxh64 (param $p i32) (param $n i32) (result i64)
    (local $end i32) (local $last i32) (local $h i64)
    (local $v1 i64) (local $v2 i64) (local $v3 i64) (local $v4 i64)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.ge_u (local.get $n) (i32.const 32))
      (then
        (local.set $v1 (i64.const 0x60ea27eeadc0b5d6)) ;; P1 + P2 (mod 2^64)
        (local.set $v2 (i64.const 0xc2b2ae3d27d4eb4f)) ;; P2
        (local.set $v3 (i64.const 0))
        (local.set $v4 (i64.const 0x61c8864e7a143579)) ;; -P1 (mod 2^64)
        (local.set $last (i32.sub (local.get $end) (i32.const 32))) ;; where the last whole stripe may start
        (loop $stripes
          (local.set $v1 (i64.mul (i64.rotl (i64.add (local.get $v1)
            (i64.mul (i64.load offset=0 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31))
            (i64.const 0x9e3779b185ebca87)))
          (local.set $v2 (i64.mul (i64.rotl (i64.add (local.get $v2)
            (i64.mul (i64.load offset=8 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31))
            (i64.const 0x9e3779b185ebca87)))
          (local.set $v3 (i64.mul (i64.rotl (i64.add (local.get $v3)
            (i64.mul (i64.load offset=16 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31))
            (i64.const 0x9e3779b185ebca87)))
          (local.set $v4 (i64.mul (i64.rotl (i64.add (local.get $v4)
            (i64.mul (i64.load offset=24 (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31))
            (i64.const 0x9e3779b185ebca87)))
          (local.set $p (i32.add (local.get $p) (i32.const 32)))
          (br_if $stripes (i32.le_u (local.get $p) (local.get $last))))
        (local.set $h (i64.add
          (i64.add (i64.rotl (local.get $v1) (i64.const 1)) (i64.rotl (local.get $v2) (i64.const 7)))
          (i64.add (i64.rotl (local.get $v3) (i64.const 12)) (i64.rotl (local.get $v4) (i64.const 18)))))
        (local.set $h (call $merge (local.get $h) (local.get $v1)))
        (local.set $h (call $merge (local.get $h) (local.get $v2)))
        (local.set $h (call $merge (local.get $h) (local.get $v3)))
        (local.set $h (call $merge (local.get $h) (local.get $v4))))
      (else (local.set $h (i64.const 0x27d4eb2f165667c5)))) ;; P5
    (local.set $h (i64.add (local.get $h) (i64.extend_i32_u (local.get $n))))
    ;; the tail: 8 bytes at a time, then 4, then single bytes
    (block $no8
      (loop $eights
        (br_if $no8 (i32.gt_u (i32.add (local.get $p) (i32.const 8)) (local.get $end)))
        (local.set $h (i64.xor (local.get $h)
          (i64.mul (i64.rotl (i64.mul (i64.load (local.get $p)) (i64.const 0xc2b2ae3d27d4eb4f)) (i64.const 31))
            (i64.const 0x9e3779b185ebca87))))
        (local.set $h (i64.add (i64.mul (i64.rotl (local.get $h) (i64.const 27)) (i64.const 0x9e3779b185ebca87))
          (i64.const 0x85ebca77c2b2ae63)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $eights)))
    (if (i32.le_u (i32.add (local.get $p) (i32.const 4)) (local.get $end))
      (then
        (local.set $h (i64.xor (local.get $h)
          (i64.mul (i64.load32_u (local.get $p)) (i64.const 0x9e3779b185ebca87))))
        (local.set $h (i64.add (i64.mul (i64.rotl (local.get $h) (i64.const 23)) (i64.const 0xc2b2ae3d27d4eb4f))
          (i64.const 0x165667b19e3779f9)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
    (block $no1
      (loop $ones
        (br_if $no1 (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $h (i64.xor (local.get $h)
          (i64.mul (i64.load8_u (local.get $p)) (i64.const 0x27d4eb2f165667c5))))
        (local.set $h (i64.mul (i64.rotl (local.get $h) (i64.const 11)) (i64.const 0x9e3779b185ebca87)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $ones)))
    ;; avalanche
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 33)))
      (i64.const 0xc2b2ae3d27d4eb4f)))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29)))
      (i64.const 0x165667b19e3779f9)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32))))

  ;; xxh64's merge of an accumulator into the hash: (h ^ round(0, v)) * P1 + P4.
  (func $merge (param $h i64) (param $v i64) (result i64)
    (i64.add
      (i64.mul
        (i64.xor (local.get $h)
          (i64.mul (i64.rotl (i64.mul (local.get $v) (i64.const 0xc2b2ae3d27d4eb4f)) (i64.const 31))
            (i64.const 0x9e3779b185ebca87)))
        (i64.const 0x9e3779b185ebca87))
      (i64.const 0x85ebca77c2b2ae63)))

  ;; xxh64 (seed 0) of [$in + start, $in + start + n), for JS (tests).
  (func (export "xxh64") (param $start i32) (param $n i32) (result i64)
    (call $xxh64 (i32.add (global.get $in) (local.get $start)) (local.get $n)))

  ;; Chunker.cut: writes the end offsets of the chunks of [$in, $in+len) at $out, returns how many.
  ;; With $withIds, also the xxh64 (seed 0) of each chunk as a little-endian u64 at $ids, computed
  ;; as soon as the chunk is cut (its bytes are still in L1). Unless final, stops once fewer than
  ;; max bytes remain (a later read could move the cut).
  (func (export "cut") (param $len i32) (param $final i32) (param $withIds i32) (result i32)
    (local $pos i32) (local $end i32) (local $count i32)
    (block $done
      (loop $more
        (br_if $done (i32.ge_u (local.get $pos) (local.get $len)))
        (br_if $done (i32.and (i32.eqz (local.get $final))
          (i32.lt_u (i32.sub (local.get $len) (local.get $pos)) (global.get $max))))
        (local.set $end (i32.add (local.get $pos)
          (call $next (i32.add (global.get $in) (local.get $pos))
                      (i32.sub (local.get $len) (local.get $pos)))))
        (i32.store (i32.add (global.get $out) (i32.shl (local.get $count) (i32.const 2)))
          (local.get $end))
        (if (local.get $withIds)
          (then (i64.store (i32.add (global.get $ids) (i32.shl (local.get $count) (i32.const 3)))
            (call $xxh64 (i32.add (global.get $in) (local.get $pos)) (i32.sub (local.get $end) (local.get $pos))))))
        (local.set $pos (local.get $end))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br $more)))
    (local.get $count))
)
