import { placedSize } from '../snapshot/snapshot.js';
import { formatSize } from '../util/size.js';
import { describeToFetch } from '../sync/forecast.js';
import { escapeHtml, urlPath } from './http.js';
import { DistInfo, MirrorState } from './mirror.js';
import { sourceWant, syncCommand } from './missing.js';
import type { GitRef, GitRefs } from '../sources/git-refs.js';

/**
 * The page at `/`: every source of the mirror, what it holds, what is complete and what is
 * still missing, with the commands that use it. Plain HTML and a little CSS: no script, no
 * external resource, readable on a phone and in a text browser. Pure.
 */
export interface CatalogContext {
  /** http://host:port as the browser reached us, for the commands shown. */
  origin: string;
  root: string;
  remote: string;
  /** Branches and tags of each git source whose refs file is here. */
  gitRefs?: Map<string, GitRefs>;
}

export function catalogPage(state: MirrorState, ctx: CatalogContext): string {
  const e = escapeHtml;
  const parts: string[] = [];
  if (!state.snapshot || !state.completeness) {
    parts.push(`<p class="note">Nothing synced yet into <code>${e(ctx.root)}</code>. Run <code>paquete sync -C ${e(ctx.root)}</code> where there is internet.</p>`);
    return layout(parts.join('\n'), ctx);
  }
  const { completeness, entry } = state;
  const t = completeness.total;
  parts.push(
    `<p class="summary">Snapshot <code>${e(entry!.name.slice(0, 12))}</code> (serial ${state.serial}, published ${e(entry!.created.slice(0, 10))}) from <code>${e(ctx.remote)}</code>:
    <strong>${t.complete} of ${t.files} files complete</strong>, ${e(formatSize(t.bytes))} in all${t.missingSize ? `, <span class="missing">${e(formatSize(t.missingSize))} missing</span>` : ', nothing missing'}.</p>`,
  );
  // The one figure on the wire, as the last sync, dry run or status made it for this snapshot;
  // the sizes in the table are the files' own.
  if (t.missingSize) {
    const f = state.toFetch;
    parts.push(
      f
        ? `<p class="summary">To fetch: <strong>${e(describeToFetch(f))}</strong> (a sync with no budget, as last planned here${f.estimate ? `; an estimate: ${e(f.estimate)}` : ''}): <code>${e(syncCommand(ctx.root))}</code></p>`
        : `<p class="summary">What fetching it costs on the wire: <code>${e(syncCommand(ctx.root).replace(' sync ', ' status '))}</code> or <code>${e(`${syncCommand(ctx.root)} --dry-run`)}</code> says.</p>`,
    );
  }
  parts.push('<table class="sources"><thead><tr><th>source</th><th>kind</th><th>files</th><th>size</th><th>state</th><th>use</th></tr></thead><tbody>');
  for (const s of completeness.sources) {
    const done = s.complete === s.files;
    parts.push(
      `<tr id="src-${e(s.name)}"><td><a href="#${e(s.kind)}-${e(s.name)}">${e(s.name)}</a></td><td>${e(s.kind || 'tree')}</td><td>${s.complete}/${s.files}</td>` +
        `<td class="num">${e(formatSize(s.bytes))}</td><td class="${done ? 'ok' : 'missing'}">${done ? 'complete' : `${e(formatSize(s.missingSize))} missing`}</td><td>${useLink(s.kind, s.name, ctx)}</td></tr>`,
    );
  }
  parts.push('</tbody></table>');

  for (const s of completeness.sources) {
    parts.push(`<section id="${e(s.kind)}-${e(s.name)}"><h2>${e(s.name)} <small>${e(s.kind || 'tree')}</small></h2>`);
    if (s.kind === 'pypi') parts.push(pypiSection(state, s.name, ctx));
    else if (s.kind === 'docs') parts.push(`<p>Read it: <a href="/docs/${urlPath(s.name)}/">/docs/${e(s.name)}/</a></p>`);
    else if (s.kind === 'git') parts.push(`<p><code>git clone ${e(ctx.origin)}/git/${e(s.name)}.git</code></p>${gitRefsList(ctx.gitRefs?.get(s.name))}`);
    else parts.push(`<p>Browse: <a href="/files/${urlPath(s.name)}/">/files/${e(s.name)}/</a></p>`);
    // A partial index (sync --want) does not describe what was not wanted: say so, with the want.
    const left = state.notIndexed?.get(s.name);
    const notIndexed = left ? `; not indexed here (not wanted): ${left.files} files, ${e(formatSize(left.bytes))}: <code>${e(syncCommand(ctx.root, sourceWant(s.kind, s.name)))}</code>` : '';
    parts.push(`<p class="detail">${s.complete} of ${s.files} files, ${e(formatSize(s.completeBytes))} of ${e(formatSize(s.bytes))} here${s.missingSize ? `; ${e(formatSize(s.missingSize))} of files missing: <code>${e(syncCommand(ctx.root, sourceWant(s.kind, s.name)))}</code>` : ''}${notIndexed}.</p></section>`);
  }
  return layout(parts.join('\n'), ctx);
}

