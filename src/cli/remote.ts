import type { Argv } from 'yargs';
import { PaqueteError } from '../errors.js';
import { normalizeLocation } from '../remote/open.js';
import { isFreeRemote } from '../workdir/workdir.js';
import { baseDir, GlobalArgs, withWorkDir } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  action: 'list' | 'add' | 'remove';
  url?: string;
  free?: boolean;
  first?: boolean;
}

export const remoteCommand = {
  command: 'remote <action> [url]',
  describe: 'List, add or remove remotes: free ones (a LAN peer, a stick) are read before the paid one',
  builder: (y: Argv) =>
    y
      .positional('action', { choices: ['list', 'add', 'remove'] as const, describe: 'what to do' })
      .positional('url', { type: 'string', describe: 'http(s):// URL or local path' })
      .option('free', { type: 'boolean', describe: 'reading it costs nothing: read first, not counted against --budget (default for local paths)' })
      .option('first', { type: 'boolean', describe: 'put it before the others (default: after the other free ones, before paid ones)' })
      .example('$0 remote add http://192.168.1.20:8080/remote/ --free', "take what a friend's paquete serve has before paying for it")
      .example('$0 remote list', 'the remotes in the order sync reads them'),
  handler: async (argv: Args) => {
    await withWorkDir(argv, 'remote', async (work) => {
      const remotes = work.config.remotes;
      if (argv.action !== 'list') {
        if (!argv.url) throw new PaqueteError('USAGE', `paquete remote ${argv.action} needs a URL or path`);
        const location = normalizeLocation(argv.url, baseDir(argv));
        const at = remotes.findIndex((r) => r.location === location);
        if (argv.action === 'remove') {
          if (at < 0) throw new PaqueteError('USAGE', `${location} is not a remote of this directory`);
          if (remotes.length === 1) throw new PaqueteError('USAGE', 'cannot remove the only remote');
          remotes.splice(at, 1);
        } else {
          if (at >= 0) throw new PaqueteError('USAGE', `${location} is already a remote of this directory`);
          const entry = { location, free: argv.free ?? isFreeRemote({ location }) };
          if (argv.first) remotes.unshift(entry);
          else if (entry.free) remotes.splice(remotes.filter(isFreeRemote).length, 0, entry);
          else remotes.push(entry);
        }
        work.saveConfig();
      }
      for (const r of remotes) out.answer(`${isFreeRemote(r) ? 'free' : 'paid'}  ${r.location}`);
      out.emitJson({ remotes: remotes.map((r) => ({ location: r.location, free: isFreeRemote(r) })) });
    });
  },
};
