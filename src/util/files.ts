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
