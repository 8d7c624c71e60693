/**
 * What a script (or a person) sees of every outcome, from the built CLI run as a subprocess:
 * exit codes as the contract has them, one actionable line on stderr, suggestions for typos,
 * --json as exactly one object on stdout (errors included), -q silent on success, the dry
 * run's summary per source, and the lock of a copied folder.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, onCleanup, runPaquete, tmpDir, paqueteExpecting } from './helpers/tmp.js';
import { pseudoRandom, writeTree } from './helpers/trees.js';
import { nearest } from '../src/util/nearest.js';
import { parseLock } from '../src/workdir/lock.js';

after(cleanupAll);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const paquete = paqueteExpecting();

/** The one JSON object --json printed: stdout must parse as exactly one value. */
function oneObject(r: Run): Record<string, any> {
  const v = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(typeof v, 'object');
  assert.equal(v.schema, 'paquete/1');
  assert.equal(v.exit, r.code, 'the object says the exit code the process gave');
  assert.equal(v.ok, r.code === 0);
  return v;
}

/** A usage error: exit 2, one line (plus a hint) on stderr, no stack trace, nothing on stdout. */
function usage(r: Run, message: RegExp, hint?: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^paquete: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  const [first, second] = r.stderr.split('\n');
  assert.match(first, message);
  if (hint) assert.match(second ?? '', hint);
}

let dir: string;
before(async () => {
  dir = await tmpDir('paquete-cli-errors-');
  writeTree(join(dir, 'site'), { 'a.txt': 'a\n', 'docs/b.txt': 'b\n', 'big.bin': pseudoRandom(300_000, 5) });
  writeTree(join(dir, 'lib'), { 'x.py': 'x = 1\n', 'y.py': 'y = 2\n' });
  await paquete(['keygen', '--out', 'pub.key'], dir);
  await paquete(['publish', 'site', 'lib', '--to', 'remote', '--key', 'pub.key'], dir);
  await paquete(['init', 'remote', 'work', '--trust', 'pub.key.pub'], dir);
});

describe('sizes are parsed with the option named in the message, exit 2', () => {
  test('--budget 0 is bad input, not a session the budget stopped', async () => {
    usage(await paquete(['sync', '-C', 'work', '--budget', '0'], dir, 2), /--budget must be more than 0/, /300MB/);
  });
  test('--budget -5MB is "not a size", not "Unknown arguments: 5, M, B"', async () => {
    const r = await paquete(['sync', '-C', 'work', '--budget', '-5MB'], dir, 2);
    usage(r, /--budget: not a size: "-5MB"; a size cannot be negative/);
    assert.doesNotMatch(r.stderr, /Unknown/);
  });
  test('--budget with no value names the option', async () => {
    usage(await paquete(['sync', '-C', 'work', '--budget'], dir, 2), /^paquete: --budget needs a value$/, /300MB/);
    usage(await paquete(['sync', '-C', 'work', '--budget', '--dry-run'], dir, 2), /--budget needs a value/);
  });
  test('--max-size and --avg-chunk too, before any work', async () => {
    usage(await paquete(['export', '-C', 'work', '--to', 'stick', '--max-size', 'lots'], dir, 2), /--max-size: not a size: "lots"/);
    usage(await paquete(['publish', 'site', '--to', 'r2', '--key', 'pub.key', '--avg-chunk', '-1'], dir, 2), /--avg-chunk: not a size/);
  });
});

describe('help and suggestions', () => {
  test('paquete help sync shows sync\'s help', async () => {
    const r = await paquete(['help', 'sync'], dir);
    assert.match(r.stdout, /^paquete sync\n/);
    assert.match(r.stdout, /--budget/);
    assert.doesNotMatch(r.stdout + r.stderr, /have/);
    assert.match((await paquete(['help'], dir)).stdout, /Commands:/);
  });
  test('a mistyped option gets the nearest one', async () => {
    usage(await paquete(['sync', '-C', 'work', '--budgte', '5MB'], dir, 2), /^paquete: unknown option --budgte$/, /did you mean --budget\?/);
    usage(await paquete(['sync', '-C', 'work', '--dryrun'], dir, 2), /unknown option --dryrun/, /did you mean --dry-run\?/);
    usage(await paquete(['sync', '-C', 'work', '--zzzzzz'], dir, 2), /unknown option --zzzzzz/, /^\s+paquete sync --help lists the options$/);
  });
  test('a mistyped command, and help for one that does not exist', async () => {
    usage(await paquete(['synk'], dir, 2), /unknown command "synk"/, /did you mean paquete sync\?/);
    usage(await paquete(['help', 'statsu'], dir, 2), /unknown command "statsu"/, /did you mean paquete status\?/);
  });
  test('nearest: a swap is one step, a prefix counts, far words do not', () => {
    assert.equal(nearest('budgte', ['budget', 'want']), 'budget');
    assert.equal(nearest('dry', ['dry-run', 'budget']), 'dry-run');
    assert.equal(nearest('xyz', ['budget', 'want']), undefined);
  });
});

