/**
 * A remote URL may carry a user and password (`https://alice:s3cret@mirror.example/`): the
 * config keeps them to connect, and nothing paquete shows may repeat them (a terminal shared on
 * a screen, a --json log, the catalog page serve gives the whole LAN). Every sink of text a user
 * or a client sees passes through here: the CLI's output (src/cli/output.ts) and serve's pages
 * and error answers, so a message built anywhere, even one quoting a library's error, is safe.
 */

/**
 * `text` with the user-information part of every URL in it replaced by `***`. Greedy up to the
 * last `@` before the host: a password typed with a raw `@` in it is hidden whole.
 */
export const redactCredentials = (text: string): string => text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s?#]*@/giu, '$1***@');
