import { promises as fs, writeFileSync, renameSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Temporary files and folders being written right now: removed by {@link removePendingTemps} on an interrupt. */
const pending = new Set<string>();

/** Note a temporary file or folder that must not outlive an interrupt; returns a function that forgets it. */
export function trackTemp(path: string): () => void {
  pending.add(path);
  return () => pending.delete(path);
}

/**
 * Remove every temporary file or folder still being written (synchronously: called from a signal handler,
 * e.g. the CLI's on SIGINT/SIGTERM, so that an interrupted command leaves no hidden `.tmp` files behind).
 */
export function removePendingTemps(): void {
  for (const p of pending) rmSync(p, { recursive: true, force: true });
  pending.clear();
}

/**
 * Write a file atomically: the bytes go to a temporary file in the same folder,
 * which is then renamed over `path`. A crash never leaves a half-written file and
 * never replaces a good one with a broken one.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const forget = trackTemp(tmp);
  try {
    await fs.writeFile(tmp, data, opts.mode !== undefined ? { mode: opts.mode } : {});
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  } finally {
    forget();
  }
}

/** Synchronous twin of {@link writeFileAtomic}. */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** JSON with a trailing newline, written atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
