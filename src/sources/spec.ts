import { PaqueteError } from '../errors.js';
import { basename, resolve } from 'node:path';
import { isSafeSourceName } from '../snapshot/paths.js';

/** The kinds of source `publish` understands. Only `tree` is chunked as plain files for now. */
export const SOURCE_KINDS = ['tree', 'pypi', 'git', 'docs'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

export interface SourceSpec {
  kind: SourceKind;
  name: string;
  path: string;
}

/** Parses `[KIND:][NAME=]PATH`. Pure. */
export function parseSourceSpec(text: string): SourceSpec {
  let rest = text;
  let kind: SourceKind = 'tree';
  const k = /^([a-z]+):(?!\/\/)/.exec(rest);
  if (k && (SOURCE_KINDS as readonly string[]).includes(k[1])) {
    kind = k[1] as SourceKind;
    rest = rest.slice(k[0].length);
  } else if (k && k[1].length > 1) {
    throw new PaqueteError('USAGE', `unknown source kind "${k[1]}" in "${text}"`, `use one of ${SOURCE_KINDS.join(', ')}`);
  }
  let name: string | undefined;
  const eq = /^([A-Za-z0-9._+-]+)=/.exec(rest);
  if (eq) {
    name = eq[1];
    rest = rest.slice(eq[0].length);
  }
  if (!rest) throw new PaqueteError('USAGE', `source "${text}" has no path`);
  name ??= basename(resolve(rest));
  if (!isSafeSourceName(name)) {
    throw new PaqueteError('USAGE', `"${name}" cannot name a source`, 'give a name with NAME=PATH: 1-100 letters, digits, . _ + - (and not .paquete in any spelling)');
  }
  return { kind, name, path: rest };
}
