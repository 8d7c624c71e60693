/**
 * How many body bytes one request may leave outstanding: a module of its own, so that a sync
 * that never speaks HTTP (a directory, a stick) does not load got and http2-wrapper to read two
 * numbers (src/sync/kill-risk.ts did: 0.24 s of CPU on every command that syncs).
 */

/**
 * The most body bytes one request asks for after a kill (src/sync/kill-risk.ts): 16 KiB. A kill -9
 * loses the bytes the server sent that the process had not landed, and those are at most the
 * rest of the request under way: the server cannot send what was not asked for, however long a
 * loaded machine takes to tear the process (and its sockets) down. Node gives no way to cap a TCP
 * socket's receive window (SO_RCVBUF), which would bound it otherwise, and a relay that counts
 * what it writes (a hotspot's meter, the test's fault proxy) would still count its own send
 * buffer. Measured on nginx behind the fault proxy at 700 kB/s, load average 16-20 on 2 cores
 * (docs/RELIABILITY.md): whole ranges lost 33-82 kB a kill (the kernel closes a dying process's
 * sockets after unmapping its ~140 MB while the sender goes on), 64 KiB pieces 16-49 kB, 16 KiB
 * pieces mostly nothing (a loop of 12-20 kills: 0.4-1.2% beyond one session's bytes). Smaller
 * pieces lose less but move slower, and a slower sync is killed more often. The price is one
 * request head per piece (493 B on nginx: +3.0% on a session), paid only in a sync that follows
 * a kill, and on a link whose round trip is long it caps the rate at 16 KiB a round trip.
 */
export const OUTSTANDING_CAP = 16 << 10;

/**
 * The most body bytes one request asks for when the last sync ended in order: 4 MiB. One request
 * head per 4 MiB (0.01%) and no round trip waited for in between that a park link would feel,
 * while a first kill still loses at most the rest of one piece.
 */
export const OUTSTANDING_CLEAN = 4 << 20;
