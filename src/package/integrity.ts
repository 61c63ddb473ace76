/**
 * What a bundle may name and how its files are read: paths that stay inside, regular files only, checksum
 * lists with each file once. Node built-ins only: bundles carry this module (lib/) so that their runner checks
 * a bundle the same way `lesionfuse package verify` does.
 */
import { existsSync, promises as fs, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { z } from 'zod';
import { LesionFuseError, describeError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';
import { checkSignature, SIGNATURE_FILE } from './signing.js';
import type { KeyObject } from 'node:crypto';
import type { BundleManifest } from './bundle.js';


/**
 * What `npm install` (and a web bundle's `npm run bench`) add to a bundle on the device: not part of the bundle,
 * never listed or checked (npm checks its packages against package-lock.json's integrity hashes).
 */
export const MADE_ON_DEVICE = /^(node_modules(\/|$)|package-lock\.json$|bench\.json$)/;

export const BUNDLE_SCHEMA = 'lesionfuse.bundle/1';
export const WEB_BUNDLE_SCHEMA = 'lesionfuse.web-bundle/1';

/** All files under `dir`, as '/'-separated relative paths, sorted (what npm installs on the device left out). */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (MADE_ON_DEVICE.test(relative(dir, p).split(sep).join('/'))) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join('/'));
      else throw new LesionFuseError(`is ${e.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; a bundle holds only regular files and folders`, { subject: p });
    }
  };
  walk(dir);
  return out.sort();
}

/** A path inside a bundle as checksum lists and manifests may name it: relative, '/'-separated, no '..'. */
export function bundlePathProblem(f: string): string | null {
  if (!f || f.startsWith('/') || /^[A-Za-z]:/.test(f) || f.includes('\\') || f.includes('\0')) return 'is not a relative path inside the bundle';
  if (f.split('/').some((p) => p === '..' || p === '.' || p === '')) return "is not a plain path inside the bundle (no '..', '.' or empty parts)";
  return null;
}

export function parseChecksums(text: string, subject: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new LesionFuseError(`line ${i + 1} is not '<sha256>  <file>'`, { subject });
    const problem = bundlePathProblem(m[2]!);
    if (problem) throw new LesionFuseError(`line ${i + 1}: '${m[2]}' ${problem}`, { subject });
    // sha256sum -c checks every line; a second line for the same file could hide a bad first one.
    if (out.has(m[2]!)) throw new LesionFuseError(`line ${i + 1}: '${m[2]}' is listed twice`, { subject });
    out.set(m[2]!, m[1]!);
  }
  return out;
}

/**
 * The real path of a file a bundle names, only if it is a regular file inside the bundle (symbolic links
 * resolved: a link that leads out, or to a FIFO or device, is refused).
 */
export function bundleFile(dir: string, f: string, shown: (f: string) => string, field: string): string {
  const problem = bundlePathProblem(f);
  if (problem) throw new LesionFuseError(`${field} '${f}' ${problem}`, { subject: shown('manifest.json') });
  let real: string;
  try {
    real = realpathSync(join(dir, f));
  } catch {
    throw new LesionFuseError(`missing (named by ${field})`, { subject: shown(f) });
  }
  if (!real.startsWith(realpathSync(dir) + sep)) throw new LesionFuseError(`resolves outside the bundle (named by ${field}); refusing to read it`, { subject: shown(f) });
  if (!statSync(real).isFile()) throw new LesionFuseError(`is not a regular file (named by ${field})`, { subject: shown(f) });
  return real;
}


export async function readJson<T>(path: string, shown: string): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    throw new LesionFuseError(`cannot read (${describeError(err)})`, { subject: shown });
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    // The parser's message quotes the text; say only where it failed, never what the file holds.
    throw new LesionFuseError('is not valid JSON', { subject: shown });
  }
}

/** The fields of manifest.json that verify relies on (the rest is informative). */
const ManifestCore = z.object({
  schema: z.string(),
  name: z.string(),
  model: z.object({ file: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), sizeBytes: z.number().int().min(0) }),
  preprocessing: z.object({ channelOrder: z.enum(['RGB', 'BGR']) }),
  postprocessing: z.object({ threshold: z.number() }),
  profile: z.string().optional(),
  sample: z.object({ input: z.string(), mask: z.string(), expected: z.string() }),
  files: z.record(z.string(), z.string()),
});

function checkManifest(value: unknown, subject: string): BundleManifest {
  const r = ManifestCore.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new LesionFuseError(`not a valid bundle manifest (${issues})`, { subject });
  }
  return value as BundleManifest;
}

/** What {@link checkBundleFiles} found. */
export interface BundleFilesCheck {
  manifest: BundleManifest;
  /** One line per check that passed. */
  checks: string[];
  /** The real path of the model file. */
  modelFile: string;
  /** The key id that signed the manifest (checked when a public key was given), or null when unsigned. */
  signedBy: string | null;
}

/**
 * The file-level half of verifying a bundle: every file against CHECKSUMS.sha256 (each listed once, regular
 * files inside the folder) and manifest.json (same files, same hashes; the model's SHA-256 and size), and the
 * signature when a public key is given. Throws a one-line LesionFuseError naming the file (shown as
 * `${shown}/<file>`).
 */