describe('--want that matches nothing is bad input (exit 2), checked before any content is fetched', () => {
  test('a glob or source name that matches no file', async () => {
    usage(await paquete(['sync', '-C', 'work', '--want', 'nosuch/**'], dir, 2), /nothing in the snapshot matches --want nosuch\/\*\*/, /paquete status lists the sources/);
    usage(await paquete(['sync', '-C', 'work', '--want', 'docs:site'], dir, 2), /the mirror has no docs source named site \(it has tree:site\)/);
  });
  test('one want of several that matches nothing is named, and nothing is placed', async () => {
    const r = await paquete(['sync', '-C', 'work', '--want', 'lib', '--want', 'sitee'], dir, 2);
    usage(r, /^paquete: --want sitee matches no file of the snapshot$/);
    const st = oneObject(await paquete(['status', '-C', 'work', '--json'], dir));
    assert.equal(st.total.complete, 0, 'the matching want was not synced either');
  });
  test('with --json the error is the one object', async () => {
    const r = await paquete(['sync', '-C', 'work', '--want', 'nosuch', '--json'], dir, 2);
    const o = oneObject(r);
    assert.equal(o.command, 'sync');
    assert.deepEqual(Object.keys(o.error).sort(), ['code', 'hint', 'message']);
    assert.equal(o.error.code, 'USAGE');
  });
});

describe('--json: every outcome is one object on stdout', () => {
  test('usage errors, before any command runs', async () => {
    for (const args of [['sync', '--budget', '-5MB'], ['synk'], ['sync', '--budgte', '1'], ['sync', '--budget']]) {
      const r = await paquete([...args, '-C', 'work', '--json'], dir, 2);
      const o = oneObject(r);
      assert.equal(o.error.code, 'USAGE', args.join(' '));
      assert.match(o.error.message, /./);
    }
  });
  test('an error in the command (not a working directory)', async () => {
    const o = oneObject(await paquete(['status', '--json'], join(dir, 'site'), 2));
    assert.equal(o.command, 'status');
    assert.equal(o.error.code, 'NOT_A_WORKDIR');
    assert.match(o.error.hint, /paquete init/);
  });
  test('status: remote without credentials, snapshot date; remote list is an object', async () => {
    const cfgPath = join(dir, 'work/.paquete/config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    const saved = JSON.stringify(cfg, null, 2);
    cfg.remotes.push({ location: 'https://ann:s3cret@mirror.example/paquete/' });
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
    try {
      const st = oneObject(await paquete(['status', '-C', 'work', '--json'], dir));
      assert.equal(st.remote, join(dir, 'remote'));
      assert.deepEqual(st.remotes, [join(dir, 'remote'), 'https://***@mirror.example/paquete/']);
      assert.ok(!Number.isNaN(Date.parse(st.created)), `created: ${st.created}`);
      assert.equal(st.synced, true);
      const list = await paquete(['remote', 'list', '-C', 'work', '--json'], dir);
      assert.doesNotMatch(list.stdout, /s3cret/);
      assert.equal(oneObject(list).remotes.length, 2);
      assert.doesNotMatch((await paquete(['status', '-C', 'work'], dir)).stdout + (await paquete(['remote', 'list', '-C', 'work'], dir)).stdout, /s3cret/);
    } finally {
      writeFileSync(cfgPath, saved);
    }
  });
});

describe('-q prints nothing on success', () => {
  test('sync, a dry run, publish, verify, gc, have', async () => {
    await paquete(['init', 'remote', 'quiet', '--trust', 'pub.key.pub', '-q'], dir).then((r) => assert.equal(r.stdout + r.stderr, ''));
    for (const args of [['sync', '--dry-run'], ['sync'], ['verify'], ['gc'], ['have', '--out', join(dir, 'q.have')]]) {
      const r = await paquete([...args, '-C', 'quiet', '-q'], dir);
      assert.equal(r.stdout + r.stderr, '', `${args.join(' ')} -q printed: ${r.stdout}${r.stderr}`);
    }
    const p = await paquete(['publish', 'site', '--to', join(dir, 'r3'), '--key', 'pub.key', '-q'], dir);
    assert.equal(p.stdout + p.stderr, '');
  });
  test('errors still reach stderr; status still answers', async () => {
    const r = await paquete(['sync', '-C', 'quiet', '-q', '--want', 'nope'], dir, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--want nope/);
    assert.match((await paquete(['status', '-C', 'quiet', '-q'], dir)).stdout, /total: /);
  });
});

describe('the dry run', () => {
  test('prints a line per source, and every file only with --list', async () => {
    await paquete(['init', 'remote', 'dry', '--trust', 'pub.key.pub'], dir);
    const r = await paquete(['sync', '-C', 'dry', '--dry-run'], dir);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^plan for snapshot [0-9a-f]{12}/);
    assert.match(lines[1], /^ {2}lib +2 to complete, 0 to advance, 0 left, 0 already here/);
    assert.match(lines[2], /^ {2}site +3 to complete/);
    assert.match(lines[3], /^would fetch /);
    assert.doesNotMatch(r.stdout, /a\.txt/);
    const listed = await paquete(['sync', '-C', 'dry', '--dry-run', '--list'], dir);
    for (const f of ['site/a.txt', 'site/docs/b.txt', 'site/big.bin', 'lib/x.py', 'lib/y.py']) assert.match(listed.stdout, new RegExp(`complete {2}${f.replace('.', '\\.')} `));
  });
});

