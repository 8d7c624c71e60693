import { openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { PaqueteError } from '../errors.js';

/**
 * One command at a time per working directory. The lock file holds the owner's pid; a lock whose
 * process is gone (kill -9, power loss) is stale and taken over, so a crash never leaves the
 * user locked out.
 */
export function acquireLock(path: string, what: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid} ${what}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = '';
      try {
        owner = readFileSync(path, 'utf8').trim();
      } catch {
        continue;
      }
      const pid = Number(owner.split(' ')[0]);
      if (pid > 0 && pid !== process.pid && alive(pid)) {
        throw new PaqueteError('LOCKED', `another paquete command is working here (pid ${pid}: ${owner.split(' ').slice(1).join(' ') || 'unknown'})`, 'wait for it to finish, or stop it');
      }
      try {
        unlinkSync(path);
      } catch {
        /* raced with another taker; retry */
      }
    }
  }
  throw new PaqueteError('LOCKED', `cannot take the lock ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
