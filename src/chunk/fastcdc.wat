;; FastCDC (Gear hash, normalized chunking level 2) in hand-written WebAssembly.
;;
;; It must cut exactly where `nextCut` in src/chunk/chunker.ts cuts: cut points are part of the
;; format (a client chunking local files must find the publisher's chunks). test/chunker.test.ts
;; checks this on many inputs and parameters.
;;
;; Compiled bytes live in src/chunk/wasm-bytes.ts (base64) so the build needs no WAT compiler;
;; bench/README.md says how to regenerate them after editing this file.
;;
;; Memory (imported; JS creates it with initial == maximum and nothing here grows it, so the
;; Uint8Array that JS hands out as `Chunker.buffer` stays valid):
;;   [0, 1024)               GEAR table: 256 little-endian u32, GEAR[b] at b*4 (no base to add)
;;   [$out, $out + 4*cap)    end offsets written by `cut`
;;   [$in, $in + size)       the input buffer
;;
;; The hash: h = (h << 1) + GEAR[byte] (mod 2^32), started at 0 on the byte at offset minSize of
;; every chunk. JS passes thresholds instead of masks: the masks are top-bit masks, so
;; (h & mask) == 0  <=>  h <u 2^32 - mask.
;;
;; Why it looks like this. One hash chain is latency-bound: shift and add make 2 cycles a byte on
;; current x86. But once 32 bytes have been hashed, the hash at position x depends only on bytes
;; x-31..x (older bits are shifted out of the 32-bit word). So a region to scan is split into
;; streams of fixed length hashed in lockstep: stream 0 continues the exact chain; every later
;; stream is first warmed up on the 32 bytes before it, which gives it the exact hash too (its
;; first position is at least 32 bytes past the chunk's hash start). A hit in stream 0 is the
;; answer at once. After a hit in a later stream, an earlier stream may still hit first, so the
;; plain loop takes over from stream 0's position and stops at the first cut (at most one block
;; of plain scanning, and only when a cut is near). Phase 1 (before the average, where a cut is
;; rare) uses 4 streams of 384 bytes; phase 2 (after it, where a cut comes within about
;; 2^(bits-2) bytes) uses 2 streams of 256, so little work is thrown away. What is left after
;; the last whole block goes through the plain unrolled loop. Stream offsets are constants, so
;; one pointer register serves all streams, and the hot loop has no other state to keep: each
;; byte costs a load, a shift, a table load, a shift-add and a compare-and-branch.
(module
  (import "env" "memory" (memory 1))

  (global $min (mut i32) (i32.const 0))
  (global $avg (mut i32) (i32.const 0))
  (global $max (mut i32) (i32.const 0))
  (global $tSmall (mut i32) (i32.const 0)) ;; threshold before the average (harder)
  (global $tLarge (mut i32) (i32.const 0)) ;; threshold after the average (easier)
  (global $in (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 0))
  (global $hash (mut i32) (i32.const 0)) ;; hash at the end of a scan that found no cut

  (func (export "init")
    (param $min i32) (param $avg i32) (param $max i32)
    (param $tSmall i32) (param $tLarge i32) (param $in i32) (param $out i32)
    (global.set $min (local.get $min))
    (global.set $avg (local.get $avg))
    (global.set $max (local.get $max))
    (global.set $tSmall (local.get $tSmall))
    (global.set $tLarge (local.get $tLarge))
    (global.set $in (local.get $in))
    (global.set $out (local.get $out)))

  ;; Plain scan of [a, to) continuing hash $h. Returns the address after the first byte whose hash
  ;; is below $t, or 0 (then $hash holds the hash at to-1).
  (func $seq (param $a i32) (param $to i32) (param $t i32) (param $h i32) (result i32)
    (block $ones
      (loop $fours
        (br_if $ones (i32.gt_u (i32.add (local.get $a) (i32.const 4)) (local.get $to)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u offset=0 (local.get $a)) (i32.const 2)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 1)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u offset=1 (local.get $a)) (i32.const 2)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 2)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u offset=2 (local.get $a)) (i32.const 2)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 3)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u offset=3 (local.get $a)) (i32.const 2)))))
        (if (i32.lt_u (local.get $h) (local.get $t))
          (then (return (i32.add (local.get $a) (i32.const 4)))))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (br $fours)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $a) (local.get $to)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u (local.get $a)) (i32.const 2)))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br_if $one (i32.ge_u (local.get $h) (local.get $t)))
        (return (local.get $a))))
    (global.set $hash (local.get $h))
    (i32.const 0))

  ;; Phase 1: blocks of 4 streams x 384 bytes, then $seq. Same contract as $seq.
  (func $scan4 (param $a i32) (param $to i32) (param $t i32) (param $h0 i32) (result i32)
    (local $h1 i32) (local $h2 i32) (local $h3 i32) (local $end i32)
    (block $rest
      (block $later
        (loop $block
          (br_if $rest (i32.gt_u (i32.add (local.get $a) (i32.const 1536)) (local.get $to)))
          ;; warm streams 1..3 up on the 32 bytes before each (offset 384j - 32)
          (local.set $h1 (i32.const 0))
          (local.set $h2 (i32.const 0))
          (local.set $h3 (i32.const 0))
          (local.set $end (i32.add (local.get $a) (i32.const 32)))
          (loop $warm
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=352 (local.get $a)) (i32.const 2)))))
            (local.set $h2 (i32.add (i32.shl (local.get $h2) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=736 (local.get $a)) (i32.const 2)))))
            (local.set $h3 (i32.add (i32.shl (local.get $h3) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=1120 (local.get $a)) (i32.const 2)))))
            (local.set $a (i32.add (local.get $a) (i32.const 1)))
            (br_if $warm (i32.lt_u (local.get $a) (local.get $end))))
          (local.set $a (i32.sub (local.get $a) (i32.const 32)))
          ;; lockstep: stream j hashes the byte at a + 384j
          (local.set $end (i32.add (local.get $a) (i32.const 384)))
          (loop $lockstep
            (local.set $h0 (i32.add (i32.shl (local.get $h0) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=0 (local.get $a)) (i32.const 2)))))
            (if (i32.lt_u (local.get $h0) (local.get $t))
              (then (return (i32.add (local.get $a) (i32.const 1)))))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=384 (local.get $a)) (i32.const 2)))))
            (br_if $later (i32.lt_u (local.get $h1) (local.get $t)))
            (local.set $h2 (i32.add (i32.shl (local.get $h2) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=768 (local.get $a)) (i32.const 2)))))
            (br_if $later (i32.lt_u (local.get $h2) (local.get $t)))
            (local.set $h3 (i32.add (i32.shl (local.get $h3) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=1152 (local.get $a)) (i32.const 2)))))
            (br_if $later (i32.lt_u (local.get $h3) (local.get $t)))
            (local.set $a (i32.add (local.get $a) (i32.const 1)))
            (br_if $lockstep (i32.lt_u (local.get $a) (local.get $end))))
          ;; no cut in the block: stream 3 ended on its last byte with the exact hash
          (local.set $h0 (local.get $h3))
          (local.set $a (i32.add (local.get $a) (i32.const 1152)))
          (br $block)))
      ;; A later stream hit, so there is a cut at or before that byte, but an earlier stream may
      ;; still hit first: go on from stream 0's position with the plain loop, which stops at the
      ;; first cut (this costs at most one block, and only when the cut is near).
      (return (call $seq (i32.add (local.get $a) (i32.const 1)) (local.get $to) (local.get $t) (local.get $h0))))
    (call $seq (local.get $a) (local.get $to) (local.get $t) (local.get $h0)))

  ;; Phase 2: blocks of 2 streams x 256 bytes, then $seq. Same contract as $seq.
  (func $scan2 (param $a i32) (param $to i32) (param $t i32) (param $h0 i32) (result i32)
    (local $h1 i32) (local $end i32)
    (block $rest
      (block $later
        (loop $block
          (br_if $rest (i32.gt_u (i32.add (local.get $a) (i32.const 512)) (local.get $to)))
          (local.set $h1 (i32.const 0))
          (local.set $end (i32.add (local.get $a) (i32.const 32)))
          (loop $warm
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=224 (local.get $a)) (i32.const 2)))))
            (local.set $a (i32.add (local.get $a) (i32.const 1)))
            (br_if $warm (i32.lt_u (local.get $a) (local.get $end))))
          (local.set $a (i32.sub (local.get $a) (i32.const 32)))
          (local.set $end (i32.add (local.get $a) (i32.const 256)))
          (loop $lockstep
            (local.set $h0 (i32.add (i32.shl (local.get $h0) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=0 (local.get $a)) (i32.const 2)))))
            (if (i32.lt_u (local.get $h0) (local.get $t))
              (then (return (i32.add (local.get $a) (i32.const 1)))))
            (local.set $h1 (i32.add (i32.shl (local.get $h1) (i32.const 1))
              (i32.load (i32.shl (i32.load8_u offset=256 (local.get $a)) (i32.const 2)))))
            (br_if $later (i32.lt_u (local.get $h1) (local.get $t)))
            (local.set $a (i32.add (local.get $a) (i32.const 1)))
            (br_if $lockstep (i32.lt_u (local.get $a) (local.get $end))))
          (local.set $h0 (local.get $h1))
          (local.set $a (i32.add (local.get $a) (i32.const 256)))
          (br $block)))
      (return (call $seq (i32.add (local.get $a) (i32.const 1)) (local.get $to) (local.get $t) (local.get $h0))))
    (call $seq (local.get $a) (local.get $to) (local.get $t) (local.get $h0)))

  ;; Length of the first chunk of [p, p+n): nextCut in chunker.ts.
  (func $next (param $p i32) (param $n i32) (result i32)
    (local $normal i32) (local $r i32)
    (if (i32.le_u (local.get $n) (global.get $min)) (then (return (local.get $n))))
    (if (i32.gt_u (local.get $n) (global.get $max)) (then (local.set $n (global.get $max))))
    (local.set $normal
      (select (local.get $n) (global.get $avg) (i32.lt_u (local.get $n) (global.get $avg))))
    (local.set $r (call $scan4
      (i32.add (local.get $p) (global.get $min))
      (i32.add (local.get $p) (local.get $normal))
      (global.get $tSmall) (i32.const 0)))
    (if (local.get $r) (then (return (i32.sub (local.get $r) (local.get $p)))))
    (local.set $r (call $scan2
      (i32.add (local.get $p) (local.get $normal))
      (i32.add (local.get $p) (local.get $n))
      (global.get $tLarge) (global.get $hash)))
    (if (local.get $r) (then (return (i32.sub (local.get $r) (local.get $p)))))
    (local.get $n))

  ;; Chunker.cut: writes the end offsets of the chunks of [$in, $in+len) at $out, returns how many.
  ;; Unless final, stops once fewer than max bytes remain (a later read could move the cut).
  (func (export "cut") (param $len i32) (param $final i32) (result i32)
    (local $pos i32) (local $count i32)
    (block $done
      (loop $more
        (br_if $done (i32.ge_u (local.get $pos) (local.get $len)))
        (br_if $done (i32.and (i32.eqz (local.get $final))
          (i32.lt_u (i32.sub (local.get $len) (local.get $pos)) (global.get $max))))
        (local.set $pos (i32.add (local.get $pos)
          (call $next (i32.add (global.get $in) (local.get $pos))
                      (i32.sub (local.get $len) (local.get $pos)))))
        (i32.store (i32.add (global.get $out) (i32.shl (local.get $count) (i32.const 2)))
          (local.get $pos))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br $more)))
    (local.get $count))
)
