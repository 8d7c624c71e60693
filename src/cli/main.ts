import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PaqueteError, EXIT } from '../errors.js';
import { applyOutputMode } from './common.js';
import { reportError } from './output.js';

/**
 * Each command's module, loaded only when needed: a run of one command loads that command's
 * code, not every other one's (the whole CLI took ~0.55 s to load here, sync's part ~0.25 s).
 * Help with no command, or an unknown one, loads them all to list them and suggest the nearest.
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

/** The modules of the command named in `args`, or of all commands when none is. */
async function commandsFor(args: string[]): Promise<object[]> {
  const named = args.find((a) => !a.startsWith('-'));
  const chosen = named !== undefined && Object.hasOwn(COMMANDS, named) ? [COMMANDS[named]] : Object.values(COMMANDS);
  return Promise.all(chosen.map((load) => load()));
}

/** Parses the command line and runs one command; every failure becomes one line and an exit code. */
export async function main(args: string[]): Promise<number> {
  const parser = yargs(args)
    .scriptName('paquete')
    .usage('$0 <command> [options]\n\nDelta-sync for expensive, intermittent internet.')
    .option('C', { type: 'string', describe: 'run as if started in this directory', global: true })
    .option('json', { type: 'boolean', describe: 'machine-readable output', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print only results and errors', global: true })
    .middleware((argv) => applyOutputMode(argv))
    .command((await commandsFor(args)) as never)
    .demandCommand(1, 'name a command; see paquete --help')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err ?? new PaqueteError('USAGE', msg);
    });
  try {
    await parser.parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    return reportError(e);
  }
}

process.exitCode = await main(hideBin(process.argv));

