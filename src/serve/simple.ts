import { placedSize } from '../snapshot/snapshot.js';
import { escapeHtml, urlPath } from './http.js';
import { DistInfo, ProjectMetadata } from './mirror.js';

/**
 * The PyPI simple repository API, as pages: PEP 503 HTML and PEP 691 JSON, API version 1.1
 * (PEP 700: `versions` and `size`), with PEP 592 yanking, PEP 658/714 metadata and
 * Requires-Python. Pure: the server hands in the distributions and their metadata.
 */
export const API_VERSION = '1.1';
export const SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json';
export const SIMPLE_HTML = 'application/vnd.pypi.simple.v1+html';
export const TEXT_HTML = 'text/html';
/** Offered in this order: with no Accept header, HTML (what a browser and old pips expect). */
export const SIMPLE_TYPES = [TEXT_HTML, SIMPLE_HTML, SIMPLE_JSON];

/**
 * PEP 691's `application/vnd.pypi.simple.latest+json` / `+html` name "the newest API version
 * the server has": version 1 here. The answer carries the real version in its Content-Type, as
 * the PEP requires, so an Accept header naming `latest` is read as naming v1 (it got 406 before).
 */
export const simpleAccept = (accept: string | undefined): string | undefined =>
  accept?.replace(/application\/vnd\.pypi\.simple\.latest\+(json|html)/gi, 'application/vnd.pypi.simple.v1+$1');

/** Where a distribution is served. */
export const packageUrl = (d: DistInfo): string => `/packages/${urlPath(d.file.path)}`;

export function rootJson(names: string[]): string {
  return JSON.stringify({ meta: { 'api-version': API_VERSION }, projects: names.map((name) => ({ name })) });
}

export function rootHtml(names: string[]): string {
  const links = names.map((n) => `    <a href="/simple/${encodeURIComponent(n)}/">${escapeHtml(n)}</a><br>`).join('\n');
  return page('Simple index', links);
}

export interface ProjectFile {
  dist: DistInfo;
  meta: ProjectMetadata;
}

export function projectJson(name: string, files: ProjectFile[]): string {
  const versions = [...new Set(files.map((f) => f.dist.dist.version))];
  return JSON.stringify({
    meta: { 'api-version': API_VERSION },
    name,
    versions,
    files: files.map(({ dist, meta }) => {
      const md = meta.metadataSha256 ? { sha256: meta.metadataSha256 } : false;
      return {
        filename: dist.fileName,
        url: packageUrl(dist),
        hashes: { sha256: dist.sha256 },
        ...(meta.requiresPython ? { 'requires-python': meta.requiresPython } : {}),
        'core-metadata': md,
        'dist-info-metadata': md,
        yanked: dist.yanked,
        size: placedSize(dist.file),
      };
    }),
  });
}

export function projectHtml(name: string, files: ProjectFile[]): string {
  const links = files.map(({ dist, meta }) => {
    const attrs = [`href="${escapeHtml(packageUrl(dist))}#sha256=${dist.sha256}"`];
    if (meta.requiresPython) attrs.push(`data-requires-python="${escapeHtml(meta.requiresPython)}"`);
    if (meta.metadataSha256) {
      attrs.push(`data-dist-info-metadata="sha256=${meta.metadataSha256}"`, `data-core-metadata="sha256=${meta.metadataSha256}"`);
    }
    if (dist.yanked !== false) attrs.push(`data-yanked="${dist.yanked === true ? '' : escapeHtml(dist.yanked)}"`);
    return `    <a ${attrs.join(' ')}>${escapeHtml(dist.fileName)}</a><br>`;
  });
  return page(`Links for ${name}`, links.join('\n'));
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="${API_VERSION}">
    <title>${escapeHtml(title)}</title>
  </head>
  <body>
    <h1>${escapeHtml(title)}</h1>
${body}
  </body>
</html>
`;
}
