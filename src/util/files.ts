import { promises as fs, type Dirent } from 'node:fs';
import { join } from 'node:path';

/**
 * A directory entry that is a regular file, or a symbolic link to one (followed through realpath). The one rule
 * every folder listing uses (images to segment, datasets, calibration images): a linked image is an image, a
 * FIFO, socket or device is not a file to read.
 */
export async function isRegularFile(dir: string, e: Dirent): Promise<boolean> {
  if (e.isFile()) return true;
  if (!e.isSymbolicLink()) return false;
  try {
    return (await fs.stat(await fs.realpath(join(dir, e.name)))).isFile();
  } catch {
    return false;
  }
}

/**
 * Regular files under `dir` (symbolic links to files followed, links to folders not: no cycles), hidden entries
 * skipped, sorted by name, at most `depth` folders deep. `skip` leaves out a folder or file by path (e.g. an
 * output folder inside the input). The one folder walk of datasets, `segment` inputs and `audit`.
 */
export async function walkFiles(dir: string, depth: number, skip?: (path: string) => Promise<boolean>): Promise<string[]> {
  const out: string[] = [];
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (depth > 0 && !(skip && (await skip(p)))) out.push(...(await walkFiles(p, depth - 1, skip)));
    } else if ((await isRegularFile(dir, e)) && !(skip && (await skip(p)))) out.push(p);
  }
  return out;
}
