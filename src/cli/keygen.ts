import type { Argv } from 'yargs';
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PaqueteError } from '../errors.js';
import { fingerprint, generateKeys, parsePublicKey } from '../snapshot/keys.js';
import { baseDir, GlobalArgs } from './common.js';
import { out } from './output.js';

interface Args extends GlobalArgs {
  out: string;
  force?: boolean;
}

export const keygen = {
  command: 'keygen',
  describe: 'Create a publisher key pair (Ed25519)',
  builder: (y: Argv) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'secret key file; the public key goes to FILE.pub' })
      .option('force', { type: 'boolean', describe: 'overwrite existing key files' })
      .example('$0 keygen --out publisher.key', 'writes publisher.key (keep it secret) and publisher.key.pub (give it to your users)'),
  handler: async (argv: Args) => {
    const secretPath = resolve(baseDir(argv), argv.out);
    const publicPath = `${secretPath}.pub`;
    if (!argv.force && (existsSync(secretPath) || existsSync(publicPath))) {
      throw new PaqueteError('USAGE', `${secretPath} already exists; refusing to overwrite a key`, 'use --force if you really mean it');
    }
    const { secretPem, publicLine } = generateKeys();
    writeFileSync(secretPath, secretPem, { mode: 0o600 });
    writeFileSync(publicPath, publicLine);
    const fp = fingerprint(parsePublicKey(publicLine, publicPath));
    out.result(`wrote ${secretPath} (secret) and ${publicPath}\nkey fingerprint ${fp}`);
    out.emitJson({ secret: secretPath, public: publicPath, fingerprint: fp });
  },
};
