import { NameProblem, nameProblemsOf } from '../snapshot/paths.js';
import { fileTableOf, Snapshot } from '../snapshot/snapshot.js';
import { nameRulesFor } from '../workdir/fs-probe.js';
import { WorkDir } from '../workdir/workdir.js';

/**
 * The files of `snapshot` this working directory's disk cannot hold as distinct, whole files
 * (two names it takes for one, a name FAT/NTFS cannot hold, a name too long), by path. Found
 * before anything is written; sync and placing from the store leave them out and name them,
 * and every other file is placed. Every path here already passed the rules that always apply
 * when the snapshot was decoded.
 */
export function refusedNames(work: WorkDir, snapshot: Snapshot): Map<string, NameProblem> {
  const rules = nameRulesFor(work.meta, work.root);
  return new Map(nameProblemsOf(fileTableOf(snapshot), rules).map((p) => [p.path, p]));
}

/** The words a refused file is reported with beside the others not placed (as the system's ENAMETOOLONG is). */
export const refusalMessage = (p: NameProblem): string => (p.code === 'ENAMETOOLONG' ? 'its name is too long for this disk' : p.reason);

/** Whether a not-placed file's code is one of these refusals (its chunks were not fetched). */
export const isNameRefusal = (code: string): boolean => code === 'ENAMETOOLONG' || code === 'NAME_COLLISION' || code === 'NAME_INVALID';

/** The snapshot without the refused files: what may be planned and placed. */
export const withoutRefused = (snapshot: Snapshot, refused: Map<string, NameProblem>): Snapshot =>
  refused.size ? { ...snapshot, files: snapshot.files.filter((f) => !refused.has(f.path)) } : snapshot;
