import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PaqueteError, EXIT } from '../errors.js';
import { nearest } from '../util/nearest.js';
import { applyOutputMode, optionError } from './common.js';
import { installInterrupts } from './interrupt.js';
import { interruption, out, printError, reportError } from './output.js';

/**
 * Each command's module, loaded only when needed: a run of one command loads that command's
 * code, not every other one's (the whole CLI took ~0.55 s to load here, sync's part ~0.25 s).
 * Help with no command loads them all to list them.
 */
const COMMANDS: Record<string, () => Promise<object>> = {
  keygen: async () => (await import('./keygen.js')).keygen,
  publish: async () => (await import('./publish.js')).publishCommand,
  init: async () => (await import('./init.js')).initCommand,
  sync: async () => (await import('./sync.js')).syncCommand,
  status: async () => (await import('./status.js')).statusCommand,
  verify: async () => (await import('./verify.js')).verifyCommand,
  remote: async () => (await import('./remote.js')).remoteCommand,
  gc: async () => (await import('./gc.js')).gcCommand,
  serve: async () => (await import('./serve.js')).serveCommand,
  have: async () => (await import('./have.js')).haveCommand,
  export: async () => (await import('./export.js')).exportCommand,
  import: async () => (await import('./import.js')).importCommand,
  seed: async () => (await import('./seed.js')).seedCommand,
  'git-export': async () => (await import('./git-export.js')).gitExportCommand,
};

/** Global options that take a value: the word after them is not the command. */
const GLOBAL_VALUED = new Set(['-C']);

/** Index of the command's name in `args`, or -1. */
function commandAt(args: string[]): number {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--') return -1;
    if (GLOBAL_VALUED.has(args[i])) i++;
    else if (!args[i].startsWith('-')) return i;
  }
  return -1;
}

/**
 * The command line as yargs should see it:
 * - `help CMD` is `CMD --help` (and `help` alone is `--help`), as git and pip have it;
 * - `--budget -5MB` is `--budget=-5MB`: yargs would read `-5MB` as the short flags -5, -M, -B
 *   and say "Unknown arguments: 5, M, B"; joined, the size parser says what is wrong with it.
 */
export function prepareArgs(args: string[]): string[] {
  const a = [...args];
  const at = commandAt(a);
  if (at >= 0 && a[at] === 'help') {
    a.splice(at, 1);
    a.push('--help');
  }
  const joined: string[] = [];
  for (let i = 0; i < a.length; i++) {
    if (/^--[a-z][\w-]*$/i.test(a[i]) && i + 1 < a.length && /^-\d/.test(a[i + 1])) {
      joined.push(`${a[i]}=${a[i + 1]}`);
      i++;
    } else joined.push(a[i]);
  }
  return joined;
}

/** A command name that is none of ours: the nearest one, to suggest. */
function checkCommand(args: string[]): string | undefined {
  const at = commandAt(args);
  if (at < 0) return undefined;
  const name = args[at];
  if (Object.hasOwn(COMMANDS, name)) return name;
  const near = nearest(name, Object.keys(COMMANDS));
  throw new PaqueteError('USAGE', `unknown command "${name}"`, near ? `did you mean paquete ${near}? (paquete --help lists the commands)` : 'paquete --help lists the commands');
}

/**
 * yargs' complaint, made actionable: an unknown option gets the nearest known one ("did you mean
 * --budget?"), every other one the command's help to look at.
 */
function usageError(msg: string, args: string[], known: string[], command: string | undefined): PaqueteError {
  const help = `paquete ${command ? `${command} ` : ''}--help lists the options`;
  const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
  if (unknown) {
    const names = unknown[1].split(', ');
    const flag = names.find((n) => args.some((a) => a === `--${n}` || a.startsWith(`--${n}=`) || a === `-${n}`));
    if (!flag) return new PaqueteError('USAGE', `unexpected argument${names.length > 1 ? 's' : ''}: ${names.join(' ')}`, help);
    const dashes = flag.length === 1 ? '-' : '--';
    const near = nearest(flag, known.filter((k) => k.length > 1 && !/[A-Z]/.test(k)));
    return new PaqueteError('USAGE', `unknown option ${dashes}${flag}`, near ? `did you mean --${near}? (${help})` : help);
  }
  return new PaqueteError('USAGE', msg.replace(/^Not enough non-option arguments: got 0, need at least 1$/, 'name a command'), help);
}

/** The options yargs knows at the point it failed: the command's own and the global ones. */
function knownOptions(parser: object): string[] {
  // Not in yargs' typings, but public at run time (yargs' own completion uses it).
  const get = (parser as { getOptions?: () => { key?: Record<string, unknown> } }).getOptions;
  return Object.keys(get?.call(parser).key ?? {});
}

/**
 * yargs renders the whole help text as each command starts, in case the command asks for it
 * later (cliui and string-width: ~0.1 s here, as much as rsync -a takes over 10k unchanged
 * files). None of ours does: help is rendered when it is shown, never otherwise.
 */
function skipHelpCache(parser: object): void {
  // Not in yargs' typings; public at run time. Absent in another yargs: nothing changes.
  const internal = (parser as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.();
  const usage = internal?.getUsageInstance?.();
  if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => {};
}

/** Parses the command line and runs one command; every failure becomes one line and an exit code. */
export async function main(argv: string[]): Promise<number> {
  const args = prepareArgs(argv);
  applyOutputMode({ json: args.includes('--json'), quiet: args.includes('-q') || args.includes('--quiet') });
  installInterrupts((sig) => printError(interruption(sig)));
  let command: string | undefined;
  try {
    command = checkCommand(args);
    out.command = command ?? null;
    const parser = yargs(args)
      .scriptName('paquete')
      .usage('$0 <command> [options]\n\nDelta-sync for expensive, intermittent internet.')
      .option('C', { type: 'string', describe: 'run as if started in this directory', global: true })
      .option('json', { type: 'boolean', describe: 'one JSON object on stdout, errors included (docs/JSON.md)', global: true })
      .option('quiet', { alias: 'q', type: 'boolean', describe: 'print nothing on success; problems still go to stderr', global: true })
      .middleware((a) => applyOutputMode(a))
      .command((await Promise.all(command ? [COMMANDS[command]()] : Object.values(COMMANDS).map((load) => load()))) as never)
      .demandCommand(1, 'name a command; see paquete --help')
      .strict()
      .help()
      .alias('h', 'help')
      .version()
      .wrap(Math.min(100, process.stdout.columns ?? 100))
      .fail((msg, err) => {
        if (err) throw optionError(err.message) ?? (err.name === 'YError' ? new PaqueteError('USAGE', err.message) : err);
        throw usageError(msg, args, knownOptions(parser), command);
      });
    skipHelpCache(parser);
    await parser.parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    return reportError(e);
  }
}

process.exitCode = await main(hideBin(process.argv));