/** Branches (HEAD's first) and tags (newest names last, as git lists them) of a git source. */
function gitRefsList(refs: GitRefs | undefined): string {
  if (!refs) return '';
  const e = escapeHtml;
  const short = (r: GitRef) => r.name.replace(/^refs\/(heads|tags)\//, '');
  const branches = refs.refs.filter((r) => r.name.startsWith('refs/heads/')).sort((a, b) => Number(b.name === refs.head) - Number(a.name === refs.head));
  const tags = refs.refs.filter((r) => r.name.startsWith('refs/tags/'));
  const list = (rs: GitRef[]) => rs.map((r) => `<code title="${e(r.oid)}">${e(short(r))}</code>${r.name === refs.head ? ' (HEAD)' : ''}`).join(', ');
  return `<p class="detail">${branches.length} branch${branches.length === 1 ? '' : 'es'}: ${list(branches) || '—'}</p>` +
    `<p class="detail">${tags.length} tag${tags.length === 1 ? '' : 's'}: ${list(tags) || '—'}</p>`;
}

function useLink(kind: string, name: string, ctx: CatalogContext): string {
  const e = escapeHtml;
  if (kind === 'pypi') return `<a href="/simple/">pip index</a>`;
  if (kind === 'docs') return `<a href="/docs/${urlPath(name)}/">read</a>`;
  if (kind === 'git') return `<code>${e(ctx.origin)}/git/${e(name)}.git</code>`;
  return `<a href="/files/${urlPath(name)}/">browse</a>`;
}

function pypiSection(state: MirrorState, source: string, ctx: CatalogContext): string {
  const e = escapeHtml;
  const rows: string[] = [];
  const projects = [...state.allDists].filter(([, list]) => list.some((d) => d.source === source)).sort(([a], [b]) => (a < b ? -1 : 1));
  if (projects.length === 0) return '<p>No wheels or sdists in this source.</p>';
  for (const [name, list] of projects) {
    const versions = new Map<string, DistInfo[]>();
    for (const d of list.filter((x) => x.source === source)) versions.set(d.dist.version, [...(versions.get(d.dist.version) ?? []), d]);
    const cells = [...versions].map(([v, files]) => {
      const complete = files.filter((f) => state.completeness!.complete.has(f.file.path));
      const size = files.reduce((n, f) => n + placedSize(f.file), 0);
      const cls = complete.length === files.length ? 'ok' : complete.length ? 'partial' : 'missing';
      const title = files.map((f) => `${f.fileName}${state.completeness!.complete.has(f.file.path) ? '' : ' (missing)'}`).join('\n');
      const yanked = files.every((f) => f.yanked !== false) ? ', yanked' : '';
      return `<span class="v ${cls}" title="${e(title)}">${e(v)} <small>${e(formatSize(size))}${cls === 'ok' ? '' : cls === 'partial' ? ', partly here' : ', missing'}${yanked}</small></span>`;
    });
    const here = state.projects.has(name);
    rows.push(`<tr><td>${here ? `<a href="/simple/${encodeURIComponent(name)}/">${e(name)}</a>` : e(name)}</td><td>${cells.join(' ')}</td></tr>`);
  }
  return `<p><code>pip install --index-url ${e(ctx.origin)}/simple/ NAME</code></p>
<table class="projects"><thead><tr><th>project</th><th>versions</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>`;
}

function layout(body: string, ctx: CatalogContext): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>paquete mirror</title>
<style>
body { font: 16px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 60em; padding: 0 1em; color: #222; background: #fdfdfb; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h2 small { color: #777; font-weight: normal; }
table { border-collapse: collapse; width: 100%; margin: .6em 0; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f3f3ee; } td.num { text-align: right; white-space: nowrap; }
code { background: #f1f1ec; padding: 0 .25em; border-radius: 3px; }
.ok { color: #1a6b2a; } .missing { color: #a33; } .partial { color: #a66b00; }
.v { display: inline-block; margin: 0 .8em .2em 0; white-space: nowrap; } .v small { color: #666; }
.summary { font-size: 1.05em; } .note { background: #fff6dd; padding: .6em; }
footer { margin-top: 2em; color: #777; font-size: .9em; }
</style>
</head>
<body>
<h1>paquete mirror</h1>
${body}
<footer>Served by <code>paquete serve</code> from <code>${escapeHtml(ctx.root)}</code>. Layout: <a href="/simple/">/simple/</a> (pip), /docs/NAME/, /git/NAME.git, /files/NAME/, <a href="/remote/manifest.json">/remote/</a> (for <code>paquete init ${escapeHtml(ctx.origin)}/remote/</code>).</footer>
</body>
</html>
`;
}
