/**
 * Where LesionFuse may write a folder of outputs. A command that replaces a folder (a bundle, a segment run)
 * asks `claimOutputFolder` first: a new or empty folder, or one LesionFuse made (the caller says how to
 * recognise its own), may be replaced; a folder holding anything else is refused unless the user passes the
 * force flag; and a folder that holds one of the command's own inputs is refused always, so a command can
 * never delete the model or images it reads.
 */
import { existsSync, promises as fs, readdirSync, realpathSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, resolve, sep } from 'node:path';
import { LesionFuseError } from './errors.js';

export interface ClaimOptions {
  /**
   * The files in an existing folder that are not LesionFuse's own output of this kind: [] when the folder holds
   * only such output (safe to replace), null when it is not such output at all.
   */
  foreign: (dir: string) => string[] | null;
  /** The user asked to replace whatever is there. */
  force?: boolean;
  /** The command's flag that means `force`, named in the refusal (default '--force'). */
  forceFlag?: string;
  /** What the command makes, for messages, e.g. 'a bundle'. */
  what: string;
  /** Files or folders the command reads: the output folder may never be one of them or hold one. */
  inputs?: readonly string[];
}

/** The real path of `p`, or of its nearest existing parent joined with the rest (for paths not made yet). */
export function realPathOrParent(p: string): string {
  const abs = resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  if (parent === abs) return abs;
  return resolve(realPathOrParent(parent), abs.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
}

/** True when `inner` is `outer` or lies inside it (both real paths). */
export function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);
}

/**
 * Check that `dest` may be written as a whole folder (and an existing one replaced). Throws a one-line
 * LesionFuseError naming the folder otherwise. Returns true when a folder is already there.
 */
export function claimOutputFolder(dest: string, opts: ClaimOptions): boolean {
  const real = realPathOrParent(dest);
  for (const input of opts.inputs ?? []) {
    const r = realPathOrParent(input);
    if (isWithin(r, real)) {
      throw new LesionFuseError(`is (or holds) ${input}, an input of this command; choose another output folder (it would be replaced)`, { subject: dest });
    }
  }
  if (!existsSync(dest)) return false;
  if (!statSync(dest).isDirectory()) throw new LesionFuseError('exists and is not a folder', { subject: dest });
  if (readdirSync(dest).length === 0 || opts.force) return true;
  const foreign = opts.foreign(dest) ?? readdirSync(dest).sort();
  if (foreign.length === 0) return true;
  const shown = foreign.slice(0, 3).map((f) => `'${f}'`).join(', ');
  throw new LesionFuseError(
    `holds files LesionFuse did not make as ${opts.what} (${shown}${foreign.length > 3 ? ', ...' : ''}); ` +
      `choose a new folder, or pass ${opts.forceFlag ?? '--force'} to replace everything in it`,
    { subject: dest },
  );
}

/**
 * Put the finished folder `tmp` in place of `dest` (claimed first with {@link claimOutputFolder}): renames only,
 * so `dest` is never half-written; an old folder there is removed only after the new one is in place.
 */
export async function swapFolderIn(tmp: string, dest: string): Promise<void> {
  if (existsSync(dest)) {
    if (!statSync(dest).isDirectory()) throw new LesionFuseError('exists and is not a folder', { subject: dest });
    const old = `${dest}.old-${randomBytes(4).toString('hex')}`;
    await fs.rename(dest, old);
    await fs.rename(tmp, dest);
    await fs.rm(old, { recursive: true, force: true });
  } else {
    await fs.rename(tmp, dest);
  }
}
