/**
 * Step caching: a step's outputs are reused when the same inputs (by SHA-256 of their files), the same
 * settings and the same SDK version made them. A `step.json` manifest next to the outputs records the
 * key, the inputs, the settings, the output files with their hashes and the step's result, so a reuse
 * is checked (outputs still there and unchanged) rather than assumed.
 */
import { promises as fs, existsSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { sha256, sha256File } from '../util/hash.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { describeError } from '../util/errors.js';
import { VERSION } from '../version.js';

export const STEP_MANIFEST = 'step.json';

/** What a step is, for the cache. */
export interface StepSpec {
  /** Unique id within a run, e.g. 'quantize/teacher'. */
  id: string;
  /** Folder the step writes into (created). */
  dir: string;
  /** Files the step reads: any change in their bytes re-runs it. */
  inputs: string[];
  /** The step's settings (JSON-able): any change re-runs it. */
  settings: unknown;
}

/** What a step function returns: files it wrote (relative to its dir, or absolute inside it) and a JSON result. */
export interface StepOutput<R> {
  files: string[];
  result: R;
}

/** The record kept in `<dir>/step.json`. */
export interface StepManifest<R> {
  step: string;
  key: string;
  sdkVersion: string;
  settings: unknown;
  inputs: { path: string; sha256: string }[];
  outputs: { file: string; sha256: string }[];
  result: R;
  finishedAt: string;
  seconds: number;
}

/** How a step ended. */
export type StepOutcome<R> =
  | { id: string; status: 'ran' | 'reused'; result: R; seconds: number; dir: string }
  | { id: string; status: 'failed'; reason: string; seconds: number; dir: string };

/** Hashes files once per process (by path, size and mtime): a run hashes the teacher once, not once per step. */
export class FileHasher {
  private readonly memo = new Map<string, { size: number; mtimeMs: number; hash: string }>();
  async hash(path: string): Promise<string> {
    const abs = resolve(path);
    const st = statSync(abs);
    const m = this.memo.get(abs);
    if (m && m.size === st.size && m.mtimeMs === st.mtimeMs) return m.hash;
    const hash = await sha256File(abs);
    this.memo.set(abs, { size: st.size, mtimeMs: st.mtimeMs, hash });
    return hash;
  }
}

/** Canonical JSON (sorted keys), so that key order in a config does not change a cache key. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

/** The cache key of a step: its id, settings, the hashes of its inputs and the SDK version. */
export async function stepKey(spec: StepSpec, hasher: FileHasher): Promise<{ key: string; inputs: StepManifest<unknown>['inputs'] }> {
  const inputs: StepManifest<unknown>['inputs'] = [];
  for (const p of spec.inputs) inputs.push({ path: resolve(p), sha256: await hasher.hash(p) });
  const key = sha256(canonicalJson({ step: spec.id, settings: spec.settings, inputs: inputs.map((i) => i.sha256), sdk: VERSION }));
  return { key, inputs };
}

/** The manifest of a previous run of this step when its outputs are still valid, else null (with why, for the log). */
export async function validPrevious<R>(spec: StepSpec, key: string, hasher: FileHasher): Promise<{ manifest: StepManifest<R> | null; why: string }> {
  const path = join(spec.dir, STEP_MANIFEST);
  if (!existsSync(path)) return { manifest: null, why: 'no previous run' };
  let m: StepManifest<R>;
  try {
    m = JSON.parse(await fs.readFile(path, 'utf8')) as StepManifest<R>;
  } catch {
    return { manifest: null, why: 'previous step.json unreadable' };
  }
  if (m.key !== key) return { manifest: null, why: 'inputs or settings changed' };
  for (const o of m.outputs) {
    const f = join(spec.dir, o.file);
    if (!existsSync(f)) return { manifest: null, why: `output ${o.file} is missing` };
    if ((await hasher.hash(f)) !== o.sha256) return { manifest: null, why: `output ${o.file} was changed` };
  }
  return { manifest: m, why: 'same inputs, settings and SDK version' };
}

/**
 * Run a step, or reuse its previous outputs when they are still valid. A failure is caught and returned
 * as `{ status: 'failed', reason }` (one line) so the pipeline can go on with other candidates; a failed
 * step leaves no step.json, so the next run tries again.
 */
export async function runStep<R>(spec: StepSpec, hasher: FileHasher, fn: (dir: string) => Promise<StepOutput<R>>): Promise<StepOutcome<R>> {
  const t0 = performance.now();
  const seconds = () => Math.round((performance.now() - t0) / 10) / 100;
  try {
    await fs.mkdir(spec.dir, { recursive: true });
    const { key, inputs } = await stepKey(spec, hasher);
    const prev = await validPrevious<R>(spec, key, hasher);
    if (prev.manifest) return { id: spec.id, status: 'reused', result: prev.manifest.result, seconds: seconds(), dir: spec.dir };
    // Invalidate first: if this run dies half-way, the old manifest must not vouch for new, partial files.
    await fs.rm(join(spec.dir, STEP_MANIFEST), { force: true });
    const out = await fn(spec.dir);
    const outputs: StepManifest<R>['outputs'] = [];
    for (const f of out.files) {
      const abs = resolve(spec.dir, f);
      const rel = relative(spec.dir, abs);
      if (rel.startsWith('..')) throw new Error(`step ${spec.id} reported an output outside its folder: ${abs}`);
      outputs.push({ file: rel, sha256: await hasher.hash(abs) });
    }
    const manifest: StepManifest<R> = {
      step: spec.id, key, sdkVersion: VERSION, settings: spec.settings, inputs, outputs, result: out.result,
      finishedAt: new Date().toISOString(), seconds: seconds(),
    };
    await writeJsonAtomic(join(spec.dir, STEP_MANIFEST), manifest);
    return { id: spec.id, status: 'ran', result: out.result, seconds: seconds(), dir: spec.dir };
  } catch (err) {
    return { id: spec.id, status: 'failed', reason: describeError(err), seconds: seconds(), dir: spec.dir };
  }
}
