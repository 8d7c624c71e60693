import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PaqueteError, EXIT } from '../errors.js';
import { applyOutputMode } from './common.js';
import { reportError } from './output.js';
import { keygen } from './keygen.js';
import { publishCommand } from './publish.js';
import { initCommand } from './init.js';
import { syncCommand } from './sync.js';
import { statusCommand } from './status.js';
import { verifyCommand } from './verify.js';
import { remoteCommand } from './remote.js';
import { gcCommand } from './gc.js';
import { serveCommand } from './serve.js';
import { haveCommand } from './have.js';
import { exportCommand } from './export.js';
import { importCommand } from './import.js';
import { seedCommand } from './seed.js';
import { gitExportCommand } from './git-export.js';

/** Parses the command line and runs one command; every failure becomes one line and an exit code. */
export async function main(args: string[]): Promise<number> {
  const parser = yargs(args)
    .scriptName('paquete')
    .usage('$0 <command> [options]\n\nDelta-sync for expensive, intermittent internet.')
    .option('C', { type: 'string', describe: 'run as if started in this directory', global: true })
    .option('json', { type: 'boolean', describe: 'machine-readable output', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print only results and errors', global: true })
    .middleware((argv) => applyOutputMode(argv))
    .command(keygen as never)
    .command(publishCommand as never)
    .command(initCommand as never)
    .command(syncCommand as never)
    .command(statusCommand as never)
    .command(verifyCommand as never)
    .command(remoteCommand as never)
    .command(gcCommand as never)
    .command(serveCommand as never)
    .command(haveCommand as never)
    .command(exportCommand as never)
    .command(importCommand as never)
    .command(seedCommand as never)
    .command(gitExportCommand as never)
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

