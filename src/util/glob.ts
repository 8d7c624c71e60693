/**
 * `--want` patterns: `*` matches within one path part, `**` across parts, `?` one character.
 * A pattern without wildcards names a file or a whole directory (a source name brings the
 * whole source). Pure.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}(?:/.*)?$`);
}

export function matcher(patterns: string[]): (path: string) => number {
  const res = patterns.map(globToRegExp);
  /** Index of the first pattern that matches, or -1. */
  return (path) => res.findIndex((r) => r.test(path));
}
