import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, tmpDir, paqueteExpecting } from './helpers/tmp.js';

after(cleanupAll);

const paquete = paqueteExpecting();

// Debian's python3.11-doc links _static/jquery.js to /usr/share/javascript: a docs tree as users
// have it. Leaving such links out broke the docs' JavaScript while the catalog said "complete".
test('symbolic links in a source are published as what they name; dangling and looping ones are reported', async () => {
  const dir = await tmpDir('paquete-links-');
  const shared = join(dir, 'usr-share-javascript');
  mkdirSync(join(shared, 'jquery'), { recursive: true });
  writeFileSync(join(shared, 'jquery/jquery.js'), 'window.jQuery = function () {};\n');
  const docs = join(dir, 'html');
  mkdirSync(join(docs, '_static'), { recursive: true });
  mkdirSync(join(docs, 'library'), { recursive: true });
  writeFileSync(join(docs, 'index.html'), '<script src="_static/jquery.js"></script>\n');
  writeFileSync(join(docs, 'library/os.html'), '<p>os</p>\n');
  symlinkSync(join(shared, 'jquery/jquery.js'), join(docs, '_static/jquery.js')); // outside the tree
  symlinkSync('../library/os.html', join(docs, '_static/os-copy.html')); // inside the tree
  symlinkSync(join(shared, 'jquery'), join(docs, '_static/jq')); // a directory
  symlinkSync(join(dir, 'nowhere.js'), join(docs, '_static/gone.js')); // dangling
  symlinkSync('..', join(docs, 'library/up')); // a loop

  await paquete(['keygen', '--out', 'pub.key'], dir);
  const pub = await paquete(['publish', 'docs:py=html', '--to', 'remote', '--key', 'pub.key'], dir);
  assert.match(pub.stdout, /published 3 symbolic links as the files they name/);
  assert.match(pub.stderr, /skipped py\/_static\/gone\.js \(a symbolic link to nothing\)/);
  assert.match(pub.stderr, /skipped py\/library\/up \(a symbolic link that loops back/);

  await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
  await paquete(['sync', '-C', 'work'], dir);
  const placed = (p: string) => {
    const abs = join(dir, 'work/py', p);
    assert.ok(lstatSync(abs).isFile(), `${p} is a plain file in the mirror`);
    return readFileSync(abs, 'utf8');
  };
  assert.equal(placed('_static/jquery.js'), 'window.jQuery = function () {};\n');
  assert.equal(placed('_static/jq/jquery.js'), 'window.jQuery = function () {};\n');
  assert.equal(placed('_static/os-copy.html'), '<p>os</p>\n');
  assert.equal(placed('index.html'), '<script src="_static/jquery.js"></script>\n');
});