describe('the lock', () => {
  test('serve takes no lock, only a reader registration; a copy of the folder made while it runs is not held by it', async () => {
    await paquete(['init', 'remote', 'orig', '--trust', 'pub.key.pub'], dir);
    await paquete(['sync', '-C', 'orig'], dir);
    const serve = runPaquete(['serve', '-C', 'orig', '--port', '0', '--json'], { cwd: dir });
    onCleanup(async () => {
      serve.kill('SIGKILL');
      await serve.done;
    });
    await serve.waitForOutput(/"url"/, { stream: 'stdout' });
    assert.equal(existsSync(join(dir, 'orig/.paquete/lock')), false, 'serve holds no lock');
    const registration = join(dir, `orig/.paquete/readers/${serve.pid}`);
    const reader = parseLock(readFileSync(registration, 'utf8'));
    assert.equal(reader.pid, serve.pid);
    assert.match(reader.dir ?? '', /^\d+:\d+$/);
    assert.match(reader.what, /^serve \d+$/);
    cpSync(join(dir, 'orig'), join(dir, 'copy'), { recursive: true });
    // Beside serve: status works; what rewrites the store under serve says who reads.
    await paquete(['status', '-C', 'orig'], dir);
    assert.match((await paquete(['verify', '--repair', '-C', 'orig'], dir, 1)).stderr, /serve \(pid \d+\) is reading this directory/);
    // The copy carries the registration, which names another directory: stale there, removed.
    await paquete(['verify', '--repair', '-C', 'copy'], dir);
    assert.equal(existsSync(join(dir, `copy/.paquete/readers/${serve.pid}`)), false);
    // A lock of the older form, with no directory in it, is judged by its pid alone: held, and
    // status reads beside it.
    writeFileSync(join(dir, 'copy/.paquete/lock'), `${serve.pid} sync\n`);
    assert.match((await paquete(['gc', '-C', 'copy'], dir, 1)).stderr, /another paquete command is working here/);
    await paquete(['status', '-C', 'copy'], dir);
    rmSync(join(dir, 'copy/.paquete/lock'));
    // Stopping serve with Ctrl-C (or SIGTERM) is its normal end: exit 0, registration removed.
    serve.kill('SIGINT');
    assert.equal((await serve.done).code, 0);
    assert.equal(existsSync(registration), false);
  });
});