export async function checkBundleFiles(dir: string, shown: string, opts: { pubkey?: KeyObject } = {}): Promise<BundleFilesCheck> {
  const name = (f: string) => `${shown}/${f}`;
  const checks: string[] = [];
  const ckPath = join(dir, 'CHECKSUMS.sha256');
  if (!existsSync(ckPath)) throw new LesionFuseError('missing: not a LesionFuse bundle (no CHECKSUMS.sha256)', { subject: name('CHECKSUMS.sha256') });
  const sums = parseChecksums(await fs.readFile(ckPath, 'utf8'), name('CHECKSUMS.sha256'));
  const present = listFiles(dir).filter((f) => f !== 'CHECKSUMS.sha256');
  for (const f of present) if (!sums.has(f)) throw new LesionFuseError('file is not listed in CHECKSUMS.sha256 (added after packaging?)', { subject: name(f) });
  for (const [f, want] of sums) {
    if (!existsSync(join(dir, f))) throw new LesionFuseError('listed in CHECKSUMS.sha256 but missing', { subject: name(f) });
    const got = await sha256File(bundleFile(dir, f, name, 'CHECKSUMS.sha256'));
    if (got !== want) throw new LesionFuseError(`checksum mismatch: the file was changed after packaging (SHA-256 ${got.slice(0, 12)}..., expected ${want.slice(0, 12)}...)`, { subject: name(f) });
  }
  checks.push(`${sums.size} files match CHECKSUMS.sha256`);
  if (!sums.has('manifest.json')) throw new LesionFuseError('manifest.json is not listed in CHECKSUMS.sha256', { subject: name('CHECKSUMS.sha256') });
  const manifest = checkManifest(await readJson<unknown>(join(dir, 'manifest.json'), name('manifest.json')), name('manifest.json'));
  if (manifest.schema !== BUNDLE_SCHEMA && manifest.schema !== WEB_BUNDLE_SCHEMA) throw new LesionFuseError(`schema is '${manifest.schema}', expected '${BUNDLE_SCHEMA}' or '${WEB_BUNDLE_SCHEMA}'`, { subject: name('manifest.json') });
  for (const [f, want] of Object.entries(manifest.files ?? {})) {
    if (sums.get(f) !== want) throw new LesionFuseError(`manifest.json and CHECKSUMS.sha256 disagree about this file`, { subject: name(f) });
  }
  for (const f of sums.keys()) if (f !== 'manifest.json' && f !== SIGNATURE_FILE && !(f in (manifest.files ?? {}))) throw new LesionFuseError('file not listed in manifest.json', { subject: name(f) });
  checks.push('manifest.json lists the same files and hashes');
  // Every file the manifest names must be one of the checked files, inside the bundle.
  const named: [string, string][] = [
    ['model.file', manifest.model.file],
    ['sample.input', manifest.sample.input],
    ['sample.mask', manifest.sample.mask],
    ['sample.expected', manifest.sample.expected],
  ];
  for (const [field, f] of named) {
    bundleFile(dir, f, name, field);
    if (!sums.has(f)) throw new LesionFuseError(`${field} '${f}' is not listed in CHECKSUMS.sha256`, { subject: name('manifest.json') });
  }
  const modelFile = bundleFile(dir, manifest.model.file, name, 'model.file');
  if (sums.get(manifest.model.file) !== manifest.model.sha256) {
    throw new LesionFuseError(`model.sha256 (${manifest.model.sha256.slice(0, 12)}...) is not the model file's SHA-256`, { subject: name('manifest.json') });
  }
  const modelSize = statSync(modelFile).size;
  if (modelSize !== manifest.model.sizeBytes) throw new LesionFuseError(`model.sizeBytes is ${manifest.model.sizeBytes}, the file has ${modelSize}`, { subject: name('manifest.json') });
  checks.push('manifest.json describes the model file (SHA-256 and size)');
  let signedBy: string | null = null;
  const sigPath = join(dir, SIGNATURE_FILE);
  const signed = sums.has(SIGNATURE_FILE) && existsSync(sigPath);
  if (opts.pubkey) {
    if (!signed) throw new LesionFuseError(`unsigned: no ${SIGNATURE_FILE}, but a public key was given to check it with`, { subject: shown });
    const manifestBytes = await fs.readFile(bundleFile(dir, 'manifest.json', name, 'CHECKSUMS.sha256'));
    const sig = await readJson<unknown>(bundleFile(dir, SIGNATURE_FILE, name, 'CHECKSUMS.sha256'), name(SIGNATURE_FILE));
    signedBy = checkSignature(manifestBytes, sig, opts.pubkey, name('manifest.json'));
    checks.push(`signature: manifest.json signed by the given key (key id ${signedBy.slice(0, 16)}...)`);
  } else if (signed) {
    const sig = await readJson<{ keyId?: unknown }>(bundleFile(dir, SIGNATURE_FILE, name, 'CHECKSUMS.sha256'), name(SIGNATURE_FILE));
    checks.push(`signed by key id ${String(sig?.keyId).slice(0, 16)}... (not checked: give the signer's public key with --pubkey)`);
  } else checks.push('unsigned (package with --sign KEY to sign a bundle)');
  return { manifest, checks, modelFile, signedBy };
}

/**
 * The files in `dir` that are not part of the LesionFuse bundle of `schema` there: [] when it holds such a bundle
 * (its manifest.json) and nothing else (the manifest, the checksum list, a signature and the files the manifest
 * lists), null when it holds none. Only a folder with [] is replaced without --force.
 */
export function foreignBundleFiles(dir: string, schema: string): string[] | null {
  let m: { schema?: unknown; files?: unknown } | null;
  try {
    m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as typeof m;
  } catch {
    return null;
  }
  if (!m || m.schema !== schema || typeof m.files !== 'object' || m.files === null) return null;
  const files = m.files as Record<string, string>;
  try {
    return listFiles(dir).filter((f) => !(f === 'manifest.json' || f === 'CHECKSUMS.sha256' || f === SIGNATURE_FILE || f in files));
  } catch {
    return null; // a link or special file inside: not a plain bundle
  }
}
