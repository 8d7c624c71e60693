import type { Argv } from 'yargs';
import { PaqueteError } from '../errors.js';
import { startServer } from '../serve/server.js';
import { GlobalArgs, withWorkDir } from './common.js';
import { interruptSignal } from './interrupt.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  port?: number;
  host?: string;
}

export const serveCommand = {
  command: 'serve',
  describe: 'Serve the mirror at home: pip index, git, docs, a catalog page, and the remote layout for LAN peers',
  builder: (y: Argv) =>
    y
      .option('port', { type: 'number', default: 8080, describe: 'TCP port (0: any free port)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0 to share with the LAN)' })
      .example('$0 serve -C mirror', 'then: pip install --index-url http://127.0.0.1:8080/simple/ NAME')
      .example('$0 serve --host 0.0.0.0', 'friends run: paquete init http://YOUR-IP:8080/remote/ DIR'),
  handler: async (argv: Args) => {
    const port = argv.port ?? 8080;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PaqueteError('USAGE', `bad port ${argv.port}`);
    await withWorkDir(argv, 'serve', async (work) => {
      let server;
      try {
        server = await startServer(work, { port, host: argv.host, onWarning: (m) => out.warn(m) });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new PaqueteError('USAGE', `port ${port} is already in use`, 'pick another with --port N (or --port 0 for any)');
        if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new PaqueteError('USAGE', `cannot listen on ${argv.host}:${port} (${code})`);
        throw e;
      }
      out.answer(`serving ${work.root} at ${server.url}/`);
      out.line(`  pip install --index-url ${server.url}/simple/ NAME`);
      out.line(`  paquete init ${server.url}/remote/ DIR      (a friend on the LAN: use --host 0.0.0.0)`);
      out.line('  Ctrl-C to stop');
      out.emitJson({ url: `${server.url}/`, port: server.port, root: work.root });
      // Ctrl-C or SIGTERM is how serve is stopped: it closes and exits 0 (src/cli/interrupt.ts).
      const stop = interruptSignal();
      await new Promise<void>((resolve) => (stop.aborted ? resolve() : stop.addEventListener('abort', () => resolve(), { once: true })));
      await server.close();
      process.exitCode = 0;
      // A reader: no lock, so a sync runs beside it (src/workdir/generation.ts).
    }, { reader: true });
  },
};
